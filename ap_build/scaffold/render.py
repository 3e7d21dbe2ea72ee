"""Render the runtime-template repository files (pure: answers in, `{relative path: content}` out).

Templates live in `templates/` (see docs/scaffold.md): `common/` holds the files both runtimes share,
`python/` and `r/` add or override files per runtime, and `examples/<runtime>/` holds the small
working program written once into a new repository (the user owns it afterwards). `template.toml`
carries the template version, the defaults (base image per runtime, ECR region and role), the
GitHub Actions pins and ap-build's own pin (`[ap_build]`: the repository and commit of its reusable
workflows). Templates are Jinja with `[= expr =]`, `[% stmt %]`, `[# comment #]` delimiters, so GitHub's
`${{ }}` and shell/R syntax need no escaping.
"""

from __future__ import annotations

import datetime as _dt
import re
import tomllib
import urllib.parse
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from ap_build import __version__, names, reference
from ap_build.errors import UsageError
from ap_build.platform import RUNTIMES
from ap_build.reference import is_reference, parse_ref
from ap_build.resources import data_dir

# Every file of the platform's runtime template, for both runtimes (the files `--update` manages and
# `migrate` adds to legacy repositories). The example program files are listed by `example_files()`.
TEMPLATE_FILES: tuple[str, ...] = tuple(sorted({  # read from templates/: adding a file there adds it here
    p.relative_to(folder).as_posix()
    for folder in (data_dir("templates") / name for name in ("common", *RUNTIMES))
    for p in folder.rglob("*") if p.is_file()
}))

PROGRAM_FILE = {"python": "main.py", "r": "main.R"}

# Matched with `fullmatch` (a `$` would also accept a trailing newline).
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_REPO_RE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_OWNER_RE = re.compile(r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[A-Za-z0-9._-]{1,100})?|[^@\s]+@[^@\s]+\.[^@\s]+")
_REGION_RE = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")
_ROLE_RE = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}")
_VERSION_RE = re.compile(r"[0-9A-Za-z.+!_-]{1,64}")  # a PEP 440 version (pip checks the rest)


@dataclass(frozen=True)
class Answers:
    """What a generated repository is made from. Empty strings mean "the tool's default" (see `resolved`)."""

    name: str = "analytical-platform-runtime"
    org: str = ""
    base_image: str = ""  # `name:tag@sha256:digest`; "" = the platform's current base for the runtime
    description: str = ""
    owner_team: str = ""  # "@org/team" for CODEOWNERS; "" leaves a placeholder to fill in
    registry: str = ""  # registry host to push to; "" = the ECR registry the OIDC login returns
    repository: str = ""  # image repository; "" = `<org>/<name>` lower-cased, `_` -> `-` (platform's ECR naming)
    aws_region: str = ""
    aws_role: str = ""
    ap_build_version: str = __version__  # the ap-build that wrote the repository (the workflows pin theirs)
    year: int = field(default_factory=lambda: _dt.date.today().year)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answers:
        """Build from a mapping, ignoring unknown keys (answers files written by newer ap-builds)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def resolved(self, runtime: str, template_dir: Path | None = None) -> Answers:
        """A copy with every default filled in from `template.toml` and validated (raises UsageError)."""
        check_runtime(runtime)
        d = load_manifest(template_dir)["defaults"]
        org = self.org or d["org"]
        out = replace(
            self,
            org=org,
            base_image=self.base_image or d["base_image"][runtime],
            description=self.description or d["description"],
            owner_team=normalise_owner(self.owner_team, org),
            repository=self.repository or ecr_repository_name(org, self.name),
            aws_region=self.aws_region or d["aws_region"],
            aws_role=self.aws_role or d["aws_role"],
        )
        out.validate()
        return out

    def validate(self) -> None:
        """Raise UsageError naming the bad answer and the fix."""
        for key in ("name", "org"):
            value = getattr(self, key)
            if value and not _NAME_RE.fullmatch(value):
                raise UsageError(
                    f"--{key} {value!r} is not a valid GitHub {key}",
                    hint="use letters, digits, '.', '_' and '-' (at most 100 characters)",
                )
        if self.base_image:
            check_pinned(self.base_image)
        if self.repository and not _REPO_RE.fullmatch(self.repository):
            raise UsageError(
                f"--repository {self.repository!r} is not a valid image repository name",
                hint="lower-case path components separated by '/', e.g. my-org/my-image",
            )
        if any(not c.isprintable() or c in "\"\\" for c in self.description):
            raise UsageError("--description must be one line of printable text without quotes or backslashes")
        if self.registry:
            check_registry(self.registry)
        for key, pattern, example in (
            ("owner_team", _OWNER_RE, "@org/team, @user or an e-mail address"),
            ("aws_region", _REGION_RE, "eu-west-2"),
            ("aws_role", _ROLE_RE, "arn:aws:iam::123456789012:role/name"),
            ("ap_build_version", _VERSION_RE, __version__),
        ):
            value = getattr(self, key)
            if value and not pattern.fullmatch(value):
                raise UsageError(f"--{key.replace('_', '-')} {value!r} is not valid", hint=f"e.g. {example}")
        if not isinstance(self.year, int) or isinstance(self.year, bool):
            raise UsageError(f"year {self.year!r} is not a number")


def check_registry(value: str) -> None:
    """Raise UsageError unless `value` is a registry host[:port] (parsed as a URL's authority)."""
    try:
        parts = urllib.parse.urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        parts, port = None, None
    host = parts.hostname if parts is not None else None
    ok = (
        parts is not None and host is not None and parts.netloc == value and not parts.path
        and parts.username is None and (port is None or 0 < port < 65536) and len(host) <= 253
        and all(_HOST_LABEL.fullmatch(label) for label in host.split("."))
    )
    if not ok:
        raise UsageError(f"--registry {value!r} is not a registry host",
                         hint="give host[:port], e.g. 123456789012.dkr.ecr.eu-west-2.amazonaws.com")


def check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}", hint=f"choose one of: {', '.join(RUNTIMES)}")


