"""Trivy command lines and failure messages (pure)."""

from __future__ import annotations

from pathlib import Path

from ap_build.scan.trivy import DEFAULT_DB_REPOSITORY, Source, TrivyOptions, explain_failure, scan_command

OFFLINE = (
    "2026-11-24T11:06:24Z\tFATAL\tFatal error\trun error: init error: DB error: failed to download vulnerability DB: "
    "OCI artifact error: failed to download artifact from mirror.gcr.io/aquasec/trivy-db:2: OCI repository error: "
    '1 error occurred:\n\t* Get "https://mirror.gcr.io/v2/": dial tcp: lookup mirror.gcr.io: no such host\n\n'
)


def test_one_unfiltered_scan_online_by_default():
    cmd = scan_command("trivy", Source(archive=Path("/x.tar")), TrivyOptions(), Path("/o.json"))
    assert cmd[:4] == ["trivy", "image", "--input", "/x.tar"]
    for flag in ("--skip-version-check", "--disable-telemetry", "--list-all-pkgs=false"):
        assert flag in cmd  # findings only: the package inventory (Trivy's JSON default) is the SBOM's job
    assert cmd[cmd.index("--scanners") + 1] == "vuln,secret"
    assert cmd[cmd.index("--severity") + 1] == "UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL"
    # the online path: Trivy decides when to download; ap-build never adds these unasked
    assert "--skip-db-update" not in cmd and "--db-repository" not in cmd
    assert not any(c.startswith("--ignore") for c in cmd)  # ignores are applied by ap-build, not Trivy


def test_engine_source_and_options():
    opts = TrivyOptions(
        cache_dir=Path("/c"),
        skip_db_update=True,
        db_repository="mirror.example/trivy-db:2",
        skip_dirs=("/a", "/b"),
        secrets=False,
    )
    cmd = scan_command("trivy", Source(image="img:1", docker_host="unix:///s.sock"), opts, Path("/o.json"))
    assert cmd[2:7] == ["img:1", "--image-src", "docker", "--docker-host", "unix:///s.sock"]
    assert cmd[cmd.index("--scanners") + 1] == "vuln"
    assert "--skip-db-update" in cmd and cmd[cmd.index("--cache-dir") + 1] == "/c"
    assert cmd[cmd.index("--db-repository") + 1] == "mirror.example/trivy-db:2"
    assert [cmd[i + 1] for i, c in enumerate(cmd) if c == "--skip-dirs"] == ["/a", "/b"]


def test_offline_failure_says_what_to_do():
    e = explain_failure(OFFLINE, TrivyOptions(cache_dir=Path("/cache")))
    assert e.exit_code == 2
    assert "could not be downloaded from " + DEFAULT_DB_REPOSITORY in e.message
    assert "no such host" in e.message
    assert "--download-db-only" in e.hint and "--cache-dir /cache --skip-db-update" in e.hint
    assert "--db-repository" in e.hint
    e = explain_failure(
        "FATAL\tFatal error\tinit error: DB error: failed to open db: invalid database",
        TrivyOptions(cache_dir=Path("/cache")),
    )
    assert "unreadable" in e.message and "/cache/db" in e.hint
    e = explain_failure("FATAL\tFatal error\tscan error: unable to open archive", TrivyOptions())
    assert e.message.startswith("Trivy failed: scan error: unable to open archive")
