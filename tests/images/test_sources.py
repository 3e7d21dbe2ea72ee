"""`--sources auto` and the pre-build check of every download location, against loopback stand-ins:
a served folder answers, a closed port does not. No engine needed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.standins import serve

from ap_build.errors import SourceError
from ap_build.images.sources import Probe, answers, choose, host_apt_mirrors, host_environ


def closed_port() -> str:
    """A loopback URL nothing listens on (the port was just free)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback server with a PyPI simple page for uv and the CUDA wheel, an AWS CLI zip and a Debian suite."""
    www = tmp_path_factory.mktemp("www")
    for project in ("uv", "nvidia-cuda-runtime"):
        (www / "simple" / project).mkdir(parents=True)
        (www / "simple" / project / "index.html").write_text("<html></html>")
    (www / "aws").mkdir()
    (www / "aws" / "awscli-2.36.9.zip").write_bytes(b"PK")
    (www / "debian" / "dists" / "trixie").mkdir(parents=True)
    (www / "debian" / "dists" / "trixie" / "InRelease").write_text("stand-in")
    with serve(www) as url:
        yield url


def profile(tmp_path: Path, name: str, **settings: str) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    return str(path)


def test_answers_tells_a_served_file_from_a_missing_one_and_a_closed_port(standin: str) -> None:
    assert answers(Probe("pypi", f"{standin}/simple/uv/")) == ""
    assert answers(Probe("pypi", f"{standin}/simple/nothing/")) == "HTTP 404"
    assert answers(Probe("cuda", f"{standin}/nothing/", exact=False)) == ""  # the host answers: enough
    assert "refused" in answers(Probe("apt", closed_port(), exact=False)).lower()


def test_a_named_profile_is_checked_before_the_build_naming_the_setting(standin: str, tmp_path: Path) -> None:
    ok = profile(tmp_path, "ok", pypi_index=f"{standin}/simple", aws_cli_url=f"{standin}/aws/awscli-{{version}}.zip",
                 cuda="pypi")
    choice = choose(ok, {}, runtime="python", cuda_version="13.0", suite="trixie")
    assert choice.sources.pypi_index == f"{standin}/simple" and "3 download location(s) answer" in choice.line
    dead = closed_port()
    with pytest.raises(SourceError, match=rf"{dead}/awscli-2.36.9.zip does not answer") as exc:
        choose(ok, {"aws_cli_url": f"{dead}/awscli-{{version}}.zip"}, runtime="python", cuda_version="none",
               suite="trixie")
    assert "--aws-cli-url" in (exc.value.hint or "")
    with pytest.raises(SourceError) as exc:
        choose(ok, {}, runtime="python", cuda_version="none", suite="trixie", bootstrap_mirror=dead)
    assert "--apt-mirror" in (exc.value.hint or "")


def test_auto_takes_upstream_where_it_answers_else_the_hosts_settings(standin: str, tmp_path: Path) -> None:
    dead = closed_port()
    upstream = profile(tmp_path, "up", pypi_index=f"{dead}/simple", aws_cli_url=f"{standin}/aws/awscli-{{version}}.zip",
                       nvidia_repo=f"{dead}/cuda/{{distro}}/x86_64", cran_key_url=f"{dead}/cran.asc")
    host = {"PIP_INDEX_URL": f"{standin}/simple", "PATH": "/usr/bin:/bin"}
    choice = choose("auto", {}, runtime="python", cuda_version="13.0", suite="trixie", environ=host,
                    profiles=(upstream, "debian"))
    src = choice.sources
    assert src.name == "auto"
    assert src.pypi_index == f"{standin}/simple"  # upstream's index is silent: the host's pip index
    assert src.aws_cli == "zip" and src.aws_cli_url.startswith(standin)  # upstream answers: kept
    assert src.cuda == "pypi"  # NVIDIA's repository is silent: its wheels from the host's index
    line = choice.line
    assert line.startswith("sources: auto, ") and "AWS CLI from AWS's signed zip" in line
    wheels_part = next(part for part in line.split("; ") if "wheels from" in part)
    assert f"wheels from {standin}/simple" in wheels_part  # (with pip's configured CA, if it has one)
    assert f"(upstream silent, {dead.removeprefix('http://')}: " in wheels_part
    assert "CUDA from NVIDIA's wheels (upstream silent" in line and "\n" not in line


def test_auto_never_switches_what_the_user_set(standin: str, tmp_path: Path) -> None:
    upstream = profile(tmp_path, "up", pypi_index=f"{standin}/simple")
    dead = closed_port()
    with pytest.raises(SourceError, match="does not answer") as exc:
        choose("auto", {"aws_cli_url": f"{dead}/a-{{version}}.zip"}, runtime="python", cuda_version="none",
               suite="trixie", profiles=(upstream, "debian"), environ={})
    assert "--aws-cli-url" in (exc.value.hint or "")


def test_auto_fails_before_the_build_when_neither_answers(tmp_path: Path) -> None:
    dead = closed_port()
    upstream = profile(tmp_path, "up", pypi_index=f"{dead}/simple")
    with pytest.raises(SourceError, match=f"{dead}/simple/uv/ does not answer") as exc:
        choose("auto", {}, runtime="python", cuda_version="none", suite="trixie", profiles=(upstream, "debian"),
               environ={"PIP_INDEX_URL": f"{dead}/simple", "PATH": "/usr/bin:/bin"}, host_apt=lambda: ("", ""))
    assert "--pypi-index" in (exc.value.hint or "")


def test_auto_bootstraps_from_the_hosts_debian_mirror_when_debians_archive_is_silent(standin: str,
                                                                                     tmp_path: Path) -> None:
    upstream = profile(tmp_path, "up", pypi_index=f"{standin}/simple",
                       aws_cli_url=f"{standin}/aws/awscli-{{version}}.zip")
    mirror = (f"{standin}/debian", "")
    choice = choose("auto", {}, runtime="python", cuda_version="none", suite="trixie", profiles=(upstream, "debian"),
                    bootstrap_mirror=closed_port(), host_apt=lambda: mirror)
    assert choice.bootstrap_mirror == mirror and f"Debian from this machine's mirror {standin}/debian" in choice.line
    with pytest.raises(SourceError, match="no Debian apt source"):
        choose("auto", {}, runtime="python", cuda_version="none", suite="trixie", profiles=(upstream, "debian"),
               bootstrap_mirror=closed_port(), host_apt=lambda: ("", ""))


def test_the_hosts_pip_settings_come_from_pip_config(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = http://127.0.0.1:3141/simple\ncert = /etc/ssl/certs/corp.pem\n")
    env = host_environ({"PIP_CONFIG_FILE": str(conf), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert env["PIP_INDEX_URL"] == "http://127.0.0.1:3141/simple" and env["PIP_CERT"] == "/etc/ssl/certs/corp.pem"
    env = host_environ({"PIP_CONFIG_FILE": str(conf), "PIP_INDEX_URL": "https://mine/simple", "HOME": str(tmp_path)})
    assert env["PIP_INDEX_URL"] == "https://mine/simple"  # the variable wins, as it does for pip
    conf.write_text("[global]\nindex-url = file:///opt/pypi/simple\n")
    assert "PIP_INDEX_URL" not in host_environ({"PIP_CONFIG_FILE": str(conf), "HOME": str(tmp_path)})


def test_the_hosts_apt_sources_in_both_formats(tmp_path: Path) -> None:
    (tmp_path / "os-release").write_text('ID=debian\nVERSION_CODENAME=bookworm\n')
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text("deb [arch=amd64] https://packages.example/apt stable main\n")
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.corp/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.corp/debian-security\nSuites: bookworm-security\nComponents: main\n")
    assert host_apt_mirrors(apt, tmp_path / "os-release") == ("http://mirror.corp/debian",
                                                              "http://mirror.corp/debian-security")
    (apt / "sources.list.d" / "debian.sources").unlink()
    (apt / "sources.list").write_text("deb http://old.corp/debian bookworm main\n")
    assert host_apt_mirrors(apt, tmp_path / "os-release") == ("http://old.corp/debian", "")


def test_the_recipe_renders_the_same_in_two_processes_with_different_hash_seeds() -> None:
    """Set or dict ordering that depends on PYTHONHASHSEED would show up here (one process cannot see it)."""
    code = ("from ap_build.images.render import render_dockerfile; from ap_build.images.spec import *;"
            "import sys; print(render_dockerfile(load_spec(sys.argv[1], version='1', base='b:1', "
            "sources=load_sources('upstream', environ={}), revision='r', created='c')))")
    for runtime in ("python", "r"):
        outs = {subprocess.run([sys.executable, "-c", code, runtime], capture_output=True, text=True, check=True,
                               env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}).stdout for seed in ("1", "2")}
        assert len(outs) == 1


def test_the_command_says_in_one_line_what_it_chose(cli) -> None:
    r = cli("image", "build", "r", "--dry-run")
    assert r.exit_code == 0, r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith("sources: auto, ") and "R from " in first and "AWS CLI from " in first
    assert "FROM localhost/ap-build/debian:trixie-" in r.stdout
