"""`ap-build image build` as one library call, as `scan` has `gate.scan`:
check the request -> resolve the base -> choose the sources -> spec -> context -> build -> report.

The CLI only parses options into a `BuildRequest` and prints what this returns.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ap_build import fsio
from ap_build.engine import Engine
from ap_build.errors import SourceError, UsageError
from ap_build.images import base as bootstrap_base
from ap_build.images import provenance
from ap_build.images.build import (
    BuildReport,
    build_image,
    created_timestamp,
    git_revision,
    read_base_ignores,
)
from ap_build.images.platforms import Platform, host_platform, parse_platforms
from ap_build.images.render import build_context
from ap_build.images.reproduce import epoch_of, reproducible
from ap_build.images.sources import Choice, answers, choose
from ap_build.images.spec import (
    URL_SETTINGS,
    ImageSpec,
    check_cuda_version,
    check_url,
    check_version,
    common,
    load_spec,
)
from ap_build.platform import RUNTIMES
from ap_build.reference import is_reference
from ap_build.resources import base_trivyignore, cache_dir, read_cache, write_cache

Say = Callable[[str], None]


@dataclass(frozen=True)
class BuildRequest:
    """What `ap-build image build` was asked for (the CLI's options, unresolved)."""

    runtime: str
    version: str = "0.0.0-dev"
    tag: str = ""
    base: str = "auto"  # auto | bootstrap | NAME[:TAG]@sha256:DIGEST
    sources: str = "auto"  # auto | a profile of images/sources.toml | a .toml file
    overrides: dict[str, str] = field(default_factory=dict)  # single source settings (--pypi-index ...)
    cuda_version: str = "default"
    suite: str = ""  # Debian suite of a bootstrapped base ("" = images/common/image.toml's default)
    snapshot: str = ""
    nocache: bool = False
    # the same inputs give the same image ID: True (always: the layers rewritten where the engine does not stamp
    # them), None (where the engine stamps its layers, a few seconds), False (never)
    reproducible: bool | None = None
    ignore_file: Path | None = None  # the base's ignore list for its label [default: the repository's .trivyignore]
    platform: str = ""  # `--platform` as given (`linux/amd64,linux/arm64`); "": this machine's, one plain build

    @property
    def target(self) -> str:
        return self.tag or f"localhost/ap-build/{self.runtime}-base:{self.version}"

    def platforms(self) -> tuple[Platform, ...]:
        """The platforms asked for (UsageError for an unsupported one); () for a plain build."""
        return parse_platforms(self.platform) if self.platform else ()


def check_request(request: BuildRequest) -> None:
    """Refuse malformed input before anything reaches a Dockerfile or the engine (pure)."""
    if request.runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {request.runtime!r}", hint=f"choose one of: {', '.join(RUNTIMES)}")
    if request.base not in ("auto", "bootstrap") and not is_reference(request.base):
        raise UsageError(f"--base {request.base!r} is not an image reference",
                         hint="give auto, bootstrap or NAME:TAG@sha256:DIGEST")
    if request.tag and not is_reference(request.tag):
        raise UsageError(f"--tag {request.tag!r} is not an image reference", hint="give NAME:TAG")
    for key, value in request.overrides.items():
        if key in URL_SETTINGS:
            check_url(key, value, URL_SETTINGS[key])
    check_version(request.version)
    check_cuda_version(request.cuda_version)
    request.platforms()
    bootstrap_spec(request)  # the suite, snapshot and epoch


def bootstrap_spec(request: BuildRequest, target: Platform | None = None) -> bootstrap_base.BootstrapSpec:
    """The bootstrapped base's inputs; `target` a platform other than this machine's (its own architecture)."""
    boot = bootstrap_base.spec_for(request.overrides.get("apt_mirror", ""), request.snapshot,
                                   os.environ.get("SOURCE_DATE_EPOCH", ""), request.suite)
    return replace(boot, platform=target) if target not in (None, host_platform()) else boot


def locate_base(engine: Engine, base: str, suite: str, say: Say,
                target: Platform | None = None) -> tuple[str | None, str]:
    """(reference in the engine, its release) for `base`; (None, suite) when it is to be bootstrapped.

    auto: the upstream digest-pinned base if the engine has it or can pull it, else a Debian root
    filesystem bootstrapped from its archive (the default on a machine that reaches no registry).
    `target`: the platform of a multi-platform build, which the base must have (pulled for it)."""
    upstream = common()["upstream"]
    if base == "bootstrap":
        return None, suite
    if base == "auto":
        try:
            if target is not None:
                return pull_for(engine, upstream["ref"], target), str(upstream["codename"])
            if not engine.image_exists(upstream["ref"]):
                engine.pull(upstream["ref"])
            return upstream["ref"], str(upstream["codename"])
        except SourceError:
            say(f"base: no registry answers for {upstream['ref'].split('@')[0]}: bootstrapping Debian {suite}")
            return None, suite
    if target is not None:
        return pull_for(engine, base, target), release_of(engine, base) or suite
    if not engine.image_exists(base):
        if "@sha256:" not in base:
            raise UsageError(f"base image {base} is not in the engine and has no digest",
                             hint="pin it as NAME:TAG@sha256:DIGEST, or use --base bootstrap")
        try:
            engine.pull(base)
        except SourceError as exc:
            raise SourceError(f"base image {base} does not resolve: {exc.message}",
                              hint="check the reference and that its registry is reachable") from exc
    return base, release_of(engine, base) or suite


def pull_for(engine: Engine, base: str, target: Platform) -> str:
    """`base` in the engine as `target`'s image: kept if it is one, else pulled for the platform (an index
    digest resolves to each platform's image); UsageError if it is another platform's only."""
    def arch() -> str:
        return str(engine.inspect(base).get("Architecture") or "") if engine.image_exists(base) else ""

    if arch() != target.arch and "@sha256:" in base:
        try:
            engine.pull(base, platform=target.name)
        except SourceError as exc:
            raise SourceError(f"base image {base} does not resolve for {target.name}: {exc.message}",
                              hint="check the reference and that its registry is reachable") from exc
    found = arch()
    if found != target.arch:
        raise UsageError(f"base image {base} is {'linux/' + found if found else 'not in the engine'}, "
                         f"not {target.name}",
                         hint="give a base with that platform (an index digest NAME:TAG@sha256:...), or --base "
                              "bootstrap")
    return base


def release_of(engine: Engine, image: str) -> str:
    """The image's VERSION_CODENAME (/etc/os-release), '' if it has none; cached by image ID (a container
    start costs a second on every rebuild)."""
    image_id = str(engine.inspect(image)["Id"]).removeprefix("sha256:")
    if (kept := read_cache(f"releases/{image_id}")) is not None:
        return kept.strip()
    code, output = engine.run(image, ["-c", ". /etc/os-release && echo \"$VERSION_CODENAME\""], entrypoint=["sh"])
    release = output.strip().splitlines()[-1] if code == 0 and output.strip() else ""
    if release and re.fullmatch(r"[a-z][a-z0-9-]{0,31}", release):
        write_cache(f"releases/{image_id}", release + "\n")
    return release


def make_spec(request: BuildRequest, base: str, suite: str, choice: Choice,
              target: Platform | None = None) -> ImageSpec:
    revision, commit_time = git_revision()
    return load_spec(request.runtime, version=request.version, base=base, sources=choice.sources,
                     cuda_version=request.cuda_version, suite=suite, revision=revision,
                     created=created_timestamp(commit_time), platform=target)


def build(request: BuildRequest, engine: Engine, *, say: Say | None = None, on_line: Say | None = None,
          report: Path | None = None, on_platform: Callable[[Platform], None] | None = None) -> BuildReport:
    """Build the runtime image `request` asks for and tag it only once it is built; raises ApBuildError.
    With `request.platform`, one image per platform (`multiarch.build_platforms`; `on_platform` hears each)."""
    say = say or (lambda _m: None)
    check_request(request)
    if request.platform:
        from ap_build.images.multiarch import build_platforms

        def one(target: Platform, tag: str, say_p: Say, side_report: Path | None) -> BuildReport:
            return build_for(replace(request, platform=target.name), engine, target=target, tag=tag, say=say_p,
                             on_line=on_line, report=side_report)

        return build_platforms(request.platforms(), request.target, engine, one, say=say, report=report,
                               on_platform=on_platform, write=write_report)
    return build_for(request, engine, say=say, on_line=on_line, report=report)


def build_for(request: BuildRequest, engine: Engine, *, target: Platform | None = None, tag: str = "",
              say: Say, on_line: Say | None = None, report: Path | None = None) -> BuildReport:
    """One image: of this machine's platform as a plain build (`target` None), else of `target`, tagged `tag`.
    The engine is asked for a platform only when it is not its own: this machine's image shares the layer cache
    (and so the image ID) of a plain build."""
    boot = bootstrap_spec(request, target)
    base, suite = locate_base(engine, request.base, boot.suite, say, target)
    choice = choose(request.sources, request.overrides, runtime=request.runtime, cuda_version=request.cuda_version,
                    suite=suite, bootstrap_mirror=boot.mirror if base is None else "", platform=target)
    if request.sources == "auto":  # what it chose and why; a named profile is what the user chose
        say(choice.line)
    if base is None:
        if choice.bootstrap_mirror:
            boot = replace(boot, mirror=choice.bootstrap_mirror[0], security_mirror=choice.bootstrap_mirror[1])
        arch = f" for {boot.platform.deb_arch}" if boot.platform else ""
        say(f"base: bootstrapping Debian {boot.suite}{arch} from {boot.mirror} (cached by its inputs)")
        base = bootstrap_base.bootstrap(engine, boot)
    spec = make_spec(request, base, suite, choice, target)
    for note in spec.notes:
        say(note)
    ca = Path(spec.sources.ca_bundle) if spec.sources.ca_bundle else None
    started, watcher = now(), provenance.ZipDigestWatcher(on_line)
    epoch = source_date_epoch(request, spec)
    result = build_image(engine, spec, tag or request.target, ca_bundle=ca, nocache=request.nocache,
                         on_line=watcher, trivyignore=request.ignore_file,
                         platform=target.name if target not in (None, host_platform()) else None, timestamp=epoch)
    made = False
    if epoch is not None:
        clock, raw = time.monotonic(), result.image_id
        normalised = reproducible(engine, result, cache_dir(), rewrite=request.reproducible is True)
        if normalised is not None:
            result, made = normalised, True
            say(f"reproducible: {raw[:19]} normalised to {result.image_id[:19]} ({time.monotonic() - clock:.1f} s)")
        else:
            say("reproducible: no (the engine does not stamp its layers: --reproducible rewrites them, about +25 %)")
    if report is not None:
        write_report(report, result)
    where = write_provenance(engine, replace(request, reproducible=made), spec, result,
                             boot.sources() if spec.base == boot.ref else [], watcher.digest, started, report,
                             source_date_epoch=epoch)
    say(f"provenance: {where or 'not kept (ap-build cache folder not writable; pass --report to keep it)'}")
    return result


def source_date_epoch(request: BuildRequest, spec: ImageSpec) -> int | None:
    """The epoch a build is stamped with (the recipe's SOURCE_DATE_EPOCH, the engine's `timestamp`); None for a
    `--no-reproducible` build (pure)."""
    return epoch_of(spec.created) if request.reproducible is not False else None


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def external_parameters(request: BuildRequest) -> dict[str, object]:
    """Every option of the build as given (the ignore file by content digest), plus SOURCE_DATE_EPOCH (pure)."""
    params: dict[str, object] = {k: v for k, v in asdict(request).items() if k != "ignore_file"}
    params["ignore_file"] = str(request.ignore_file) if request.ignore_file else ""
    params["source_date_epoch"] = os.environ.get("SOURCE_DATE_EPOCH", "")
    return params


def write_provenance(engine: Engine, request: BuildRequest, spec: ImageSpec, result: BuildReport,
                     apt_sources: list[str], zip_seen: str, started: str, report: Path | None, *,
                     source_date_epoch: int | None = None) -> Path | None:
    """The SLSA provenance of this build, beside the report and in the cache by image ID (provenance.py);
    `request.reproducible` is what the build became (True: normalised)."""
    ca = Path(spec.sources.ca_bundle) if spec.sources.ca_bundle else None
    ignores = read_base_ignores(request.ignore_file if request.ignore_file is not None else base_trivyignore())
    context = build_context(spec, ca_bundle=ca.read_bytes() if ca else None, trivyignore=ignores,
                            source_date_epoch=source_date_epoch)
    files = {**context.files, "trivyignore": ignores.encode()}
    inputs = provenance.collect(engine, external=external_parameters(request), spec=spec, context=files,
                                image_id=result.image_id, tag=result.tag, apt_sources=tuple(apt_sources),
                                zip_seen=zip_seen, started=started, finished=now(),
                                components=result.components, cache=cache_dir())
    return provenance.write(provenance.statement(inputs), result.image_id, cache_dir(), report)


def dockerfile(request: BuildRequest, *, say: Say | None = None) -> str:
    """The Dockerfile `build` would use, without an engine: `auto` and `bootstrap` bases are shown as the
    bootstrapped Debian base; a named profile is not probed, `auto` is (it has to choose)."""
    say = say or (lambda _m: None)
    check_request(request)
    if not request.platform:
        return _dockerfile_for(request, None, say)
    return "".join(f"# --- {t.name}\n{_dockerfile_for(request, t, say)}" for t in request.platforms())


def _dockerfile_for(request: BuildRequest, target: Platform | None, say: Say) -> str:
    boot = bootstrap_spec(request, target)
    base, suite = (boot.ref, boot.suite) if request.base in ("auto", "bootstrap") else (request.base, boot.suite)
    choice = choose(request.sources, request.overrides, runtime=request.runtime, cuda_version=request.cuda_version,
                    suite=suite, bootstrap_mirror=boot.mirror if base == boot.ref else "",
                    probe=answers if request.sources == "auto" else None, platform=target)
    if request.sources == "auto":
        say(choice.line)
    spec = make_spec(request, base, suite, choice, target)
    for note in spec.notes:
        say(note)
    epoch = source_date_epoch(request, spec)
    return build_context(spec, ca_bundle=b"" if spec.sources.ca_bundle else None, trivyignore="",
                         source_date_epoch=epoch).dockerfile


def write_report(path: Path, result: BuildReport) -> None:
    """The build report as JSON, through the safe writer (the digest is added by `image push --report`)."""
    fsio.write_output(path, result.to_json() + "\n")


def add_push(path: Path, pinned: str) -> None:
    """Record a pushed `name:tag@sha256:...` in an existing build report."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the build report {path}: {exc}",
                         hint="pass the file `image build --report` wrote") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a build report (a JSON object)")
    data["digest"] = pinned.split("@", 1)[1]
    data.setdefault("pushed", []).append(pinned)
    fsio.write_output(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