def ecr_repository_name(org: str, name: str) -> str:
    """The platform's ECR repository for the GitHub repository `<org>/<name>` (ap_build/names.py)."""
    return names.ecr_repository(f"{org}/{name}")


def normalise_owner(owner: str, org: str) -> str:
    """CODEOWNERS owner: `@org/team` or `@user` as given; a bare `team` becomes `@org/team`."""
    owner = owner.strip()
    if not owner or owner.startswith("@") or "@" in owner:
        return owner
    return f"@{owner}" if "/" in owner else f"@{org}/{owner}"


def check_reference(ref: str) -> None:
    """Raise UsageError unless `ref` is `[host[:port]/]path[:tag][@digest]` by the reference grammar
    (checked before any registry is asked, so a hostile value never reaches the network)."""
    name, tag, _ = parse_ref(ref)  # the digest's own form is check_pinned's
    if any(c.isspace() or not c.isprintable() for c in ref) or not is_reference(name + (f":{tag}" if tag else "")):
        raise UsageError(f"--base-image {ref!r} is not an image reference",
                         hint="give name:tag (resolved to its digest) or name:tag@sha256:digest")


def check_pinned(ref: str) -> None:
    """Raise UsageError unless `ref` is `name:tag@sha256:<64 hex>` (what the FROM line must carry)."""
    check_reference(ref)
    _, tag, digest = parse_ref(ref)
    if digest is None:
        raise UsageError(
            f"--base-image {ref!r} has no digest",
            hint="resolve it first (ap-build scaffold does so through the engine) or give name:tag@sha256:...",
        )
    if not reference.SHA256.fullmatch(digest):
        raise UsageError(f"--base-image {ref!r}: the digest must be sha256: followed by 64 lower-case hex digits")
    if not tag or not reference.TAG.fullmatch(tag):
        raise UsageError(
            f"--base-image {ref!r} has no tag",
            hint="give name:tag@sha256:digest so Dependabot can move the tag and digest together",
        )


# --- the template files -----------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _manifest(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def template_root(template_dir: Path | None = None) -> Path:
    return Path(template_dir) if template_dir else data_dir("templates")


def load_manifest(template_dir: Path | None = None) -> dict[str, Any]:
    """`template.toml`: version, defaults, action pins."""
    return _manifest(template_root(template_dir) / "template.toml")


def template_version(template_dir: Path | None = None) -> int:
    return int(load_manifest(template_dir)["version"])


