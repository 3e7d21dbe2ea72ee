"""The R runtime: R with a site-library the non-root user can install into."""

from __future__ import annotations

from conftest import run_ok

SITE = "/usr/local/lib/R/site-library"


def test_r_version_matches_env(host, env) -> None:
    out = run_ok(host, "R --version")
    assert out.startswith(f"R version {env['R_VERSION']} "), out
    assert run_ok(host, "R -q -s -e 'cat(1 + 1)'").strip() == "2"


def test_site_library_is_owned_by_the_user(host) -> None:
    f = host.file(SITE)
    assert f.is_directory and f.uid == 1000 and f.gid == 1000
    assert SITE in run_ok(host, "Rscript -e 'cat(.libPaths(), sep=\"\\n\")'").split()


def test_r_installs_a_package_into_the_site_library(host) -> None:
    run_ok(host, "mkdir -p /tmp/apcontract/R && printf 'Package: apcontract\\nVersion: 1.0\\nTitle: t\\n"
                 "Description: d.\\nLicense: MIT\\nAuthor: a\\nMaintainer: a <a@b.c>\\n' > /tmp/apcontract/DESCRIPTION"
                 " && echo 'export(answer)' > /tmp/apcontract/NAMESPACE"
                 " && echo 'answer <- function() 42' > /tmp/apcontract/R/answer.R")
    run_ok(host, f"R CMD INSTALL --library={SITE} /tmp/apcontract")
    assert run_ok(host, "Rscript -e 'cat(apcontract::answer())'").strip() == "42"
    assert host.file(f"{SITE}/apcontract/DESCRIPTION").uid == 1000
