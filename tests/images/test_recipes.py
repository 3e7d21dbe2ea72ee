"""Unit tests of the pure half of `ap-build image`: sources, specs, Dockerfile rendering, contract parsing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ap_build.engine import candidate_hosts
from ap_build.errors import EngineError, UsageError
from ap_build.images import build as builder
from ap_build.images.contract import parse_junit, structure_config
from ap_build.images.render import apt_packages, build_context, labels, render_dockerfile, wheels
from ap_build.images.spec import expand, load_sources, load_spec
from ap_build.reference import parse_ref


def spec(runtime: str = "python", profile: str = "upstream", cuda_version: str | None = "default",
         suite: str | None = None, **over: str):
    return load_spec(runtime, version="1.2.3", base="example/base:1@sha256:" + "0" * 64,
                     sources=load_sources(profile, over, environ={}), cuda_version=cuda_version,
                     revision="abc123", created="2025-01-01T00:00:00Z", suite=suite)


def test_expand_supports_defaults_and_nesting() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert expand("${A}", env) == "1"
    assert expand("${MISSING:-x}", env) == "x"
    assert expand("${EMPTY:-${A}}", env) == "1"
    assert expand("${MISSING:-${NOPE:-}}", env) == ""
    assert expand("plain", env) == "plain"


def test_upstream_sources_are_the_public_ones() -> None:
    src = load_sources("upstream", environ={})
    assert (src.aws_cli, src.cuda, src.r) == ("zip", "nvidia", "cran")
    assert src.aws_cli_url.startswith("https://awscli.amazonaws.com/")
    assert src.pypi_index == "https://pypi.org/simple"
    assert not src.uses_loopback()


def test_debian_profile_inherits_upstream_and_reads_the_host_pip_settings() -> None:
    src = load_sources("debian", environ={"PIP_INDEX_URL": "http://127.0.0.1:3141/simple", "PIP_CERT": "/ca.pem"})
    assert (src.aws_cli, src.cuda, src.r) == ("debian", "pypi", "distro")
    assert src.pypi_index == "http://127.0.0.1:3141/simple" and src.ca_bundle == "/ca.pem"
    assert src.aws_cli_fingerprint == load_sources("upstream", environ={}).aws_cli_fingerprint
    assert src.uses_loopback()


@pytest.mark.parametrize(("args", "message"), [
    (("nope",), "unknown sources profile"),
    (("upstream", {"cuda": "conda"}), "is not one of"),
    (("upstream", {"typo_key": "x"}), "unknown source setting"),
    (("missing.toml",), "does not exist"),
])
def test_bad_sources_are_usage_errors(args: tuple, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_sources(*args, environ={})


def test_sources_file(tmp_path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('[mine]\naws_cli = "debian"\napt_mirror = "http://mirror.example/debian"\n')
    src = load_sources(str(f), environ={})
    assert src.aws_cli == "debian" and src.apt_mirror == "http://mirror.example/debian"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"runtime": "julia"}, "unknown runtime"),
    ({"cuda_version": "9.9"}, "unsupported CUDA version"),
    ({"cuda_version": "11.8", "profile": "debian"}, "not available from the 'pypi' source"),
])
def test_bad_specs_are_usage_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        spec(**kwargs)


def test_invalid_version_is_refused() -> None:
    with pytest.raises(UsageError, match="not a valid tag"):
        load_spec("python", version="1.0 beta", base="b", sources=load_sources("upstream", environ={}))


def test_python_upstream_recipe_verifies_every_download() -> None:
    text = render_dockerfile(spec())
    # AWS CLI: signed zip, checked against the pinned key fingerprint
    assert "gpgv --keyring /tmp/aws-cli.gpg /tmp/awscliv2.sig /tmp/awscliv2.zip" in text
    assert "FB5DB77FD5C118B80511ADA8A6310ACC4672475C" in text
    assert "https://awscli.amazonaws.com/awscli-exe-linux-x86_64-2.36.9.zip" in text
    # wheels only with hashes; NVIDIA's apt key only with its fingerprint
    assert "--require-hashes" in text
    assert "EB693B3035CD5710E231E123A4B469963BF863CC" in text
    assert "cuda-cudart-13-0 cuda-compat-13-0" in text
    assert text.count("FROM example/base:1@sha256:") == 2


def test_recipe_ends_as_the_numeric_user_in_the_workdir() -> None:
    for runtime in ("python", "r"):
        lines = [ln for ln in render_dockerfile(spec(runtime)).splitlines() if ln and not ln.startswith("#")]
        assert lines[-2:] == ["USER 1000", "WORKDIR /opt/analyticalplatform"]
        assert not any(ln.startswith(("ENTRYPOINT", "CMD")) for ln in lines)


def test_environment_is_stamped_with_real_values() -> None:
    text = render_dockerfile(spec(profile="debian"))
    assert "AIRFLOW_RUNTIME_VERSION=1.2.3" in text and "AIRFLOW_RUNTIME=python" in text
    assert "AWS_CLI_VERSION=2.23.6" in text and "CUDA_VERSION=13.0.96" in text
    assert "UV_VERSION=0.13.9" in text and "PIP_BREAK_SYSTEM_PACKAGES=1" in text
    r_text = render_dockerfile(spec("r", profile="debian"))
    assert "R_VERSION=4.5.0 \\\n" in r_text and "PIP_BREAK" not in r_text and "uv" not in r_text.split("FROM")[2]


def test_apt_lists_are_removed_in_the_layer_that_creates_them() -> None:
    text = render_dockerfile(spec(profile="debian"))
    for run in re.findall(r"^RUN (?:.*\\\n)*.*$", text, flags=re.M):
        if "apt-get update" in run:
            assert "rm -rf /var/lib/apt/lists/*" in run, run


def test_debian_profile_packages_and_cuda_choices() -> None:
    # the default base is Debian 13 (trixie): Python 3.13, R 4.5, the distribution's AWS CLI and CUDA 12.4
    assert "awscli=2.23.6-1" in apt_packages(spec(profile="debian"))
    assert "r-base-core=4.5.0-3" in apt_packages(spec("r", profile="debian"))
    assert apt_packages(spec(profile="debian", cuda_version="12.4", cuda="debian"))[-1] == "libcudart12"
    with pytest.raises(UsageError, match="not available from the 'debian' source on trixie"):
        spec(profile="debian", cuda_version="11.8", cuda="debian")
    no_cuda = render_dockerfile(spec(profile="debian", cuda_version="none"))
    assert "libcudart" not in no_cuda and "CUDA_VERSION=none" in no_cuda
    assert "/usr/local/nvidia/lib64" in no_cuda  # the driver path is configured even without a runtime


def test_bookworm_stays_selectable_with_its_own_pins() -> None:
    assert "awscli=2.9.19-1" in apt_packages(spec(profile="debian", suite="bookworm"))
    assert "r-base-core=4.2.2.20221110-2" in apt_packages(spec("r", profile="debian", suite="bookworm"))
    old = spec(profile="debian", cuda_version="11.8", cuda="debian", suite="bookworm")
    assert apt_packages(old)[-1] == "libcudart11.0"
    assert "R_VERSION=4.2.2 \\\n" in render_dockerfile(spec("r", profile="debian", suite="bookworm"))


def test_a_release_without_pins_is_a_usage_error_not_a_key_error() -> None:
    noble = spec(profile="debian", suite="noble")  # the upstream Ubuntu base: no distribution pins for it
    with pytest.raises(UsageError, match="pins no aws_cli_debian for noble"):
        render_dockerfile(noble)
    assert "AWS_CLI_VERSION=2.36.9" in render_dockerfile(spec(suite="noble"))  # AWS's zip needs no pin


def test_a_wheel_pin_that_disagrees_with_the_lock_is_a_usage_error() -> None:
    from dataclasses import replace

    s = spec(profile="debian")
    with pytest.raises(UsageError, match=r"not the version pinned in images/common/wheels\.lock"):
        wheels(replace(s, versions={**s.versions, "uv": "0.0.1"}))
    with pytest.raises(UsageError, match=r"not pinned in images/common/wheels\.lock"):
        wheels(replace(s, wheels=("left-pad",)))


def test_source_defaults_live_only_in_sources_toml() -> None:
    """Sources has no defaults of its own; the recipes' data lives in images/ only."""
    import dataclasses

    from ap_build.images import spec as spec_module
    from ap_build.images.spec import Sources

    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(Sources))
    code = Path(spec_module.__file__).read_text()
    for value in ("pypi.org", "awscli.amazonaws.com", "FB5DB77F", "EB693B30", "E298A3A8", "cloud.r-project.org"):
        assert value not in code
    render_code = (Path(spec_module.__file__).parent / "render.py").read_text()
    assert "Ministry of Justice" not in render_code and "ubuntu:24.04" not in (
        Path(spec_module.__file__).parent / "build.py").read_text()
    assert labels(spec())["org.opencontainers.image.vendor"] == "Ministry of Justice"  # from image.toml


