"""What the repository tells (S3 paths, secrets, /etl references, risky pins) and MIGRATION.md (pure)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ap_build import names, yamlpos

CODE_SUFFIXES = (".py", ".r", ".R", ".sh", ".sql", ".ipynb", ".Rmd", ".yml", ".yaml", ".json", ".toml", ".cfg", ".ini")
_S3_RE = re.compile(r"s3a?://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/[^\s\"'`)\]},;]*)?")
_SECRET_RE = re.compile(rf"\b{names.SECRET_PREFIX}[A-Z0-9_]+\b")
_ROLE_RE = re.compile(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+")
_BUILT = re.compile(r"[{}$%<>*]")  # an S3 path with these is built by code (f-string, format, glob)
# R packages with compiled code or tied to R's version: old versions in renv.lock fail or rebuild on R 4.6.
R_SENSITIVE = ("Matrix", "MASS", "lattice", "nlme", "survival", "mgcv", "Rcpp", "RcppArmadillo", "data.table",
               "arrow", "sf", "xml2", "curl", "openssl", "stringi", "reticulate", "botor", "renv")


@dataclass
class Findings:
    """What scanning the repository's own files found (file:line and the value)."""

    s3: list[tuple[str, str]] = field(default_factory=list)  # (where, bucket/path): literal paths only
    s3_built: list[tuple[str, str]] = field(default_factory=list)  # (where, s3://...): built by code
    secrets: list[tuple[str, str]] = field(default_factory=list)  # (where, platform secret id)
    roles: list[tuple[str, str]] = field(default_factory=list)  # (where, role ARN) in legacy workflows
    etl_refs: list[tuple[str, str]] = field(default_factory=list)  # (where, line text)


def _s3(f: Findings, where: str, line: str) -> None:
    for m in _S3_RE.finditer(line):
        path = (m.group(1) + (m.group(2) or "")).rstrip("/")
        after = line[m.end():m.end() + 1]
        if _BUILT.search(path) or (after and after in "{$%+"):
            f.s3_built.append((where, re.match(r"[^\s\"'`]*", line[m.start():]).group(0)))  # type: ignore[union-attr]
        else:
            f.s3.append((where, path))