def _walk(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def template_sources(runtime: str, template_dir: Path | None = None) -> dict[str, Path]:
    """Template file path -> source file (`<runtime>/` overrides `common/`)."""
    check_runtime(runtime)
    root = template_root(template_dir)
    return {**_walk(root / "common"), **_walk(root / runtime)}


def example_sources(runtime: str, template_dir: Path | None = None) -> dict[str, Path]:
    """Example program file path -> source file."""
    check_runtime(runtime)
    return _walk(template_root(template_dir) / "examples" / runtime)


def example_files(runtime: str, template_dir: Path | None = None) -> tuple[str, ...]:
    """The example program files for `runtime` (written once; the user owns them)."""
    return tuple(example_sources(runtime, template_dir))


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        variable_start_string="[=",
        variable_end_string="=]",
        block_start_string="[%",
        block_end_string="%]",
        comment_start_string="[#",
        comment_end_string="#]",
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def context(runtime: str, answers: Answers, template_dir: Path | None = None) -> dict[str, Any]:
    """The variables every template sees (pure)."""
    manifest = load_manifest(template_dir)
    actions = manifest.get("actions", {})

    def action(key: str) -> str:
        if key not in actions:
            raise UsageError(f"template.toml: no [actions] entry {key!r}")
        a = actions[key]
        return f"{a['uses']}@{a['sha']} # {a['version']}"

    pin = ap_build_pin(template_dir)

    def ap_build_workflow(name: str) -> str:
        """`uses:` of ap-build's reusable workflow `reusable-<name>.yml`, pinned by commit SHA."""
        return f"{pin['repository']}/.github/workflows/reusable-{name}.yml@{pin['sha']} # {pin['version']}"

    return {
        **answers.to_dict(),
        "runtime": runtime,
        "template_version": int(manifest["version"]),
        "program_file": PROGRAM_FILE[runtime],
        "copyright_holder": answers.org,
        "action": action,
        "ap_build": pin,
        "ap_build_workflow": ap_build_workflow,
    }


_SHA_RE = re.compile(r"[0-9a-f]{40}")
_GH_REPO_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")


def ap_build_pin(template_dir: Path | None = None) -> dict[str, str]:
    """`[ap_build]` of template.toml: the repository and the commit the generated workflows call ap-build's
    reusable workflows at (checked: a malformed pin would be written into every generated workflow)."""
    pin = load_manifest(template_dir).get("ap_build") or {}
    repo, sha, version = (str(pin.get(k, "")) for k in ("repository", "sha", "version"))
    if not _GH_REPO_RE.fullmatch(repo) or not _SHA_RE.fullmatch(sha) or not _VERSION_RE.fullmatch(version):
        raise UsageError("template.toml: [ap_build] needs repository = \"owner/name\", sha = the full 40-hex "
                         "commit SHA and version (its comment)", hint="see templates/template.toml")
    return {"repository": repo, "sha": sha, "version": version}


def _render_one(env: jinja2.Environment, src: Path, rel: str, ctx: dict[str, Any]) -> str:
    try:
        return env.from_string(src.read_text()).render(ctx)
    except jinja2.TemplateSyntaxError as exc:
        raise UsageError(f"{src}:{exc.lineno}: template syntax error: {exc.message}") from exc
    except jinja2.UndefinedError as exc:
        raise UsageError(f"{src}: template uses an undefined value: {exc.message}") from exc


def render_files(
    runtime: str,
    answers: Answers | None = None,
    *,
    include_examples: bool = True,
    template_dir: Path | None = None,
) -> dict[str, str]:
    """Render every template file (and, unless `include_examples=False`, the example program).

    Pure: returns `{relative posix path: content}`; nothing is written. Empty answers take the tool's
    defaults (`Answers.resolved`); raises UsageError for a bad answer or template.
    """
    answers = (answers or Answers()).resolved(runtime, template_dir)
    ctx = context(runtime, answers, template_dir)
    env = _env()
    sources = dict(template_sources(runtime, template_dir))
    if include_examples:
        sources.update(example_sources(runtime, template_dir))
    files = {rel: _render_one(env, src, rel, ctx) for rel, src in sorted(sources.items())}
    for rel, text in files.items():
        check_syntax(rel, text)
    return files


def check_syntax(rel: str, text: str) -> None:
    """Parse a rendered YAML or Python file with the real parser: answers that pass validation but still
    break a generated file are refused here rather than written (UsageError naming the file)."""
    import yaml

    try:
        if rel.endswith((".yml", ".yaml")):
            yaml.safe_load(text)
        elif rel.endswith(".py"):
            compile(text, rel, "exec", dont_inherit=True)
    except (yaml.YAMLError, SyntaxError, ValueError) as exc:
        raise UsageError(f"{rel}: the answers make the generated file invalid ({exc})".replace("\n", " "),
                         hint="check --name, --repository, --registry and --description") from exc
