"""End to end (issue 18): a user's Dockerfile FROM the real Python base, as users write them (`python -m pip
install --upgrade pip`, old pure-Python pins that clash with the OS's packages), built against PyPI the way
`--sources auto` reaches it (this machine's pip index and CA); `aws`, `uv` and the pins work in the result."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.images import build_cached

from ap_build.engine import Engine
from ap_build.images.sources import host_environ
from ap_build.images.spec import load_sources

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("engine")]

CA = "/usr/local/share/ca-certificates/build-ca.crt"


def pypi_access() -> tuple[str, dict[str, str | bytes]]:
    """Dockerfile lines and context files that point pip at this machine's index and CA, as `--sources auto`
    reads them (pip.conf, PIP_INDEX_URL/PIP_CERT); on the platform a build reaches pypi.org itself."""
    src = load_sources("debian", environ=host_environ())
    lines, files = f"ENV PIP_INDEX_URL={src.pypi_index}\n", {}
    if src.ca_bundle:
        files["ca.crt"] = Path(src.ca_bundle).read_bytes()
        lines = f"COPY ca.crt {CA}\n" + lines + f"ENV PIP_CERT={CA}\n"
    return lines, files


def test_a_users_dockerfile_upgrades_pip_and_installs_old_pins_and_aws_still_works(
        engine: Engine, python_base_ref: str) -> None:
    access, files = pypi_access()
    dockerfile = (
        f"FROM {python_base_ref}\n"
        "USER root\n"
        f"{access}"
        # the user's own lines, as real repositories have them
        "RUN python -m pip install --upgrade pip\n"
        "RUN pip install requests==2.20.0\n"  # needs urllib3<1.25; the OS may ship urllib3 2.x with its AWS CLI
        # whatever PyPI's newest pip is, make pip replace itself once (what failed on the distribution's pip)
        "RUN python -m pip install --force-reinstall --no-deps pip\n"
        "USER ${CONTAINER_UID}\n"
        "RUN pip install six==1.11.0\n"  # the runtime user installs too
    )
    ref = build_cached(engine, "user-python", dockerfile, files)
    code, out = engine.run(ref, ["bash", "-c", "aws --version 2>&1; uv --version; pip list --format=freeze;"
                                 " id -u; /usr/bin/python3 -I -c 'import urllib3' 2>/dev/null && echo os-urllib3"
                                 " || echo no-os-urllib3"])
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("aws-cli/2."), out
    assert lines[1].startswith("uv "), out
    for pin in ("requests==2.20.0", "urllib3==1.24.3", "six==1.11.0"):
        assert pin in lines, out
    assert lines[-2] == "1000"
    config = engine.inspect(ref)["Config"]
    assert (config["User"], config["WorkingDir"]) == ("1000", "/opt/analyticalplatform")
    # the OS's own packages are untouched: the base's AWS CLI still imports what it shipped with
    base_code, base_out = engine.run(python_base_ref, ["bash", "-c", "/usr/bin/python3 -I -c 'import urllib3'"
                                                       " 2>/dev/null && echo os-urllib3 || echo no-os-urllib3"])
    assert base_code == 0 and lines[-1] == base_out.strip()