def test_wheels_are_hash_pinned() -> None:
    lines = wheels(spec(profile="debian"))
    assert [ln.split("==")[0] for ln in lines] == ["uv", "pip", "setuptools", "wheel", "packaging",
                                                  "nvidia-cuda-runtime"]
    assert all(re.search(r"--hash=sha256:[0-9a-f]{64}$", ln) for ln in lines)
    assert wheels(spec("r", profile="debian", cuda_version="none")) == []


def test_the_users_python_is_a_venv_isolated_from_the_os() -> None:
    """Issue 18: pip/setuptools/wheel come from PyPI by hash into a venv owned by the runtime user; the OS's pip is
    not installed; the venv comes after /usr/local/bin on PATH (aws, uv) and before the OS's /usr/bin."""
    for profile in ("upstream", "debian"):
        s = spec(profile=profile)
        text = render_dockerfile(s)
        fetch, final = text.split("\nFROM ", 2)[1:]
        assert "python3 -m venv --without-pip /opt/venv" in fetch
        assert "/tmp/wheels/pip-*.whl /tmp/wheels/setuptools-*.whl /tmp/wheels/wheel-*.whl" in fetch
        assert "--require-hashes" in fetch
        assert "export PYTHONDONTWRITEBYTECODE=1" in fetch and "--no-compile" in fetch  # no build-time mtimes in .pyc
        assert "COPY --from=fetch --chown=1000:1000 /opt/venv /opt/venv" in final
        assert "python3-pip" not in " ".join(apt_packages(s))
        path = re.search(r"(?m)^\s+PATH=(\S+)", final).group(1).split(":")
        assert path.index("/usr/local/bin") < path.index("/opt/venv/bin") < path.index("/usr/bin")
        assert "VIRTUAL_ENV=/opt/venv" in final
    debian = render_dockerfile(spec(profile="debian"))
    assert "exec /usr/bin/python3 -I -B -c 'import runpy, sys;" in debian  # the OS's AWS CLI, isolated from the user's
    r_text = render_dockerfile(spec("r", profile="debian"))
    assert "/opt/venv" not in r_text and "python3-venv" not in r_text


