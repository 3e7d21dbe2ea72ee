"""End to end: the sources a runtime image is built from, each against a signed stand-in served from loopback
(the real ones are unreachable here): the AWS CLI zip (GPG-checked), NVIDIA's CUDA apt repository and CRAN's
R repository (each pinned by its key's fingerprint). A wrong key or tampered bytes fail the build and tag nothing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, cli
from support.standins import Signer, flat_apt_repo, make_deb, serve

from ap_build.engine import Engine
from ap_build.images.contract import run_contract
from ap_build.images.spec import load_sources, load_spec

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]


# --- the AWS CLI zip path, against a signed stand-in served from loopback --------------------

@pytest.fixture(scope="module")
def signed_aws_zip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A stand-in AWS CLI zip with the real installer's interface, signed by a throw-away key, on loopback."""
    work = tmp_path_factory.mktemp("aws")
    signer = Signer.create(work / "gnupg", "Stand-in AWS CLI <standin@example.com>")
    installer = """#!/bin/sh
set -e
while [ $# -gt 0 ]; do
  case "$1" in -i|--install-dir) I=$2; shift 2;; -b|--bin-dir) B=$2; shift 2;; *) shift;; esac
done
mkdir -p "$I/v2/2.36.9/bin" "$B"
printf '#!/bin/sh\\necho "aws-cli/2.36.9 Python/3.13.0 Linux stand-in"\\n' > "$I/v2/2.36.9/bin/aws"
printf '#!/bin/sh\\n' > "$I/v2/2.36.9/bin/aws_completer"
chmod 755 "$I/v2/2.36.9/bin/aws" "$I/v2/2.36.9/bin/aws_completer"
ln -sfn "$I/v2/2.36.9" "$I/v2/current"
ln -sf "$I/v2/current/bin/aws" "$B/aws"
"""
    www = work / "www"
    www.mkdir()
    for name, text in (("good", installer), ("tampered", installer.replace("2.36.9 Python", "6.6.6 Python"))):
        with zipfile.ZipFile(www / f"{name}-2.36.9.zip", "w") as z:
            info = zipfile.ZipInfo("aws/install")
            info.external_attr = 0o755 << 16
            z.writestr(info, text)
    signer.detach_sign(www / "good-2.36.9.zip")
    shutil.copy(www / "good-2.36.9.zip.sig", www / "tampered-2.36.9.zip.sig")  # a signature of other bytes
    key = signer.public_key(work / "standin.asc")
    with serve(www) as url:
        yield {"base": url, "key": str(key), "fingerprint": signer.fingerprint}


def _zip_build(debian_base: str, aws: dict[str, str], name: str, tag: str, fingerprint: str | None = None):
    return cli("image", "build", "python", "--sources", "debian", "--aws-cli", "zip", "--base", debian_base,
               "--version", "0.0.0-zip", "--tag", tag, "--aws-cli-url", f"{aws['base']}/{name}-{{version}}.zip",
               "--aws-cli-key", aws["key"], "--aws-cli-fingerprint", fingerprint or aws["fingerprint"])


def test_aws_cli_zip_is_gpg_verified_and_installed(engine: Engine, debian_base: str, signed_aws_zip) -> None:
    tag = "localhost/ap-build/python-base:zip-test"
    proc = _zip_build(debian_base, signed_aws_zip, "good", tag)
    assert proc.returncode == 0, proc.stderr[-2000:]
    code, out = engine.run(tag, ["aws", "--version"])
    assert code == 0 and out.startswith("aws-cli/2.36.9 "), out
    env = dict(e.split("=", 1) for e in engine.inspect(tag)["Config"]["Env"])
    assert env["AWS_CLI_VERSION"] == "2.36.9"


def test_a_tampered_aws_cli_zip_fails_the_build_and_tags_nothing(engine: Engine, debian_base: str,
                                                                  signed_aws_zip) -> None:
    tag = "localhost/ap-build/python-base:tampered"
    engine.remove_image(tag)
    proc = _zip_build(debian_base, signed_aws_zip, "tampered", tag)
    assert_one_line_error(proc, 2, "build failed")
    assert not engine.image_exists(tag)


