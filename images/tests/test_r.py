"""The R runtime: R whose user library (the site-library) and renv root belong to the non-root user."""

from __future__ import annotations

from conftest import run_ok

SITE = "/usr/local/lib/R/site-library"
HOME = "/home/analyticalplatform"
# A minimal source package written inside the container, so installs need no network (CRAN).
_MAKE_PACKAGE = ("rm -rf /tmp/apcontract && mkdir -p /tmp/apcontract/R"
                 " && printf 'Package: apcontract\\nVersion: 1.0\\nTitle: t\\nDescription: d.\\nLicense: MIT\\n"
                 "Author: a\\nMaintainer: a <a@b.c>\\n' > /tmp/apcontract/DESCRIPTION"
                 " && echo 'export(answer)' > /tmp/apcontract/NAMESPACE"
                 " && echo 'answer <- function() 42' > /tmp/apcontract/R/answer.R")
_LIB_PATHS = "Rscript -e 'cat(.libPaths(), sep=\"\\n\")'"


def test_r_version_matches_env(host, env) -> None:
    out = run_ok(host, "R --version")
    assert out.startswith(f"R version {env['R_VERSION']} "), out
    assert run_ok(host, "R -q -s -e 'cat(1 + 1)'").strip() == "2"


def test_the_user_library_is_the_site_library_and_the_users(host, env, scratch) -> None:
    f = host.file(SITE)
    assert f.is_directory and f.uid == 1000 and f.gid == 1000
    assert env["R_LIBS_USER"] == SITE
    root, _user = scratch
    for who in (host, root):  # the first library, where install.packages() goes, for root and for 1000
        assert run_ok(who, _LIB_PATHS).split()[0] == SITE


def test_r_installs_a_package_into_the_user_library(host) -> None:
    run_ok(host, _MAKE_PACKAGE)
    run_ok(host, "R CMD INSTALL /tmp/apcontract")  # no --library: the first of .libPaths()
    assert run_ok(host, "Rscript -e 'cat(apcontract::answer())'").strip() == "42"
    assert host.file(f"{SITE}/apcontract/DESCRIPTION").uid == 1000
    run_ok(host, "R CMD REMOVE apcontract")


def test_what_root_installs_in_a_dockerfile_the_user_can_load(scratch) -> None:
    root, user = scratch
    run_ok(root, _MAKE_PACKAGE)
    run_ok(root, "R CMD INSTALL /tmp/apcontract")
    assert run_ok(user, "Rscript -e 'cat(apcontract::answer(), find.package(\"apcontract\"))'").split() \
        == ["42", f"{SITE}/apcontract"]


def test_renvs_root_and_cache_are_under_the_users_home_and_theirs(host, env) -> None:
    """renv (run as 1000, or as root in a Dockerfile) keeps its cache under RENV_PATHS_ROOT: the user's, so a
    project library that links into it works for 1000; what root caches is handed to the user."""
    renv_root = env["RENV_PATHS_ROOT"]
    assert renv_root.startswith(f"{HOME}/"), renv_root
    path = renv_root
    while path != HOME:
        f = host.file(path)
        assert f.is_directory and (f.uid, f.gid) == (1000, 1000), path
        path = path.rsplit("/", 1)[0]
    assert env["RENV_CACHE_USER"] == "analyticalplatform"
    run_ok(host, f"mkdir -p {renv_root}/cache/probe && rmdir {renv_root}/cache/probe")
    assert run_ok(host, "Rscript -e 'cat(Sys.getenv(\"RENV_PATHS_ROOT\"))'") == renv_root
