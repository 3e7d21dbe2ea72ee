"""End to end: build the real Python and R runtime images, test the contract, push and pull by digest,
and every fault the CLI must turn into one line and a distinct exit code."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ap_build.engine import Engine
from ap_build.images.contract import run_contract

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("images")]

AP_BUILD = str(Path(sys.executable).parent / "ap-build")


def cli(*args: str, env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AP_BUILD, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


# --- the images themselves ---------------------------------------------------------------------

def test_python_image_meets_the_contract(engine: Engine, python_base_ref: str) -> None:
    result = run_contract(engine, python_base_ref)
    assert result.passed, result.summary_lines()
    assert result.runtime == "python" and result.structure.total >= 15 and result.suite.total >= 10


def test_r_image_meets_the_contract(engine: Engine, r_base_ref: str) -> None:
    result = run_contract(engine, r_base_ref)
    assert result.passed, result.summary_lines()
    assert result.runtime == "r"


def test_image_test_cli_fails_an_image_that_ends_as_root(engine: Engine, python_base_ref: str, tmp_path) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {python_base_ref}\nUSER root\n")
    image_id = engine.build(tmp_path)
    proc = cli("image", "test", image_id, "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["passed"] is False
    assert any("root" in f or "1000" in f for f in report["structure_test"]["failures"] + report["testinfra"]["failures"])
    ok = cli("image", "test", python_base_ref)
    assert ok.returncode == 0 and "contract met" in ok.stdout, ok.stdout + ok.stderr


def test_cached_rebuild_via_cli_writes_a_report(debian_base: str, python_base_ref: str, tmp_path) -> None:
    report = tmp_path / "report.json"
    proc = cli("image", "build", "python", "--sources", "debian", "--base", debian_base, "--version", "0.0.0-test",
               "--tag", "localhost/ap-build/python-base:cli-test", "--report", str(report), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text())
    assert data == json.loads(proc.stdout)
    assert data["image_id"].startswith("sha256:") and data["size_bytes"] > 50_000_000
    assert data["base"] == debian_base and data["sources"] == "debian" and data["version"] == "0.0.0-test"
    assert {"python", "pip", "uv", "aws_cli", "cudart", "os"} <= set(data["components"])
    assert data["components"]["uv"] == "0.13.9" and data["components"]["cudart"].startswith("libcudart.so.13")


def test_push_prints_the_digest_reference_and_pulls_back(engine: Engine, python_base_ref: str, registry: str,
                                                        tmp_path) -> None:
    report = tmp_path / "r.json"
    report.write_text('{"digest": null}')
    target = f"{registry}/ap-build/push-test:1.0.0"
    proc = cli("image", "push", python_base_ref, target, "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    pinned = proc.stdout.strip()
    assert pinned.startswith(target + "@sha256:") and len(pinned.split("@sha256:")[1]) == 64
    assert json.loads(report.read_text())["digest"] == pinned.split("@", 1)[1]
    local_id = engine.inspect(python_base_ref)["Id"]
    engine.remove_image(target)
    assert engine.pull(pinned) == local_id


# --- the AWS CLI zip path, against a signed stand-in served from loopback --------------------

@pytest.fixture(scope="module")
def signed_aws_zip() -> Iterator[dict[str, str]]:
    """A stand-in AWS CLI zip with the real installer's interface, signed by a throw-away key, on loopback."""
    if not shutil.which("gpg"):
        pytest.fail("gpg is needed (apt-get install gnupg)")
    work = Path(tempfile.mkdtemp(prefix="ap-build-aws-"))
    home = work / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home), "--passphrase", "", "--pinentry-mode", "loopback"]
    subprocess.run([*gpg, "--quick-gen-key", "Stand-in AWS CLI <standin@example.com>", "rsa2048", "sign", "never"],
                   check=True, capture_output=True)
    key = work / "standin.asc"
    key.write_bytes(subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True).stdout)
    listing = subprocess.run([*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True)
    fingerprint = next(ln.split(":")[9] for ln in listing.stdout.splitlines() if ln.startswith("fpr"))
    installer = """#!/bin/sh
set -e
while [ $# -gt 0 ]; do case "$1" in -i|--install-dir) I=$2; shift 2;; -b|--bin-dir) B=$2; shift 2;; *) shift;; esac; done
mkdir -p "$I/v2/2.36.9/bin" "$B"
printf '#!/bin/sh\\necho "aws-cli/2.36.9 Python/3.13.0 Linux stand-in"\\n' > "$I/v2/2.36.9/bin/aws"
printf '#!/bin/sh\\n' > "$I/v2/2.36.9/bin/aws_completer"
chmod 755 "$I/v2/2.36.9/bin/aws" "$I/v2/2.36.9/bin/aws_completer"
ln -sfn "$I/v2/2.36.9" "$I/v2/current"
ln -sf "$I/v2/current/bin/aws" "$B/aws"
"""
    serve = work / "www"
    serve.mkdir()
    for name, text in (("good", installer), ("tampered", installer.replace("2.36.9 Python", "6.6.6 Python"))):
        with zipfile.ZipFile(serve / f"{name}-2.36.9.zip", "w") as z:
            info = zipfile.ZipInfo("aws/install")
            info.external_attr = 0o755 << 16
            z.writestr(info, text)
    subprocess.run([*gpg, "--detach-sign", "-o", str(serve / "good-2.36.9.zip.sig"), str(serve / "good-2.36.9.zip")],
                   check=True, capture_output=True)
    shutil.copy(serve / "good-2.36.9.zip.sig", serve / "tampered-2.36.9.zip.sig")  # signature of other bytes
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(serve))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {"base": f"http://127.0.0.1:{server.server_port}", "key": str(key), "fingerprint": fingerprint}
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


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


# --- faults: one line, a distinct exit code, nothing half-tagged ----------------------------

def test_unknown_runtime_is_a_usage_error() -> None:
    assert_one_line_error(cli("image", "build", "julia"), 2, "unknown runtime 'julia'")


def test_no_engine_is_one_clear_error() -> None:
    proc = cli("image", "build", "python", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert_one_line_error(proc, 2, "no container engine answered")
    assert "hint:" in proc.stderr


def test_a_base_that_does_not_resolve(registry: str) -> None:
    proc = cli("image", "build", "python", "--base", f"{registry}/nowhere/none:1@sha256:{'0' * 64}")
    assert_one_line_error(proc, 2, "does not resolve")
    proc = cli("image", "build", "python", "--base", "unpinned/thing:latest")
    assert_one_line_error(proc, 2, "has no digest")


def test_an_unreachable_mirror_fails_cleanly(engine: Engine, debian_base: str) -> None:
    tag = "localhost/ap-build/python-base:bad-mirror"
    proc = cli("image", "build", "python", "--sources", "debian", "--base", debian_base, "--tag", tag,
               "--apt-mirror", "http://127.0.0.1:9/debian")
    assert_one_line_error(proc, 2, "build failed")
    assert not engine.image_exists(tag)


def test_a_refused_push_is_reported(python_base_ref: str) -> None:
    proc = cli("image", "push", python_base_ref, "127.0.0.1:9/ap-build/refused:1")
    assert_one_line_error(proc, 2, "push")