def test_a_key_with_another_fingerprint_is_refused(engine: Engine, debian_base: str, signed_aws_zip) -> None:
    tag = "localhost/ap-build/python-base:wrong-key"
    proc = _zip_build(debian_base, signed_aws_zip, "good", tag, fingerprint="FB5DB77FD5C118B80511ADA8A6310ACC4672475C")
    assert_one_line_error(proc, 2, "build failed")
    assert not engine.image_exists(tag)


def build_with_sources(runtime: str, base: str, tag: str, tmp_path: Path, **settings: str):
    """`ap-build image build` with this machine's sources (Debian + PyPI) plus `settings`, from a TOML file."""
    debian = load_sources("debian")
    values = {"aws_cli": "debian", "cuda": "pypi", "pypi_index": debian.pypi_index, "ca_bundle": debian.ca_bundle,
              **settings}
    sources = tmp_path / f"sources-{tag.rsplit(':', 1)[-1]}.toml"
    sources.write_text("[standin]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    return cli("image", "build", runtime, "--sources", str(sources), "--base", base, "--tag", tag,
               "--version", "0.0.0-standin")


def assert_refused(engine: Engine, proc: subprocess.CompletedProcess[str], tag: str) -> None:
    """A source signed by a key without the pinned fingerprint fails the build and tags nothing."""
    assert_one_line_error(proc, 2, "build failed")
    assert not engine.image_exists(tag)


# --- NVIDIA's apt repository path, against a signed stand-in repository on loopback -------