def test_the_r_user_library_and_renv_root_are_the_users() -> None:
    text = render_dockerfile(spec("r", profile="debian"))
    final = text.split("\nFROM ", 2)[2]
    assert "install -d -o 1000 -g 1000 -m 0755 /usr/local/lib/R/site-library" in final
    assert "/home/analyticalplatform/.cache/R/renv" in final.split("ENV CONTAINER_USER")[0]  # created, owned by 1000
    for line in ("R_LIBS_USER=/usr/local/lib/R/site-library", "RENV_PATHS_ROOT=/home/analyticalplatform/.cache/R/renv",
                 "RENV_CACHE_USER=analyticalplatform"):
        assert line in final, line


def test_context_carries_only_what_the_recipe_copies() -> None:
    ctx = build_context(spec(profile="debian"), ca_bundle=b"CA", trivyignore="CVE-1\n")
    assert set(ctx.files) == {"Dockerfile", "wheels.lock", "ca.crt"}
    # the base image's ignore list travels verbatim in a label (inherited by FROM, read by ap-build scan)
    assert ctx.labels == {"uk.gov.justice.analytical-platform.trivyignore": "CVE-1\n"}
    # the CA bundle only reaches the fetch stage, never the final image
    final_stage = ctx.dockerfile.split("\nFROM ")[-1]
    assert "ca.crt" not in final_stage
    upstream = build_context(spec(), ca_bundle=None, trivyignore="")
    assert upstream.files["aws-cli.asc"].startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_labels() -> None:
    got = labels(spec())
    assert got["org.opencontainers.image.version"] == "1.2.3"
    assert got["org.opencontainers.image.revision"] == "abc123"
    assert got["org.opencontainers.image.created"] == "2025-01-01T00:00:00Z"
    for key in ("vendor", "authors", "title", "description", "url", "source"):
        assert got[f"org.opencontainers.image.{key}"]


