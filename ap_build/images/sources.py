"""Which sources a build can use from this machine, checked before the build starts.

`--sources auto` (the default) takes each group of downloads (PyPI, the AWS CLI, CUDA, R, Debian's
archive) from `upstream` where it answers, else from the host's own package settings: the `debian`
profile of images/sources.toml read with pip's configured index and CA (`pip config`, PIP_INDEX_URL,
pip.conf) and the host's apt sources. Any other profile is probed as it is. A source that does not
answer stops the build before it starts, naming the setting to change. Side effects: short HTTP
probes (in parallel), `pip config list`, reading /etc/apt.
"""

from __future__ import annotations

import ast
import email.parser
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ap_build.errors import SourceError
from ap_build.images.platforms import Platform
from ap_build.images.spec import ImageSpec, Sources, load_sources, load_spec

PROBE_TIMEOUT = 3.0

# The settings of each group of downloads: `auto` switches a group as a whole, and never one the user set.
GROUPS: dict[str, tuple[str, ...]] = {
    "pypi": ("pypi_index", "ca_bundle"),
    "aws_cli": ("aws_cli", "aws_cli_url", "aws_cli_key", "aws_cli_fingerprint"),
    "cuda": ("cuda", "nvidia_repo", "nvidia_key_fingerprint"),
    "r": ("r", "cran_repo", "cran_key_url", "cran_key_fingerprint"),
    "apt": ("apt_mirror",),
}
# What to change when a group's source does not answer.
FIXES = {
    "pypi": "--pypi-index URL (and --ca-bundle FILE), or pip's index-url (PIP_INDEX_URL)",
    "aws_cli": "--aws-cli-url URL, or --aws-cli debian",
    "cuda": "--cuda-source pypi, --pypi-index URL, or --cuda-version none",
    "r": "--r-source distro",
    "apt": "--apt-mirror URL or --snapshot TIMESTAMP",
}


@dataclass(frozen=True)
class Probe:
    """One download location a build needs: `exact` URLs must answer 2xx, others any HTTP answer from the host."""

    group: str
    url: str
    exact: bool = True
    cafile: str = ""


@dataclass(frozen=True)
class Choice:
    sources: Sources
    bootstrap_mirror: tuple[str, str] | None  # the host's Debian mirror (+ security) if Debian's archive is silent
    line: str  # what was chosen and why, for the user


def answers(probe: Probe, timeout: float = PROBE_TIMEOUT) -> str:
    """'' if `probe.url` answers, else why not (a short phrase). Honours the http(s)_proxy variables.

    TLS is checked as the build will check it: against the probe's CA bundle, else the public CAs only
    (certifi's), not this machine's own trust store, which may hold a proxy's CA the build does not have."""
    import certifi

    try:
        context = ssl.create_default_context(cafile=probe.cafile or certifi.where())
    except (OSError, ssl.SSLError) as exc:
        return f"CA bundle {probe.cafile}: {exc}"
    for method in ("HEAD", "GET"):
        request = urllib.request.Request(probe.url, method=method, headers={"User-Agent": "ap-build"})
        try:
            urllib.request.urlopen(request, timeout=timeout, context=context).close()
            return ""
        except urllib.error.HTTPError as exc:
            if method == "HEAD" and exc.code in (405, 501):
                continue  # a server without HEAD: ask again with GET
            return "" if not probe.exact else f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                return "timed out"
            if isinstance(reason, ssl.SSLCertVerificationError):
                return f"TLS: {reason.verify_message}"
            return getattr(reason, "strerror", None) or str(reason)
    return "no answer"


