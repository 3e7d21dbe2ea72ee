"""The Python runtime: the user's own Python (a venv) isolated from the OS's Python packages, uv/uvx.

The guarantees users rely on: `python3`, `python` and `pip` are the venv's; its pip can upgrade itself (it is
PyPI's, with a RECORD, not the distribution's); any pure-Python pin installs whatever the OS ships; root (in a
Dockerfile) and uid 1000 (at run time) can both install; nothing installed or removed there breaks `aws` or `uv`.
Every install here is from a wheel made in the container, so the suite needs no network.
"""

from __future__ import annotations

import json

from conftest import make_wheel, run_ok

# Rebuild the installed pip as a wheel (from its RECORD), so `pip install --force-reinstall` replaces pip by pip:
# the uninstall-then-install that `pip install --upgrade pip` does, offline.
_REPACK_PIP = r"""python3 - <<'PY'
import base64, hashlib, importlib.metadata as md, zipfile
dist = md.distribution("pip")
skip = ("INSTALLER", "REQUESTED", "RECORD", "direct_url.json")
record = []
with zipfile.ZipFile(f"/tmp/pip-{dist.version}-py3-none-any.whl", "w") as z:
    for f in dist.files:
        name = str(f)
        if name.startswith("..") or "__pycache__" in name or name.rsplit("/", 1)[-1] in skip:
            continue
        data = f.read_binary()
        z.writestr(name, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    info = next(str(f).split("/")[0] for f in dist.files if ".dist-info/" in str(f))
    record.append(f"{info}/RECORD,,")
    z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
print(f"/tmp/pip-{dist.version}-py3-none-any.whl")
PY"""


def _venv(env: dict[str, str]) -> str:
    return env["VIRTUAL_ENV"]


def test_python3_python_and_pip_are_the_venvs(host, env) -> None:
    venv = _venv(env)
    for tool in ("python3", "python", "pip", "pip3"):
        assert run_ok(host, f"command -v {tool}").strip() == f"{venv}/bin/{tool}", tool
    assert run_ok(host, "python3 --version").startswith("Python 3.")
    assert run_ok(host, "python3 -c 'import sys; print(sys.prefix, sys.base_prefix != sys.prefix)'").split() \
        == [venv, "True"]
    assert f"from {venv}/lib/" in run_ok(host, "pip --version")
    # pip finds no externally-managed marker in a venv: the variable stays for compatibility and is inert there
    assert env["PIP_BREAK_SYSTEM_PACKAGES"] == "1"


def test_pip_setuptools_wheel_are_from_pypi_not_the_os(host) -> None:
    listed = {p["name"].lower() for p in json.loads(run_ok(host, "pip list --format=json"))}
    assert {"pip", "setuptools", "wheel"} <= listed <= {"pip", "setuptools", "wheel", "packaging"}, listed
    # installed by pip from PyPI's wheels: each has a RECORD (the distribution's pip has none, so it cannot
    # uninstall itself: `uninstall-no-record-file`)
    has_record = "python3 -c 'import importlib.metadata as m, sys; print(bool(m.distribution(sys.argv[1]).files))'"
    for name in ("pip", "setuptools", "wheel"):
        assert run_ok(host, f"{has_record} {name}").strip() == "True", name
    assert host.run("/usr/bin/python3 -c 'import pip'").rc != 0, "the OS's Python must not carry a pip"


def test_the_venv_sees_none_of_the_os_python_packages(host) -> None:
    paths = run_ok(host, "python3 -c 'import sys; print(\"\\n\".join(sys.path))'").split()
    assert not [p for p in paths if "dist-packages" in p], paths
    assert host.run("python3 -c 'import urllib3'").rc != 0  # the OS may ship one (with its AWS CLI): not ours


def test_the_venv_belongs_to_the_user_who_can_install_at_run_time(host, env) -> None:
    venv = _venv(env)
    site = run_ok(host, "python3 -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])'").strip()
    for path in (venv, f"{venv}/bin", site):
        f = host.file(path)
        assert f.is_directory and (f.uid, f.gid) == (1000, 1000), path
    run_ok(host, make_wheel("apcontract", "1.0", {"apcontract/__init__.py": "VALUE = 42\n"}))
    run_ok(host, "pip install --no-index /tmp/apcontract-1.0-py3-none-any.whl")
    assert run_ok(host, "python3 -c 'import apcontract; print(apcontract.VALUE, apcontract.__file__)'") \
        .startswith(f"42 {site}/")
    run_ok(host, "pip uninstall -y apcontract")


def test_uv_and_uvx_are_pinned_and_install_into_the_venv(host, env) -> None:
    assert run_ok(host, "uv --version").split()[1] == env["UV_VERSION"]
    assert run_ok(host, "uvx --version").split()[1] == env["UV_VERSION"]
    assert host.file("/usr/local/bin/uv").is_file and host.file("/usr/local/bin/uvx").is_file
    run_ok(host, make_wheel("apuv", "1.0", {"apuv/__init__.py": ""}))
    run_ok(host, "uv pip install --quiet --offline /tmp/apuv-1.0-py3-none-any.whl")  # VIRTUAL_ENV: the venv
    assert run_ok(host, "pip list --format=freeze").count("apuv==1.0") == 1
    run_ok(host, "uv pip uninstall --quiet apuv")


def test_pip_replaces_itself_as_root(scratch) -> None:
    """What `RUN python -m pip install --upgrade pip` does in a Dockerfile: uninstall pip, install pip."""
    root, user = scratch
    wheel = run_ok(root, _REPACK_PIP).strip()
    out = run_ok(root, f"python -m pip install --no-index --force-reinstall --no-deps {wheel} 2>&1")
    assert "Successfully installed pip" in out, out
    assert run_ok(user, "pip --version").startswith("pip ")


def test_a_pin_that_clashes_with_the_os_installs_and_breaks_no_os_tool(scratch) -> None:
    """An old urllib3 (what `requests==2.20.0` needs), even one that fails on import, and a PyPI `awscli` with its
    own `aws` script install as root; removing pip's companions too: `aws` and `uv` work the same after, also
    with the venv on PYTHONPATH, and the OS's own urllib3 (if its AWS CLI brought one) is untouched."""
    root, user = scratch
    purelib = "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')"
    tools = (f"aws --version 2>&1; PYTHONPATH={purelib} aws --version 2>&1;"
             " uv --version; /usr/bin/python3 -I -c 'import urllib3; print(urllib3.__version__)'"
             " 2>/dev/null || echo no OS urllib3")
    before = run_ok(user, tools)
    urllib3 = make_wheel("urllib3", "1.24.3", {"urllib3/__init__.py": "raise ImportError('a user pin')\n"})
    awscli = make_wheel("awscli", "1.0.0", {"awscli-1.0.0.data/scripts/aws": "#!/bin/sh\necho aws-cli/1.0.0\n",
                                             "awscli/__init__.py": ""})
    for wheel in (urllib3, awscli):
        run_ok(root, wheel)
    run_ok(root, "pip install --no-index /tmp/urllib3-1.24.3-py3-none-any.whl /tmp/awscli-1.0.0-py3-none-any.whl"
                 " && pip uninstall -y setuptools wheel")
    assert "urllib3==1.24.3" in run_ok(user, "pip list --format=freeze")
    lines = before.splitlines()
    assert lines[0].startswith("aws-cli/2.") and lines[1] == lines[0] and lines[2].startswith("uv "), before
    for who in (root, user):
        assert run_ok(who, tools) == before
