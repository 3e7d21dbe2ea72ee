"""End to end (issue 18): users' Dockerfiles FROM the real runtime bases, as users write them.

Python: `python -m pip install --upgrade pip` and old pure-Python pins that clash with the OS's packages, built
against PyPI the way `--sources auto` reaches it (this machine's pip index and CA); `aws`, `uv` and the pins work.
R: renv init/install/snapshot as the runtime user and (the legacy way) as root, restore as the runtime user; renv
from Debian's archive and a local repository in CRAN's layout (CRAN is not reachable here)."""

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


_PACKAGE = {
    "apcontract/DESCRIPTION": "Package: apcontract\nVersion: 1.0\nTitle: t\nDescription: d.\nLicense: MIT\n"
                              "Author: a\nMaintainer: a <a@b.c>\n",
    "apcontract/NAMESPACE": "export(answer)\n",
    "apcontract/R/answer.R": "answer <- function() 42\n",
}
_RENV_PROJECT = ("mkdir {dir} && cd {dir} && Rscript -e 'renv::init(bare = TRUE)'"
                 " && Rscript -e 'renv::install(\"apcontract\"); renv::snapshot(type = \"all\")'\n")


def test_renv_works_for_the_runtime_user_whoever_ran_it(engine: Engine, r_base_ref: str) -> None:
    dockerfile = (
        f"FROM {r_base_ref}\n"
        "USER root\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends r-cran-renv && rm -rf /var/lib/apt/lists/*\n"
        "COPY apcontract /tmp/apcontract\n"
        "RUN mkdir -p /tmp/repo/src/contrib && cd /tmp/repo/src/contrib && R CMD build /tmp/apcontract"
        " && Rscript -e 'tools::write_PACKAGES(\".\", type = \"source\")'\n"
        "ENV RENV_CONFIG_REPOS_OVERRIDE=file:///tmp/repo\n"
        "USER ${CONTAINER_UID}\n"  # the migrated way: renv as the runtime user
        "RUN " + _RENV_PROJECT.format(dir="/opt/analyticalplatform/project") +
        "USER root\n"  # the legacy way: renv as root (its cache used to land in /root, unreadable by 1000)
        "RUN " + _RENV_PROJECT.format(dir="/opt/analyticalplatform/legacy") +
        "USER ${CONTAINER_UID}\n"
    )
    ref = build_cached(engine, "user-r-renv", dockerfile, dict(_PACKAGE))
    link = "renv/library/*/*/*/apcontract"
    answer = "Rscript -e 'cat(\"answer:\", apcontract::answer(), \"\\n\")'"
    script = (f"set -e; cd /opt/analyticalplatform/legacy && {answer}; echo \"cache: $(readlink -f {link})\";"
              f" echo \"owner: $(stat -c %u \"$(readlink -f {link})\")\";"
              f" cp -r /opt/analyticalplatform/project /tmp/p && cd /tmp/p && rm {link}"
              f" && Rscript -e 'renv::restore()' 2>&1 | grep apcontract; {answer}")
    code, out = engine.run(ref, ["bash", "-c", script])
    assert code == 0, out
    assert out.count("answer: 42") == 2, out  # root's renv project, then 1000's restored one, both work for 1000
    assert "cache: /home/analyticalplatform/.cache/R/renv/cache/" in out and "owner: 1000" in out, out
    assert "linked from cache" in out, out  # 1000 restores from the cache root's and 1000's runs share