def probes(spec: ImageSpec, bootstrap: tuple[str, str] | None = None) -> list[Probe]:
    """Where the build of `spec` downloads from (pure). `bootstrap` is (mirror, suite) when the base is
    bootstrapped from Debian's archive."""
    src, out = spec.sources, []
    index = src.pypi_index.rstrip("/")
    wheel_names = list(spec.wheels)
    if spec.cuda_version and src.cuda == "pypi":  # PyPI's index and CA: the pypi group
        out.append(Probe("pypi", f"{index}/{spec.cuda['wheel'].split('==')[0]}/", cafile=src.ca_bundle))
    if wheel_names:
        out.append(Probe("pypi", f"{index}/{wheel_names[0]}/", cafile=src.ca_bundle))
    if src.aws_cli == "zip":
        out.append(Probe("aws_cli", src.aws_cli_url.format(version=spec.pin("aws_cli"))))
    if spec.cuda_version and src.cuda == "nvidia":
        out.append(Probe("cuda", src.nvidia_repo.split("{")[0], exact=False))
    if spec.runtime == "r" and src.r == "cran":
        out.append(Probe("r", src.cran_key_url))
    if bootstrap:
        out.append(Probe("apt", f"{bootstrap[0].rstrip('/')}/dists/{bootstrap[1]}/InRelease"))
    elif src.apt_mirror:
        out.append(Probe("apt", src.apt_mirror, exact=False))
    return out


def check(found: list[tuple[Probe, str]], setting: str = "") -> None:
    """SourceError for the first probe that did not answer, naming the setting to change."""
    for probe, why in found:
        if why:
            raise SourceError(f"{probe.url} does not answer ({why}): the build would fail on it",
                              hint=f"change {setting or FIXES[probe.group]}")


def run_probes(todo: list[Probe], probe: Callable[[Probe], str] = answers) -> list[tuple[Probe, str]]:
    """Every probe at once (a few seconds at most)."""
    if not todo:
        return []
    with ThreadPoolExecutor(max_workers=len(todo)) as pool:
        return list(zip(todo, pool.map(probe, todo), strict=True))


def choose(requested: str, overrides: dict[str, str], *, runtime: str, cuda_version: str | None, suite: str,
           bootstrap_mirror: str = "", environ: dict[str, str] | None = None,
           probe: Callable[[Probe], str] | None = answers,
           host_apt: Callable[[], tuple[str, str]] | None = None,
           profiles: tuple[str, str] = ("upstream", "debian"), platform: Platform | None = None) -> Choice:
    """The sources of one build, every location checked: `requested` is `auto`, a profile or a .toml file;
    `bootstrap_mirror` the Debian mirror the base will be bootstrapped from ('' if it is not).
    `probe=None` trusts a named profile unchecked (a dry run); `auto` always probes: it has to choose.
    `profiles` are auto's (preferred, fallback) profiles: the upstream sources and the host's settings.
    `platform`: the target the locations are resolved for (None: this machine's)."""
    boot = (bootstrap_mirror, suite) if bootstrap_mirror else None

    def needed(src: Sources) -> list[Probe]:
        spec = load_spec(runtime, version="0", base="", sources=src, cuda_version=cuda_version, suite=suite,
                         platform=platform)
        return probes(spec, boot)

    if requested != "auto":
        src = load_sources(requested, overrides, environ)
        todo = needed(src)
        if probe is None:
            return Choice(src, None, f"sources: {src.name} (not checked)")
        check(run_probes(todo, probe))
        return Choice(src, None, f"sources: {src.name}, {len(todo)} download location(s) answer")
    upstream = load_sources(profiles[0], overrides, environ)
    explicit = {group for group, keys in GROUPS.items() if any(k in overrides for k in keys)}
    values = {k: getattr(upstream, k) for k in GROUPS["pypi"] + GROUPS["aws_cli"] + GROUPS["cuda"] + GROUPS["r"]}
    silent: dict[str, str] = {}  # group -> why upstream was not used
    host: Sources | None = None
    host_mirror: tuple[str, str] | None = None
    used: set[str] = set()
    while True:  # a switched group can need another (CUDA's wheels need the host's PyPI): at most once each
        chosen = Sources(name="auto", apt_mirror=upstream.apt_mirror, **values)
        found = run_probes(needed(chosen), probe or answers)
        used |= {p.group for p, _why in found}
        check([(p, why) for p, why in found if p.group in explicit])  # what the user set is never switched
        fresh = {p.group: f"{urllib.parse.urlsplit(p.url).netloc}: {why}" for p, why in found
                 if why and p.group not in silent}
        if not fresh:
            check(found)  # the host's settings did not answer either: fail before the build starts
            break
        silent.update(fresh)
        host = host or load_sources(profiles[1], overrides, host_environ(environ))
        for group in set(fresh) - {"apt"}:
            values.update({k: getattr(host, k) for k in GROUPS[group]})
        if "apt" in fresh:
            host_mirror = (host_apt or host_apt_mirrors)()
            if not host_mirror[0]:
                raise SourceError(f"Debian's archive does not answer ({fresh['apt']}) and this machine has no "
                                  "Debian apt source to use instead", hint=f"pass {FIXES['apt']}")
            boot = (host_mirror[0], suite)
    return Choice(chosen, host_mirror, "sources: auto, " + describe(chosen, silent, host_mirror, used))