def scan(files: dict[str, bytes], skip: set[str], *, legacy_workflows: set[str] | frozenset[str] = frozenset(),
         app_dir: str = "/etl") -> Findings:
    """Scan text files (not those in `skip`) for S3 paths, SECRET_* names, paths in the legacy program folder
    (`app_dir`, and /etl), and the release roles of the legacy workflows."""
    from ap_build.migrate.rewrite import LEGACY_WORKDIR, SYSTEM_DIRS, path_pattern

    app_re = path_pattern({LEGACY_WORKDIR} | ({app_dir} if app_dir not in SYSTEM_DIRS else set()))
    f = Findings()
    for path in sorted(files):
        if path in skip or not (path.endswith(CODE_SUFFIXES) or "." not in path.rsplit("/", 1)[-1]):
            continue
        try:
            text = files[path].decode("utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            where = f"{path}:{n}"
            _s3(f, where, line)
            for m in _SECRET_RE.finditer(line):
                f.secrets.append((where, names.secret_from_env(m.group(0))))
            if path in legacy_workflows:
                f.roles += [(where, m.group(0)) for m in _ROLE_RE.finditer(line)]
            elif not path.startswith(".github/") and app_re.search(line):
                f.etl_refs.append((where, line.strip()))
    return f


def risky_r_pins(renv_lock: str, target: str = "the R base's R") -> list[str]:
    """renv.lock facts: the R version it was made with, and packages likely to break on the base's R."""
    try:
        lock = json.loads(renv_lock)
    except ValueError:
        return ["renv.lock: not valid JSON, so its pins were not checked"]
    out = []
    version = (lock.get("R") or {}).get("Version")
    if version:
        out.append(f"renv.lock records R {version}; the base has {target}: run renv::update() and renv::snapshot()")
    for name, pkg in sorted((lock.get("Packages") or {}).items()):
        if name in R_SENSITIVE:
            out.append(f"renv.lock: {name} {pkg.get('Version', '?')} (compiled code or tied to R's version)")
    return out


def starter_manifest(repository: str, findings: Findings) -> str:
    """A starter workflow.yml for the platform's manifest repository (placeholders where we cannot know)."""
    s3 = sorted({p for _, p in findings.s3})
    secrets = sorted({s for _, s in findings.secrets})
    doc: dict = {
        "dag": {"repository": repository, "tag": "RELEASE-TAG"},
        "iam": {"s3_read_only": s3} if s3 else {},
        "maintainers": ["your-github-username"],
        "tags": {"business_unit": "Central Digital", "owner": "your.name@justice.gov.uk"},
    }
    if secrets:
        doc["secrets"] = secrets
    head = [
        "# Starter manifest written by ap-build migrate: copy it to the manifest repository as",
        "# environments/<environment>/<project>/<workflow>/workflow.yml and fill in the placeholders.",
        "# dag.tag: the git tag you push to release (any tag push now builds; tags are immutable).",
    ]
    for where, path in findings.s3:
        head.append(f"# S3 path found at {where}: {path} (listed read-only; move to s3_read_write if written)")
    for where, built in findings.s3_built:
        head.append(f"# S3 path built by code at {where}: {built} (not listed: add the prefix it resolves to)")
    for where, sid in findings.secrets:
        head.append(f"# secret found at {where}: {sid} (env var {names.secret_env(sid)})")
    return "\n".join(head) + "\n" + yamlpos.dump(doc)


def render_migration_md(
    *,
    name: str,
    label: str,
    runtime: str,
    base_image: str,
    github_repo: str,
    ecr_repo: str,
    ops: list[tuple[str, str, str]],  # (action, path, reason)
    done: list[str],
    notes: list[str],
    findings: Findings,
    versions: str,
    pins: list[str],
    pins_summary: str = "",
    pins_diff: str = "",
    uses_python: bool,
    has_nopython: bool,
) -> str:
    """MIGRATION.md: what was done, and the manual follow-ups the tool cannot do."""
    lines = [
        f"# Migration of {name} to the Analytical Platform {runtime} runtime template",
        "",
        f"Made by `ap-build migrate` from a {label}. Base image: `{base_image}`.",
        "",
        "## What was done",
        "",
    ]
    lines += [f"- {action} `{path}`: {reason}" for action, path, reason in ops]
    lines += ["", "Dockerfile changes, line by line (line numbers are the old file's):", ""]
    lines += [f"- {d}" for d in done]
    lines += ["", "## Manual follow-ups (ap-build cannot do these)", ""]
    n = 1

    def item(text: str) -> None:
        nonlocal n
        lines.append(f"{n}. {text}")
        n += 1

    item(
        "**IAM permissions and secrets are not carried over.** Declare them in the workflow manifest "
        "(`workflow.yml` in the manifest repository); the starter below was generated from what this "
        "repository tells. The old release role"
        + (f" (`{findings.roles[0][1]}`, {findings.roles[0][0]})" if findings.roles else "")
        + " is not used any more."
    )
    item(
        "**The IAM role name format changed** to `airflow-<environment>-<project>-<workflow>` (at most 64 "
        "characters). Tools or policies that matched the old role names by pattern (bucket policies, "
        "Lake Formation grants, CloudTrail filters, cross-account trust) no longer match: update them."
    )
    item(
        "**Region move:** the image is pushed to ECR in eu-west-2 (was eu-west-1), and the task runs there. "
        "Hard-coded eu-west-1 endpoints, clients or buckets with region affinity need checking."
    )
    item(
        f"**Releases:** any tag push now builds and pushes `{ecr_repo}:<tag>` (ECR repository "
        "`<org>/<repo>`, not the repository name alone); tags are immutable, so release with a new tag."
    )
    if runtime == "python":
        item(f"**{versions}.** Pins: {pins_summary}"
             + (": these cannot install there:" if pins else "."))
    else:
        item(f"**{versions}:** old renv pins rebuild from source or fail. Most likely to break here:"
             + ("" if pins else " nothing recorded."))
    lines += [f"   - {p}" for p in pins]
    if pins_diff:
        lines += ["", "   `--upgrade-pins` moved them to the nearest versions that install:", "", "   ```diff"]
        lines += [f"   {d}" for d in pins_diff.splitlines()] + ["   ```", ""]
    if runtime == "r":
        if uses_python:
            item(
                "**The R base has no Python.** This repository uses Python from R (botor/reticulate, "
                "`requirements.txt`). To keep it building, the Dockerfile now installs python3 from the "
                "distribution as root. The better plan is to drop botor for paws (pure R AWS SDK)"
                + (", then use the migrated `Dockerfile.nopython` as `Dockerfile` and delete `requirements.txt`."
                   if has_nopython else " and delete `requirements.txt`.")
            )
        elif has_nopython:
            item("`Dockerfile.nopython` was migrated too; the R base has no Python, so it is the one to keep.")
        else:
            item("The R base has no Python: nothing here uses it, so nothing to do.")
    if findings.etl_refs:
        item("**Code that names the old program folder:** the working directory is now "
             "`/opt/analyticalplatform`; your code was not changed:")
        lines += [f"   - `{w}`: `{t}`" for w, t in findings.etl_refs]
    if findings.s3_built:
        item("**S3 paths built by code** are not in the starter manifest (only literal paths are): add the "
             "buckets and prefixes they resolve to:")
        lines += [f"   - `{w}`: `{t}`" for w, t in findings.s3_built]
    item("**Files are no longer world-writable** (`chmod -R 777` is gone) and the image runs as UID 1000: "
         "write scratch files under `/tmp` or `$HOME`, not beside the code.")
    for note in notes:
        item(note)
    lines += [
        "",
        "## Starter workflow manifest",
        "",
        "```yaml",
        starter_manifest(github_repo, findings).rstrip("\n"),
        "```",
        "",
        "Check the build locally: `docker build -t "
        f"{name.lower()}:dev . && ap-build test {name.lower()}:dev --config container-structure-test.yml`.",
        "",
    ]
    return "\n".join(lines)