def test_created_timestamp_prefers_source_date_epoch(monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert builder.created_timestamp("2024-05-01T10:00:00+01:00") == "1970-01-01T00:00:00Z"
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert builder.created_timestamp("2024-05-01T10:00:00+01:00") == "2024-05-01T09:00:00Z"


def test_full_disk_is_refused_before_building(tmp_path) -> None:
    with pytest.raises(EngineError, match="free on"):
        builder._check_disk(tmp_path, need_bytes=1 << 62)


def test_parse_ref_keeps_registry_ports() -> None:
    assert parse_ref("127.0.0.1:5000/a/b:1.0@sha256:ab") == ("127.0.0.1:5000/a/b", "1.0", "sha256:ab")
    assert parse_ref("localhost:5000/x") == ("localhost:5000/x", None, None)


def test_engine_discovery_order() -> None:
    assert candidate_hosts({"DOCKER_HOST": "tcp://h:2375"}) == ["tcp://h:2375"]
    hosts = candidate_hosts({"XDG_RUNTIME_DIR": "/run/user/7"})
    assert hosts == ["unix:///var/run/docker.sock", "unix:///run/podman/podman.sock",
                     "unix:///run/user/7/podman/podman.sock"]


def test_structure_config_drops_the_cuda_check_only_without_cuda() -> None:
    with_cuda = structure_config("python", cuda=True)
    without = structure_config("python", cuda=False)
    assert len(with_cuda["commandTests"]) == len(without["commandTests"]) + 1
    assert with_cuda["metadataTest"]["user"] == "1000"


def test_parse_junit() -> None:
    xml = ('<testsuites><testsuite><testcase name="a"/><testcase name="b"><failure message="assert 0 == 1&#10;'
           'more">x</failure></testcase></testsuite></testsuites>')
    result = parse_junit(xml)
    assert (result.passed, result.total, result.failures) == (False, 2, ["b: assert 0 == 1"])
    assert parse_junit("<testsuites/>").passed is False


def test_bootstrap_settings() -> None:
    from ap_build.images.base import BootstrapSpec, spec_for

    default = spec_for()
    assert default == BootstrapSpec.default() and default.suite == "trixie"  # the newest Debian stable
    snap = spec_for(snapshot="20250520T000000Z", epoch="1747699200", suite="bookworm")
    assert snap.sources()[0] == ("deb http://snapshot.debian.org/archive/debian/20250520T000000Z bookworm "
                                 "main contrib non-free non-free-firmware")
    assert snap.epoch == 1747699200
    assert snap.ref != default.ref and snap.ref.startswith("localhost/ap-build/debian:bookworm-")
    mirror = spec_for(apt_mirror="http://mirror.example/debian")
    assert mirror.sources() == [f"deb http://mirror.example/debian {s} main contrib non-free non-free-firmware"
                                for s in ("trixie", "trixie-updates")]
    for bad in ({"snapshot": "yesterday"}, {"epoch": "soon"}, {"suite": "hamm"}, {"apt_mirror": "ftp://x/debian"}):
        with pytest.raises(UsageError):
            spec_for(**bad)


def test_base_ignore_list_is_this_repositorys_root_trivyignore_and_must_be_well_formed(tmp_path) -> None:
    from ap_build.resources import base_trivyignore

    root = base_trivyignore().resolve()
    assert root == (Path(__file__).parents[2] / ".trivyignore").resolve()
    assert builder.read_base_ignores(root) == root.read_text()
    good = tmp_path / "ok"
    good.write_text("# why\nCVE-2024-1 exp:2099-01-01  # reason\n")
    assert builder.read_base_ignores(good) == good.read_text()
    bad = tmp_path / "bad"
    bad.write_text("# why\nCVE-2024-1 exp:someday\n")
    with pytest.raises(UsageError, match=rf"{bad}:2: "):
        builder.read_base_ignores(bad)
    with pytest.raises(UsageError, match="cannot read"):
        builder.read_base_ignores(tmp_path / "missing")


@pytest.mark.parametrize("runtime", ["python", "r"])
def test_a_reproducible_recipe_gives_every_stage_the_epoch_and_leaves_nothing_volatile(runtime: str) -> None:
    """The engine's `timestamp` fixes mtimes; what the RUNs write must not depend on the run either: SOURCE_DATE_EPOCH
    in the image's stage (useradd dates the password's last change by it; Python writes hash-based byte code), and the
    logs and caches that record times or inode numbers removed in the layer that writes them."""
    plain = render_dockerfile(spec(runtime, "debian"))
    stamped = render_dockerfile(spec(runtime, "debian"), source_date_epoch=1735689600)
    assert "SOURCE_DATE_EPOCH" not in plain
    fetch, final = stamped.split("\nFROM ")[1:]
    assert "SOURCE_DATE_EPOCH" not in fetch  # the fetch stage's layers stay shared with plain builds
    assert final.count("\nARG SOURCE_DATE_EPOCH=1735689600\n") == 1
    assert final.index("ARG SOURCE_DATE_EPOCH") < final.index("useradd")
    checked = 0
    for step in re.split(r"\n(?=[A-Z]+ )", stamped):
        installs = step.startswith("RUN ") and "apt-get install" in step and "/out" not in step
        if installs or (step.startswith("RUN ") and "ldconfig" in step):
            assert "/var/cache/ldconfig/aux-cache" in step, step
            checked += 1
        if installs:
            assert "/var/log/alternatives.log" in step and "/var/cache/fontconfig/*" in step, step
    assert checked == 2