@pytest.fixture(scope="module")
def nvidia_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A flat apt repository with cuda-cudart-13-0 (NVIDIA's real libcudart.so.13, from its PyPI wheel)
    and cuda-compat-13-0, signed by a throw-away key published as `3bf863cc.pub`, as NVIDIA's is."""
    work = tmp_path_factory.mktemp("nvidia")
    lock = next(ln for ln in (Path(__file__).parents[2] / "images/common/wheels.lock").read_text().splitlines()
                if ln.startswith("nvidia-cuda-runtime=="))
    (work / "req.txt").write_text(lock + "\n")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--require-hashes", "-r", str(work / "req.txt"), "-d", str(work / "wheel")], check=True)
    with zipfile.ZipFile(next((work / "wheel").glob("*.whl"))) as z:
        libcudart = z.read(next(n for n in z.namelist() if n.endswith("libcudart.so.13")))
    signer = Signer.create(work / "gnupg", "Stand-in CUDA repository <cuda@example.com>")
    repo = work / "repo"
    repo.mkdir()
    lib = "/usr/local/cuda-13.0/targets/x86_64-linux/lib"
    make_deb(work, "cuda-cudart-13-0", "13.0.96-1", {f"{lib}/libcudart.so.13": libcudart}, repo)
    make_deb(work, "cuda-compat-13-0", "580.95.05-1", {"/usr/local/cuda-13.0/compat/README": b"stand-in\n"}, repo)
    flat_apt_repo(repo, signer)
    signer.public_key(repo / "3bf863cc.pub")
    with serve(repo) as url:
        yield {"url": url, "fingerprint": signer.fingerprint}


def test_cuda_from_nvidia_apt_repository_is_signed_and_registered(engine: Engine, debian_base: str,
                                                                   nvidia_repo, tmp_path) -> None:
    tag = "localhost/ap-build/python-base:nvidia-test"
    proc = build_with_sources("python", debian_base, tag, tmp_path, cuda="nvidia", nvidia_repo=nvidia_repo["url"],
                              nvidia_key_fingerprint=nvidia_repo["fingerprint"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    code, out = engine.run(tag, ["bash", "-c", "ldconfig -p | grep libcudart; readlink -f /usr/local/cuda;"
                                 " dpkg-query -W cuda-cudart-13-0 cuda-compat-13-0"])
    assert code == 0, out
    assert "libcudart.so.13 (libc6,x86-64) => /usr/local/cuda/targets/x86_64-linux/lib/libcudart.so.13" in out
    assert "/usr/local/cuda-13.0" in out and "cuda-cudart-13-0\t13.0.96-1" in out
    assert run_contract(engine, tag).passed

    bad = "localhost/ap-build/python-base:nvidia-bad"
    assert_refused(engine, build_with_sources("python", debian_base, bad, tmp_path, cuda="nvidia",
                                              nvidia_repo=nvidia_repo["url"]), bad)  # the upstream fingerprint


# --- CRAN's apt repository path, against a signed stand-in repository on loopback --------

def _debian_deb(package: str, version: str, suite: str, dest: Path) -> Path:
    """Download a package of `suite` from Debian's archive, checked against the suite's Packages index."""
    import hashlib
    import lzma
    import urllib.request

    mirror = "http://deb.debian.org/debian"
    with urllib.request.urlopen(f"{mirror}/dists/{suite}/main/binary-amd64/Packages.xz", timeout=120) as resp:
        index = lzma.decompress(resp.read()).decode()
    stanza = next((s for s in index.split("\n\n") if s.startswith(f"Package: {package}\n")
                   and f"\nVersion: {version}\n" in s), None)
    assert stanza, f"{package} {version} is not in {suite}"
    fields = dict(ln.split(": ", 1) for ln in stanza.splitlines() if ": " in ln and not ln.startswith(" "))
    with urllib.request.urlopen(f"{mirror}/{fields['Filename']}", timeout=300) as resp:
        data = resp.read()
    assert hashlib.sha256(data).hexdigest() == fields["SHA256"]
    deb = dest / Path(fields["Filename"]).name
    deb.write_bytes(data)
    return deb


@pytest.fixture(scope="module")
def cran_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """CRAN's layout (`<repo> <codename>-cran40/`, a flat signed repository) on loopback, carrying Debian's real
    r-base-core re-versioned as the CRAN build the recipe pins, signed by a throw-away key."""
    work = tmp_path_factory.mktemp("cran")
    distro = load_spec("r", version="0", base="b", sources=load_sources("debian"))
    pinned = distro.pin("r_cran")
    deb = _debian_deb("r-base-core", distro.pin("r_distro"), distro.suite, work)
    tree = work / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    control.write_text(re.sub(r"(?m)^Version: .*$", f"Version: {pinned}", control.read_text()))
    www = work / "www"
    suite = www / f"{distro.suite}-cran40"
    suite.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(suite / f"r-base-core_{pinned}_amd64.deb")],
                   check=True, capture_output=True)
    signer = Signer.create(work / "gnupg", "Stand-in CRAN <cran@example.com>")
    flat_apt_repo(suite, signer, directory=f"{distro.suite}-cran40")
    signer.public_key(www / "cran.asc")
    with serve(www) as url:
        yield {"url": url, "fingerprint": signer.fingerprint, "version": pinned, "suite": distro.suite}


def test_r_from_cran_apt_repository_is_signed_and_pinned(engine: Engine, debian_base: str, cran_repo,
                                                       tmp_path) -> None:
    tag = "localhost/ap-build/r-base:cran-test"
    cran = {"r": "cran", "cran_repo": cran_repo["url"], "cran_key_url": f"{cran_repo['url']}/cran.asc"}
    proc = build_with_sources("r", debian_base, tag, tmp_path, **cran, cran_key_fingerprint=cran_repo["fingerprint"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    code, out = engine.run(tag, ["bash", "-c", "dpkg-query -W r-base-core; cat /etc/apt/sources.list.d/cran.list;"
                                 " R --version | head -n1; stat -c %u /usr/local/lib/R/site-library"])
    assert code == 0, out
    assert f"r-base-core\t{cran_repo['version']}" in out
    assert f"signed-by=/usr/share/keyrings/cran.gpg] {cran_repo['url']} {cran_repo['suite']}-cran40/" in out
    assert "R version 4." in out and out.strip().endswith("1000")
    env = dict(e.split("=", 1) for e in engine.inspect(tag)["Config"]["Env"])
    assert env["R_VERSION"] == cran_repo["version"].split("-")[0]

    bad = "localhost/ap-build/r-base:cran-bad"
    assert_refused(engine, build_with_sources("r", debian_base, bad, tmp_path, **cran), bad)  # upstream fingerprint
