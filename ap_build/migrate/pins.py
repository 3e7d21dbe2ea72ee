"""Which `requirements.txt` pins cannot install on the new base, checked with uv before any build.

`uv pip compile --no-deps --only-binary :all: --python-version X --python-platform Y` is asked about the
exact pins (`name==version`), against pip's configured index and CA (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL,
PIP_CERT, pip.conf, as `pip config list` shows them; only http(s) indexes: a build cannot see a file://
one). A pin it refuses has no wheel for the base's Python and platform, or its Requires-Python excludes
that Python. A pin with no wheel but wheels for older Pythons has compiled code: the base has no compiler,
so its source build fails. One with no wheel at all is a source distribution, which builds if it is pure
Python. Each refused pin gets the nearest version that installs (the lowest newer one, else the highest
older one). Side effects: `pip config list` and uv (network, uv's cache); nothing in the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ap_build.images.sources import pip_config
from ap_build.migrate.versions import Target

_PIN_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*===?\s*([A-Za-z0-9][^\s;#\\]*)\s*"
                     r"(;[^#]*)?(?:\s+#.*)?$")
_INDEX_OPT_RE = re.compile(r"^\s*(--index-url|-i|--extra-index-url)[\s=]+(\S+)")
_REQUIRE_RE = re.compile(r"you\s+require\s+([A-Za-z0-9._-]+)(?:\[[^\]]*\])?===?")
_NETWORK_RE = re.compile(r"Failed to fetch|error sending request|dns error|Could not connect|timed out|"
                         r"certificate|Connection refused|Network is unreachable", re.I)
TIMEOUT = 120
_FILE_RE = r"[A-Za-z0-9_.]+-{version}(?:-[^\s\"'<>/#]*)?\.(?:whl|tar\.gz|zip|tar\.bz2)"


@dataclass(frozen=True)
class Pin:
    """One exact pin of requirements.txt."""

    line: int
    name: str
    version: str
    raw: str  # the requirement as written (no comment)

    @property
    def key(self) -> str:
        return normalise(self.name)


@dataclass(frozen=True)
class PinProblem:
    """A pin that cannot install on the base, and the nearest version that can ("" if none)."""

    pin: Pin
    reason: str
    nearest: str = ""

    def line(self, path: str = "requirements.txt") -> str:
        near = f"; nearest that installs: {self.pin.name}=={self.nearest}" if self.nearest else \
            "; no version installs there"
        return f"{path}:{self.pin.line}: {self.pin.name}=={self.pin.version} cannot install: {self.reason}{near}"


@dataclass
class PinReport:
    """The check's outcome: `checked` False says why (offline, no uv, Python not known)."""

    checked: bool
    summary: str  # what was checked against what, or why it was not checked
    problems: list[PinProblem] = field(default_factory=list)
    source_builds: list[Pin] = field(default_factory=list)  # no wheel at all: builds if pure Python
    skipped: list[str] = field(default_factory=list)  # lines not checked (URLs, VCS, -r ...)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(text: str) -> tuple[list[Pin], list[str], list[str]]:
    """(exact pins, index options written in the file, lines that are not checked)."""
    pins: list[Pin] = []
    index_opts: list[str] = []
    skipped: list[str] = []
    for n, line in _logical_lines(text):
        stripped = re.sub(r"\s--hash[=\s]\S+", "", " " + line.split(" #", 1)[0]).strip()  # hashes: pip's check
        if not stripped or stripped.startswith("#"):
            continue
        m = _PIN_RE.match(stripped)
        if m and "://" not in stripped and " @ " not in stripped:
            raw = f"{m.group(1)}{m.group(2) or ''}=={m.group(3)}" + (f" {m.group(4).strip()}" if m.group(4) else "")
            pins.append(Pin(n, m.group(1), m.group(3), raw))
        elif _INDEX_OPT_RE.match(stripped):
            index_opts.append(stripped)
        elif stripped.startswith("-") or "://" in stripped or " @ " in stripped or "git+" in stripped:
            skipped.append(f"requirements.txt:{n}: {stripped} (not a version pin: not checked)")
    return pins, index_opts, skipped


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, line) with backslash continuations joined, as pip reads a requirements file."""
    out: list[tuple[int, str]] = []
    start, parts = 0, []
    for n, line in enumerate(text.splitlines(), 1):
        if not parts:
            start = n
        if line.rstrip().endswith("\\") and not line.lstrip().startswith("#"):
            parts.append(line.rstrip()[:-1])
            continue
        out.append((start, " ".join([*parts, line])))
        parts = []
    if parts:
        out.append((start, " ".join(parts)))
    return out


def pip_settings(environ: dict[str, str] | None = None) -> tuple[str, list[str], str]:
    """(index URL, extra index URLs, CA file) as pip would use them: env first, then pip's config files."""
    env = dict(os.environ if environ is None else environ)
    config = pip_config(env)

    def setting(var: str, name: str) -> str:
        if env.get(var):
            return env[var]
        return next((config[f"{s}.{name}"] for s in ("install", "global") if config.get(f"{s}.{name}")), "")

    def http(url: str) -> bool:
        return urllib.parse.urlsplit(url).scheme in ("http", "https")

    index = setting("PIP_INDEX_URL", "index-url")
    extras = [u for u in setting("PIP_EXTRA_INDEX_URL", "extra-index-url").split() if http(u)]
    return (index if http(index) else ""), extras, setting("PIP_CERT", "cert")


