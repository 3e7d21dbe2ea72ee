"""What a repository is: legacy Python / legacy R (with or without Python) / already migrated / unknown (pure)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ap_build.errors import UsageError
from ap_build.migrate.dockerfile import Dockerfile, is_migrated, parse
from ap_build.migrate.workflows import LEGACY_WORKFLOW, legacy_release_workflows

TEMPLATE_MARKER = ".github/workflows/release-container.yml"
LEGACY_DEPLOY = "deploy.json"  # the first template's deployment descriptor ({"mojanalytics-deploy": ...})

EXPECTED = (
    "expected a legacy Data Engineering template repository: a Dockerfile with `ARG DE_ECR` and "
    "`FROM ${DE_ECR}/python:<tag>` or `FROM ${DE_ECR}/r-airflow:<tag>` (WORKDIR /etl), and "
    f"a legacy release workflow (e.g. {LEGACY_WORKFLOW})"
)

_R_FROM = re.compile(r"r-airflow|(?:^|[/-])r-base\b|rocker/|/r:", re.I)
_PY_FROM = re.compile(r"python", re.I)


def runtime_of_image(image: str, listing: set[str]) -> str | None:
    """`r`, `python` or None from a FROM image name (and renv.lock as a tie-breaker)."""
    if _R_FROM.search(image):
        return "r"
    if _PY_FROM.search(image):
        return "python"
    return "r" if "renv.lock" in listing else None


@dataclass
class Detection:
    """The verdict on one repository."""

    kind: str  # "legacy" | "migrated"
    runtime: str  # "python" | "r"
    uses_python: bool = False  # R only: the Dockerfile sets up Python (botor via reticulate)
    legacy_signals: list[str] = field(default_factory=list)
    dockerfile: Dockerfile | None = None
    workflows: dict[str, list[str]] = field(default_factory=dict)  # legacy release files (deleted) -> evidence

    @property
    def label(self) -> str:
        if self.kind == "migrated":
            return f"already migrated ({self.runtime} runtime template)"
        if self.runtime == "r":
            return "legacy R template " + ("with Python (botor)" if self.uses_python else "without Python")
        return "legacy Python template"


def legacy_deploy(files: dict[str, bytes]) -> str | None:
    """The role name of a first-template `deploy.json` ("?" when it names none); None when there is none."""
    try:
        data = json.loads(files.get(LEGACY_DEPLOY, b"").decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not ("mojanalytics-deploy" in data or data.get("type") == "airflow_dag"):
        return None
    return str(data.get("role_name") or "?")


def _final_from(df: Dockerfile) -> str:
    starts = df.stage_starts()
    return df.items[starts[-1]].value.split()[0] if starts else ""


def detect(files: dict[str, bytes], listing: set[str], where: str = ".") -> Detection:
    """Classify a repository from its Dockerfile (bytes) and its file listing.

    Raises UsageError naming what was expected for anything else (never a guess).
    """
    if "Dockerfile" not in files:
        raise UsageError(f"{where}: no Dockerfile, so this is not a Data Engineering template repository",
                         hint=EXPECTED)
    try:
        text = files["Dockerfile"].decode("utf-8")
    except UnicodeDecodeError as exc:
        line = files["Dockerfile"][: exc.start].count(b"\n") + 1
        raise UsageError(f"{where}/Dockerfile:{line}: not UTF-8 text (byte {exc.start})",
                         hint="save it as UTF-8, then re-run") from exc
    df = parse(text, f"{where}/Dockerfile")
    if not df.stage_starts():
        raise UsageError(f"{where}/Dockerfile: no FROM instruction", hint=EXPECTED)
    image = _final_from(df)
    workflows = legacy_release_workflows(files, listing)
    signals = list(workflows)
    deploy = legacy_deploy(files)
    if deploy is not None:
        workflows[LEGACY_DEPLOY] = [f"the first template's Airflow deployment (mojanalytics-deploy, role {deploy})"]
        signals.append(LEGACY_DEPLOY)
    if any("DE_ECR" in i.raw for i in df.instructions()):
        signals.append("Dockerfile uses ${DE_ECR}")
    starts = df.stage_starts()
    if any(i.keyword == "WORKDIR" and i.value.rstrip("/") == "/etl" for i in df.items[starts[-1]:]):
        signals.append("WORKDIR /etl")
    found = runtime_of_image(image, listing)
    if not signals:
        if is_migrated(df) and TEMPLATE_MARKER in listing and found:
            return Detection("migrated", found, dockerfile=df)
        raise UsageError(
            f"{where}: not a layout ap-build migrate knows (Dockerfile FROM {image})", hint=EXPECTED
        )
    if found is None:
        raise UsageError(
            f"{where}/Dockerfile:{df.items[starts[-1]].line}: the final stage is FROM {image}, "
            "neither the legacy python nor r-airflow image",
            hint=EXPECTED,
        )
    runtime = found
    is_r = runtime == "r"
    uses_python = is_r and bool(re.search(r"use_python|requirements\.txt|\bpip3?\b|reticulate", text))
    return Detection("legacy", runtime, uses_python, signals, df, workflows)
