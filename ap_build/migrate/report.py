"""What the repository tells (S3 paths, secrets, /etl references, risky pins) and MIGRATION.md (pure)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ap_build import names, yamlpos

CODE_SUFFIXES = (".py", ".r", ".R", ".sh", ".sql", ".ipynb", ".Rmd", ".yml", ".yaml", ".json", ".toml", ".cfg", ".ini")
_S3_RE = re.compile(r"s3a?://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/[^\s\"'`)\]},;]*)?")
_SECRET_RE = re.compile(rf"\b{names.SECRET_PREFIX}[A-Z0-9_]+\b")
_GH_SECRET_RE = re.compile(r"secrets\.([A-Za-z0-9_]+)")
_ROLE_RE = re.compile(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+")
_ETL_RE = re.compile(r"(?<![\w./-])/etl(?=[/\s\"':;,)\]]|$)")

# First release with Python 3.12 wheels/support: a pin below it will not install on the new base.
PY312_MINIMUM = {
    "numpy": (1, 26, 0), "pandas": (2, 1, 1), "scipy": (1, 11, 2), "pyarrow": (14, 0, 0),
    "matplotlib": (3, 8, 0), "scikit-learn": (1, 3, 1), "lxml": (4, 9, 3), "psycopg2-binary": (2, 9, 9),
    "psycopg2": (2, 9, 9), "cffi": (1, 16, 0), "cryptography": (41, 0, 5), "pyyaml": (6, 0, 1),
    "grpcio": (1, 59, 0), "shapely": (2, 0, 2), "numba": (0, 59, 0), "awswrangler": (3, 5, 0),
    "aiohttp": (3, 9, 0), "pydantic-core": (2, 10, 0), "greenlet": (3, 0, 0), "sqlalchemy": (2, 0, 22),
    "pillow": (10, 1, 0), "pyodbc": (5, 0, 0), "statsmodels": (0, 14, 1), "h5py": (3, 10, 0),
}
# R packages with compiled code or tied to R's version: old versions in renv.lock fail or rebuild on R 4.6.
R_SENSITIVE = ("Matrix", "MASS", "lattice", "nlme", "survival", "mgcv", "Rcpp", "RcppArmadillo", "data.table",
               "arrow", "sf", "xml2", "curl", "openssl", "stringi", "reticulate", "botor", "renv")


@dataclass
class Findings:
    """What scanning the repository's own files found (file:line and the value)."""

    s3: list[tuple[str, str]] = field(default_factory=list)  # (where, bucket/path)
    secrets: list[tuple[str, str]] = field(default_factory=list)  # (where, platform secret id)
    gh_secrets: list[tuple[str, str]] = field(default_factory=list)  # (where, GitHub secret name)
    roles: list[tuple[str, str]] = field(default_factory=list)  # (where, role ARN)
    etl_refs: list[tuple[str, str]] = field(default_factory=list)  # (where, line text)


def scan(files: dict[str, bytes], skip: set[str]) -> Findings:
    """Scan text files (not those in `skip`) for S3 paths, SECRET_* names, /etl paths, GitHub secrets, roles."""
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
            for m in _S3_RE.finditer(line):
                f.s3.append((where, (m.group(1) + (m.group(2) or "")).rstrip("/")))
            for m in _SECRET_RE.finditer(line):
                f.secrets.append((where, names.secret_from_env(m.group(0))))
            if path.startswith(".github/"):
                f.gh_secrets += [(where, m.group(1)) for m in _GH_SECRET_RE.finditer(line)
                                 if m.group(1) != "GITHUB_TOKEN"]
                f.roles += [(where, m.group(0)) for m in _ROLE_RE.finditer(line)]
            elif _ETL_RE.search(line):
                f.etl_refs.append((where, line.strip()))
    return f


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def risky_python_pins(requirements: str) -> list[str]:
    """Pins in requirements.txt older than the first release that supports Python 3.12."""
    found = []
    for n, line in enumerate(requirements.splitlines(), 1):
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*==\s*([0-9][^\s;#]*)", line)
        if not m:
            continue
        name = m.group(1).lower().replace("_", "-")
        need = PY312_MINIMUM.get(name)
        if need and _version(m.group(2)) < need:
            found.append(f"requirements.txt:{n}: {m.group(1)}=={m.group(2)} (Python 3.12 needs "
                         f">= {'.'.join(map(str, need))})")
    return found


def risky_r_pins(renv_lock: str) -> list[str]:
    """renv.lock facts: the R version it was made with, and packages likely to break on R 4.6."""
    try:
        lock = json.loads(renv_lock)
    except ValueError:
        return ["renv.lock: not valid JSON, so its pins were not checked"]
    out = []
    version = (lock.get("R") or {}).get("Version")
    if version:
        out.append(f"renv.lock records R {version}; the R base is R 4.6: run renv::update() and renv::snapshot()")
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
    pins: list[str],
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
        item("**Python 3.9 -> 3.12:** re-pin packages that have no 3.12 build. Most likely to break here:"
             + ("" if pins else " none of the known offenders is pinned below its first 3.12 release."))
    else:
        item("**R 4.1 -> 4.6:** old renv pins rebuild from source or fail. Most likely to break here:"
             + ("" if pins else " nothing recorded."))
    lines += [f"   - {p}" for p in pins]
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
        item("**Code that names `/etl`:** the working directory is now `/opt/analyticalplatform`; "
             "your code was not changed:")
        lines += [f"   - `{w}`: `{t}`" for w, t in findings.etl_refs]
    if findings.gh_secrets:
        item("**GitHub secrets used by the old workflow** (re-create what is still needed): "
             + ", ".join(sorted({f"`{s}`" for _, s in findings.gh_secrets})))
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

