"""The contract every runtime base image meets (see shared spec: runtime-images.md)."""

from __future__ import annotations

import re

from conftest import run_ok

USER, UID, HOME, WORKDIR = "analyticalplatform", 1000, "/home/analyticalplatform", "/opt/analyticalplatform"


def test_user_and_group(host) -> None:
    user = host.user(USER)
    assert (user.uid, user.gid, user.home, user.shell) == (UID, UID, HOME, "/bin/bash")
    assert host.group(USER).gid == UID
    assert run_ok(host, "whoami").strip() == USER
    assert run_ok(host, "id -u").strip() == "1000"
    assert run_ok(host, "id -G").strip() == "1000"


def test_home_and_workdir_belong_to_the_user(host) -> None:
    for path, mode in ((WORKDIR, 0o755), (HOME, None)):
        f = host.file(path)
        assert f.is_directory and f.uid == UID and f.gid == UID, path
        if mode is not None:
            assert f.mode == mode, f"{path} mode {oct(f.mode)}"
    assert run_ok(host, "pwd").strip() == WORKDIR
    run_ok(host, f"touch {WORKDIR}/probe {HOME}/probe")


def test_image_config_is_numeric_user_and_workdir_without_entrypoint(config) -> None:
    assert config["User"] == "1000"
    assert config["WorkingDir"] == WORKDIR
    assert not config.get("Entrypoint")


def test_environment(env, config) -> None:
    expected = {
        "CONTAINER_USER": USER, "CONTAINER_UID": "1000", "CONTAINER_GROUP": USER, "CONTAINER_GID": "1000",
        "ANALYTICAL_PLATFORM_DIRECTORY": WORKDIR, "DEBIAN_FRONTEND": "noninteractive",
        "NVIDIA_DISABLE_REQUIRE": "true", "NVIDIA_VISIBLE_DEVICES": "all",
        "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
        "LD_LIBRARY_PATH": "/usr/local/nvidia/lib:/usr/local/nvidia/lib64",
    }
    assert {k: env.get(k) for k in expected} == expected
    assert env["AIRFLOW_RUNTIME"] in ("python", "r")
    # the image's own version, not the upstream defect `default`
    assert env["AIRFLOW_RUNTIME_VERSION"] == config["Labels"]["org.opencontainers.image.version"] != "default"
    assert env["PATH"].startswith(f"/usr/local/nvidia/bin:/usr/local/cuda/bin:{HOME}/.local/bin:")
    for key in ("AWS_CLI_VERSION", "CUDA_VERSION"):
        assert env.get(key), key


def test_oci_labels(config) -> None:
    labels = config["Labels"] or {}
    for name in ("vendor", "authors", "title", "description", "url", "version", "created", "source"):
        assert labels.get(f"org.opencontainers.image.{name}"), name
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels["org.opencontainers.image.created"])


def test_aws_cli_v2(host, env) -> None:
    out = run_ok(host, "aws --version 2>&1")
    assert out.startswith(f"aws-cli/{env['AWS_CLI_VERSION']} "), out


def test_aws_cli_survives_what_users_put_on_pythons_paths(scratch) -> None:
    """Broken `awscli`/`urllib3`/`botocore` packages where users' Python installs land (the OS Python's
    /usr/local site-packages, PYTHONPATH, the user's venv): `aws` works the same, as root and as the user."""
    root, user = scratch
    before = run_ok(user, "aws --version 2>&1")
    shadow = ("for d in /tmp/shadow $(/usr/bin/python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null)"
              " ${VIRTUAL_ENV:+$(python3 -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')};"
              " do for m in awscli urllib3 botocore; do mkdir -p $d/$m"
              " && echo 'raise ImportError(\"a user package\")' > $d/$m/__init__.py; done; done")
    run_ok(root, shadow)
    for who in (root, user):
        assert run_ok(who, "PYTHONPATH=/tmp/shadow aws --version 2>&1") == before


def test_cuda_runtime_registered_with_the_linker(host, env) -> None:
    conf = run_ok(host, "cat /etc/ld.so.conf.d/*.conf").split()
    assert "/usr/local/nvidia/lib" in conf and "/usr/local/nvidia/lib64" in conf
    if env["CUDA_VERSION"] == "none":
        return
    major = env["CUDA_VERSION"].split(".")[0]
    libs = run_ok(host, "ldconfig -p")
    match = re.search(rf"libcudart\.so\.{major}\S* .*=> (\S+)", libs)
    assert match, f"libcudart.so.{major} is not in the linker cache"
    assert host.file(match.group(1)).exists


def test_no_apt_lists_or_caches_left(host) -> None:
    assert run_ok(host, "ls -A /var/lib/apt/lists | grep -v '^lock$' | grep -v '^partial$' || true").strip() == ""
    assert run_ok(host, "find /var/cache/apt -name '*.deb' | head -n1").strip() == ""


def test_base_trivyignore_is_carried(config) -> None:
    """The base's own ignore list travels in a label (inherited by FROM; `ap-build scan` applies it)."""
    text = config["Labels"]["uk.gov.justice.analytical-platform.trivyignore"]
    entries = [line.split("#", 1)[0].split() for line in text.splitlines()]
    assert all(re.fullmatch(r"[A-Za-z0-9][\w.:/+-]*", e[0]) for e in entries if e), text


MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}  # the config's architecture -> what the kernel calls it


def test_runs_as_the_architecture_it_declares(host, client, image) -> None:
    """Each platform's image of a multi-platform build really is that platform's: its programs run as the
    architecture its config declares (natively, or under emulation), not as the machine that built it."""
    declared = client.api.inspect_image(image)["Architecture"]
    assert run_ok(host, "uname -m").strip() == MACHINES.get(declared, declared)
