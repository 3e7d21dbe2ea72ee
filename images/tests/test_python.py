"""The Python runtime: python3 with pip, uv/uvx, user installs into ~/.local."""

from __future__ import annotations

from conftest import run_ok

# A minimal wheel written inside the container, so `pip install --user` needs no network.
_MAKE_WHEEL = r"""python3 - <<'PY'
import base64, hashlib, zipfile
files = {
    "apcontract/__init__.py": "VALUE = 42\n",
    "apcontract-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: apcontract\nVersion: 1.0\n",
    "apcontract-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
with zipfile.ZipFile("/tmp/apcontract-1.0-py3-none-any.whl", "w") as z:
    for name, text in files.items():
        z.writestr(name, text)
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text)}")
    record.append("apcontract-1.0.dist-info/RECORD,,")
    z.writestr("apcontract-1.0.dist-info/RECORD", "\n".join(record) + "\n")
PY"""


def test_python3_and_pip(host, env) -> None:
    assert run_ok(host, "python3 --version").startswith("Python 3.")
    assert run_ok(host, "python3 -m pip --version").startswith("pip ")
    assert host.run("command -v python").rc != 0, "only python3 should exist"
    assert env["PIP_BREAK_SYSTEM_PACKAGES"] == "1"


def test_uv_and_uvx_are_pinned(host, env) -> None:
    assert run_ok(host, "uv --version").split()[1] == env["UV_VERSION"]
    assert run_ok(host, "uvx --version").split()[1] == env["UV_VERSION"]
    assert host.file("/usr/local/bin/uv").is_file and host.file("/usr/local/bin/uvx").is_file


def test_pip_install_user_works_as_1000(host) -> None:
    run_ok(host, _MAKE_WHEEL)
    run_ok(host, "python3 -m pip install --user --no-index /tmp/apcontract-1.0-py3-none-any.whl")
    assert run_ok(host, "python3 -c 'import apcontract; print(apcontract.VALUE, apcontract.__file__)'") \
        .startswith("42 /home/analyticalplatform/.local/")