def uv_binary() -> str | None:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


class _Uv:
    """Runs `uv pip compile --no-deps --only-binary :all:` on a few requirements at a time."""

    def __init__(self, uv: str, target: Target, index_opts: list[str], environ: dict[str, str] | None) -> None:
        index, extras, cert = pip_settings(environ)
        self.uv, self.target, self.index_opts = uv, target, index_opts
        self.index = index or "https://pypi.org/simple"
        self.env = {k: v for k, v in (os.environ if environ is None else environ).items() if not k.startswith("UV_")}
        self.env.update(UV_INDEX_URL=self.index, UV_PYTHON_DOWNLOADS="never", NO_COLOR="1")
        self.env["UV_EXTRA_INDEX_URL"] = " ".join(extras)
        if cert:
            self.env["SSL_CERT_FILE"] = cert
        self.tmp = tempfile.mkdtemp(prefix="ap-build-pins-")

    def compile(self, requirements: list[str], *, python: str = "", platform: str = "",
                lowest: bool = False, deps: bool = False) -> tuple[bool, str]:
        """(resolved, uv's output: the resolution or the error)."""
        fd, path = tempfile.mkstemp(suffix=".txt", dir=self.tmp)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join([*self.index_opts, *requirements]) + "\n")
        cmd = [self.uv, "pip", "compile", "-q", "--no-header", "--no-annotate", "--no-deps", "--only-binary", ":all:",
               "--python-version", python or self.target.version,
               "--python-platform", platform or self.target.platform or "linux", path]
        if lowest:
            cmd[3:3] = ["--resolution", "lowest"]
        if deps:
            cmd.remove("--no-deps")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=self.env, cwd=self.tmp,
                                  check=False)
        except subprocess.TimeoutExpired:
            return False, f"uv timed out after {TIMEOUT} s"
        finally:
            Path(path).unlink(missing_ok=True)
        return proc.returncode == 0, (proc.stdout if proc.returncode == 0 else proc.stderr)

    def index_files(self, pin: Pin) -> tuple[list[str], str] | None:
        """(the Python tags of the pin's platform wheels, its Requires-Python) from the index's project page
        (PEP 691 JSON or PEP 503 HTML); tags [] when it has only a source distribution; None when unreadable."""
        import html
        import json

        import requests

        url = self.index.rstrip("/") + f"/{pin.key}/"
        try:
            resp = requests.get(url, timeout=30, verify=self.env.get("SSL_CERT_FILE") or True,
                                headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.5"})
            resp.raise_for_status()
            if "json" in resp.headers.get("Content-Type", ""):
                listed = [(f["filename"], f.get("requires-python") or "") for f in json.loads(resp.text)["files"]]
            else:
                listed = [(name, html.unescape(rp)) for rp, name in
                          re.findall(r"<a\b[^>]*?(?:data-requires-python=\"([^\"]*)\")?[^>]*>([^<]+)</a>", resp.text)]
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return None
        mine = re.compile(_FILE_RE.format(version=re.escape(pin.version)))
        tags: list[str] = []
        requires = ""
        for name, req in listed:
            if not mine.fullmatch(name.strip()):
                continue
            requires = requires or req
            parts = name.strip()[: -len(".whl")].split("-") if name.strip().endswith(".whl") else []
            if len(parts) >= 5 and parts[-2] != "none" and parts[-3] not in tags:
                tags.append(parts[-3])
        return sorted(tags, key=lambda t: [int(x) if x.isdigit() else x for x in re.findall(r"\d+|\D+", t)]), \
            requires

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _error_line(err: str) -> str:
    lines = [ln.strip() for ln in err.splitlines() if ln.strip() and not ln.startswith("warning")]
    return lines[-1] if lines else "uv failed"


def check_pins(text: str, target: Target, *, environ: dict[str, str] | None = None,
               offline_reason: str = "") -> PinReport:
    """Check every exact pin of `text` (requirements.txt) against the base `target` (see the module doc)."""
    pins, index_opts, skipped = parse_pins(text)
    if not pins:
        return PinReport(True, "no exact pins (name==version) to check", skipped=skipped)
    if offline_reason:
        return PinReport(False, f"not checked: {offline_reason}", skipped=skipped)
    if not target.version:
        return PinReport(False, f"not checked: the base's Python version is not known ({target.how})", skipped=skipped)
    uv = uv_binary()
    if not uv:
        return PinReport(False, "not checked: uv is not installed (pip install uv)", skipped=skipped)
    runner = _Uv(uv, target, index_opts, environ)
    try:
        return _check(runner, pins, skipped)
    finally:
        runner.close()


def _refused(runner: _Uv, pins: list[Pin]) -> list[tuple[Pin, str]] | str:
    """The pins uv refuses, each with uv's error, found by removing one culprit at a time; a str on failure."""
    left = list(pins)
    refused: list[tuple[Pin, str]] = []
    while left:
        ok, out = runner.compile([p.raw for p in left])
        if ok:
            break
        culprit = _REQUIRE_RE.search(out)
        key = normalise(culprit.group(1)) if culprit else ""
        if _NETWORK_RE.search(out):
            return f"not checked: the index {runner.index} could not be reached ({_error_line(out)})"
        hit = [p for p in left if p.key == key] or (left if len(left) == 1 else [])
        if not hit:
            why = "uv could not resolve the pins"
            return f"not checked: {why} ({_error_line(out)})"
        refused += [(p, out) for p in hit]
        left = [p for p in left if p not in hit]
    return refused


def _check(runner: _Uv, pins: list[Pin], skipped: list[str]) -> PinReport:
    where = f"Python {runner.target.version} on {runner.target.platform or 'linux'}, index {runner.index}"
    ok, _ = runner.compile([p.raw for p in pins])
    refused: list[tuple[Pin, str]] = []
    if not ok:  # some pins are refused: find them in parallel chunks
        size = max(1, -(-len(pins) // 6))
        with ThreadPoolExecutor(max_workers=4) as pool:
            for found in pool.map(lambda chunk: _refused(runner, chunk),
                                  [pins[i:i + size] for i in range(0, len(pins), size)]):
                if isinstance(found, str):
                    return PinReport(False, found, skipped=skipped)
                refused += found
        with ThreadPoolExecutor(max_workers=4) as pool:
            verdicts = list(pool.map(lambda r: _verdict(runner, r[0], r[1]), refused))
    else:
        verdicts = []
    problems = [v for v in verdicts if isinstance(v, PinProblem)]
    builds = [v for v in verdicts if isinstance(v, Pin)]
    summary = f"checked {len(pins)} pin(s) with uv for {where}"
    return PinReport(True, summary, problems, builds, skipped)


def _verdict(runner: _Uv, pin: Pin, err: str) -> PinProblem | Pin:
    """Why uv refused `pin`, and the nearest version that installs; a Pin back when it only has an sdist."""
    py = f"Python {runner.target.version}"
    found = runner.index_files(pin)
    m = re.search(r"only supports (\S+)\)?", err) or re.search(r"depends on Python(\S+)", err)
    if m or (found and _excludes(found[1], runner.target.version)):
        spec = m.group(1).rstrip(").") if m else found[1]  # type: ignore[index]
        reason = f"its Requires-Python ({spec}) excludes {py}"
    elif "not found in the package registry" in err:
        return PinProblem(pin, f"{pin.name} is not on the index {runner.index}")
    elif "there is no version of" in err:
        reason = "no such version on the index"
    else:
        tags = found[0] if found else None
        if tags is not None and not tags:
            return pin  # a source distribution only: it builds on the base if it is pure Python
        shown = ", ".join(tags[:6]) + (", ..." if tags and len(tags) > 6 else "") if tags else "other platforms"
        reason = (f"no wheel for {py} on {runner.target.platform} (wheels only for {shown}), and its source "
                  f"build {COMPILER_NOTE}")
    return PinProblem(pin, reason, _nearest(runner, pin))


def _excludes(requires_python: str, version: str) -> bool:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return bool(requires_python) and version not in SpecifierSet(requires_python)
    except InvalidSpecifier:
        return False


def _nearest(runner: _Uv, pin: Pin) -> str:
    """The lowest newer version that installs on the base, else the highest older one ("" if none)."""
    for spec, lowest in ((f"{pin.name}>{pin.version}", True), (f"{pin.name}<{pin.version}", False)):
        ok, out = runner.compile([spec], lowest=lowest)
        m = re.search(rf"^{re.escape(pin.key)}==(\S+)", out.replace("_", "-"), re.M | re.I) if ok else None
        if m:
            return m.group(1)
    return ""


COMPILER_NOTE = "needs a compiler, which the base does not have"


def check_together(text: str, target: Target, *, environ: dict[str, str] | None = None) -> str:
    """Whether the exact pins of `text` (a proposal) resolve together, dependencies included, as wheels for the
    base: a sentence for MIGRATION.md."""
    pins, index_opts, _ = parse_pins(text)
    uv = uv_binary()
    if not pins or not uv or not target.version:
        return "The proposal as a whole was not checked."
    runner = _Uv(uv, target, index_opts, environ)
    try:
        ok, out = runner.compile([p.raw for p in pins], deps=True)
    finally:
        runner.close()
    if ok:
        return f"uv resolved the proposed pins together, with their dependencies, for {target.label}."
    return (f"The proposed pins do not resolve together for {target.label} (uv: {_cause(out)}): "
            "adjust the pins it names before building.")


def _cause(err: str) -> str:
    """uv's explanation (every line from the first `cause:` to its hints), on one line."""
    text = err.split("cause:", 1)[1].split("\nhint:", 1)[0] if "cause:" in err else _error_line(err)
    return " ".join(text.replace("cause:", "").split())


def with_compiler(report: PinReport) -> PinReport:
    """The same check for a Dockerfile that installs a compiler (gcc, build-essential): a pin whose only way in
    is a source build is no longer refused; it is listed as a source build (slow, and needs its C libraries)."""
    compiled = [p for p in report.problems if p.reason.endswith(COMPILER_NOTE)]
    if not compiled:
        return report
    return PinReport(report.checked, report.summary, [p for p in report.problems if p not in compiled],
                     report.source_builds + [p.pin for p in compiled], report.skipped)


def proposal(text: str, problems: list[PinProblem]) -> str:
    """requirements.txt with each refused pin moved to its nearest installable version (line endings kept);
    a moved pin's `--hash` lines go (they were the old version's: regenerate them)."""
    by_line = {p.pin.line: p for p in problems if p.nearest}
    out: list[str] = []
    dropping = False
    for n, line in enumerate(text.splitlines(keepends=True), 1):
        body = line.rstrip("\r\n")
        if dropping:
            dropping = body.rstrip().endswith("\\")
            if re.fullmatch(r"\s*(--hash[=\s]\S+\s*)+\\?\s*", body):
                continue
        p = by_line.get(n)
        if p:
            line = re.sub(rf"(===?\s*){re.escape(p.pin.version)}(?=[\s;#\\]|$)", rf"\g<1>{p.nearest}", line, count=1)
            if body.rstrip().endswith("\\") and "--hash" in text:
                dropping = True
                kept = re.sub(r"\s*(--hash[=\s]\S+\s*)*\\\s*$", "", line.rstrip("\r\n"))
                line = kept + line[len(line.rstrip("\r\n")):]
        out.append(line)
    return "".join(out)