def describe(src: Sources, silent: dict[str, str], host_mirror: tuple[str, str] | None, used: set[str]) -> str:
    """One line: where each group comes from and, where upstream was silent, why it was not used (pure)."""
    parts = [
        f"wheels from {src.pypi_index}" + (f" (CA {src.ca_bundle})" if src.ca_bundle else ""),
        "AWS CLI from AWS's signed zip" if src.aws_cli == "zip" else "AWS CLI from the distribution",
        {"nvidia": "CUDA from NVIDIA's apt repository", "pypi": "CUDA from NVIDIA's wheels",
         "debian": "CUDA from the distribution"}[src.cuda],
        "R from CRAN" if src.r == "cran" else "R from the distribution",
        f"Debian from this machine's mirror {host_mirror[0]}" if host_mirror else "",
    ]
    groups = ["pypi", "aws_cli", "cuda", "r", "apt"]
    return "; ".join(part + (f" (upstream silent, {silent[g]})" if g in silent else "")
                     for g, part in zip(groups, parts, strict=True) if part and g in used)


def pip_config(env: dict[str, str]) -> dict[str, str]:
    """pip's configuration files as `pip config list` reads them under `env` ({"global.index-url": ...});
    empty where pip cannot say."""
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                              timeout=20, env={**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}, check=False)
        listed = proc.stdout.splitlines() if proc.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):
        listed = []
    config: dict[str, str] = {}
    for line in listed:
        key, sep, value = line.partition("=")
        if sep:
            try:
                config[key.strip()] = str(ast.literal_eval(value.strip()))
            except (ValueError, SyntaxError):
                continue
    return config


def host_environ(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment with pip's configured index and CA (pip.conf, `pip config`) as PIP_INDEX_URL/PIP_CERT,
    which the `debian` profile reads; variables already set win, as they do for pip."""
    env = dict(os.environ if environ is None else environ)
    config = pip_config(env)
    for var, name in (("PIP_INDEX_URL", "index-url"), ("PIP_CERT", "cert")):
        for section in ("download", "install", "global"):
            if not env.get(var) and config.get(f"{section}.{name}"):
                env[var] = config[f"{section}.{name}"]
    if not urllib.parse.urlsplit(env.get("PIP_INDEX_URL", "")).scheme.startswith("http"):
        env.pop("PIP_INDEX_URL", None)  # a file:// index does not exist inside the build
    return env


def host_apt_mirrors(etc_apt: Path = Path("/etc/apt"), os_release: Path = Path("/etc/os-release")) -> tuple[str, str]:
    """(mirror, security mirror) of the host's own Debian sources ('' where none), both formats of sources."""
    release = dict(ln.split("=", 1) for ln in _lines(os_release) if "=" in ln)
    codename = release.get("VERSION_CODENAME", "").strip('"')
    entries: list[tuple[str, list[str]]] = []
    for path in [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]:
        for line in _lines(path):
            words = [w for w in line.split("#", 1)[0].split() if not w.startswith("[")]
            if len(words) >= 3 and words[0] == "deb":
                entries.append((words[1], [words[2]]))
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        for paragraph in path.read_text(errors="replace").split("\n\n"):
            fields = email.parser.HeaderParser().parsestr(paragraph.strip() + "\n")
            if "deb" in (fields.get("Types") or "").split():
                entries += [(uri, (fields.get("Suites") or "").split()) for uri in (fields.get("URIs") or "").split()]
    mirror = next((uri for uri, suites in entries if codename and codename in suites), "")
    security = next((uri for uri, suites in entries if codename and f"{codename}-security" in suites), "")
    return mirror.rstrip("/"), security.rstrip("/")


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []
