"""Repository snapshot -> migration plan: every file to delete, add or change, with diffs (pure)."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ap_build.errors import UsageError
from ap_build.migrate import report
from ap_build.migrate.detect import LEGACY_DEPLOY, Detection, detect, legacy_deploy
from ap_build.migrate.dockerfile import parse
from ap_build.migrate.pins import PinReport, proposal, with_compiler
from ap_build.migrate.rewrite import rewrite
from ap_build.migrate.versions import Target, version_line
from ap_build.migrate.workflows import LEGACY_WORKFLOW
from ap_build.platform import WORKDIR

# The template files a migration adds (official steps 2 and 3, plus the scan gate's and test's configs).
ADDED_TEMPLATE_FILES = (
    ".github/dependabot.yml",
    ".github/workflows/dependency-review.yml",
    ".github/workflows/release-container.yml",
    ".github/workflows/scan-container.yml",
    ".github/workflows/test-container.yml",
    ".trivyignore",
    "container-structure-test.yml",
)
DOCKERFILES = ("Dockerfile", "Dockerfile.nopython")
REPORT_FILE = "MIGRATION.md"
# Every path migrate may touch; everything else in the repository is never written.
GRYPE_FILES = (".grype.yaml", ".grype.yml", ".trivyignore.yaml")  # ap_build.scan.convert.migrate_grype
_COMPILER_RE = re.compile(r"apt-get\s+install\b[^\n]*?\s(?:gcc|g\+\+|build-essential)(?:\s|$)", re.M)
REQUIREMENTS = "requirements.txt"  # written only with --upgrade-pins
TRANSFORMED = frozenset((LEGACY_WORKFLOW, LEGACY_DEPLOY, REPORT_FILE, REQUIREMENTS, *DOCKERFILES, *ADDED_TEMPLATE_FILES,
                         *GRYPE_FILES))


@dataclass(frozen=True)
class Snapshot:
    """What planning needs from a repository: its file listing and the bytes of its text files."""

    root: str
    listing: frozenset[str]
    files: dict[str, bytes]  # relative posix path -> bytes (files planning or scanning reads)
    name: str  # repository name (git remote, else folder name)
    org: str = ""  # GitHub organisation from the git remote ("" = unknown)


@dataclass
class FileOp:
    """One file operation. `keep`: a template file the repository already has, left as it is."""

    action: str  # "delete" | "add" | "change" | "keep"
    path: str
    reason: str
    old: bytes | None = None
    new: bytes | None = None

    def diff(self) -> str:
        """Unified diff (old -> new) of this file, text, line endings shown as written."""
        if self.action in ("keep",):
            return ""
        old = (self.old or b"").decode("utf-8", "replace").splitlines(keepends=True)
        new = (self.new or b"").decode("utf-8", "replace").splitlines(keepends=True)
        a = "/dev/null" if self.old is None else f"a/{self.path}"
        b = "/dev/null" if self.new is None else f"b/{self.path}"
        return "".join(_nl(x) for x in difflib.unified_diff(old, new, a, b))

    def to_dict(self, diff: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"action": self.action, "path": self.path, "reason": self.reason}
        if diff and self.action != "keep":
            d["diff"] = self.diff()
        return d


def _nl(line: str) -> str:
    return line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"


@dataclass
class Plan:
    """The whole migration, decided before anything is written."""

    root: str
    detection: Detection
    base_image: str
    ops: list[FileOp] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    versions: str = ""  # the language version move, as MIGRATION.md states it
    pins: PinReport | None = None  # Python only: the pins checked against the base

    @property
    def writes(self) -> list[FileOp]:
        return [o for o in self.ops if o.action in ("add", "change")]

    @property
    def deletes(self) -> list[FileOp]:
        return [o for o in self.ops if o.action == "delete"]

    @property
    def noop(self) -> bool:
        return not self.writes and not self.deletes

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.root,
            "detected": {
                "kind": self.detection.kind,
                "runtime": self.detection.runtime,
                "uses_python": self.detection.uses_python,
                "label": self.detection.label,
                "legacy_signals": self.detection.legacy_signals,
            },
            "base_image": self.base_image,
            "operations": [o.to_dict() for o in self.ops],
            "dockerfile_changes": self.done,
            "notes": self.notes,
            "versions": self.versions,
            "pins": _pins_dict(self.pins),
            "noop": self.noop,
        }


def _pins_dict(pins: PinReport | None) -> dict[str, Any] | None:
    if pins is None:
        return None
    return {
        "checked": pins.checked,
        "summary": pins.summary,
        "problems": [{"line": p.pin.line, "requirement": f"{p.pin.name}=={p.pin.version}", "reason": p.reason,
                      "nearest": p.nearest} for p in pins.problems],
        "source_builds": [f"{p.name}=={p.version}" for p in pins.source_builds],
        "not_checked": pins.skipped,
    }


def pin_lines(pins: PinReport) -> list[str]:
    """One line per pin that cannot install, builds from source, or was not checked."""
    return ([p.line() for p in pins.problems]
            + [f"requirements.txt:{p.line}: {p.name}=={p.version} has no wheel for the base: it builds from source "
               "(pure Python, or with the compiler the Dockerfile installs)" for p in pins.source_builds]
            + pins.skipped)


def _program_path(dockerfile: str) -> str | None:
    """The program file the final ENTRYPOINT/CMD runs (absolute, in the image), if it names one."""
    for item in reversed(parse(dockerfile).instructions()):
        if item.keyword in ("ENTRYPOINT", "CMD") and item.value.startswith("["):
            try:
                argv = json.loads(item.value)
            except ValueError:
                return None
            for arg in argv:
                for word in str(arg).split():
                    if re.fullmatch(r"[\w./-]+\.(py|R|r|sh)", word):
                        return word if word.startswith("/") else f"{WORKDIR}/{word}"
            return None
    return None


def adapt_structure_test(content: str, program: str | None) -> str:
    """Point the template's program-exists check at the migrated program (or drop it if none is known)."""
    if program:
        return re.sub(rf"path: {re.escape(WORKDIR)}/main\.(py|R)", f"path: {program}", content)
    return re.sub(r"\nfileExistenceTests:\n(?:  .*\n|\s*\n)*", "\n", content)


def _text(snap: Snapshot, name: str) -> str:
    try:
        return snap.files[name].decode("utf-8")
    except UnicodeDecodeError as exc:
        line = snap.files[name][: exc.start].count(b"\n") + 1
        raise UsageError(f"{snap.root}/{name}:{line}: not UTF-8 text (byte {exc.start})",
                         hint="save it as UTF-8, then re-run") from exc


def make_plan(
    snap: Snapshot,
    base_image: str | None,
    templates: dict[str, str] | None = None,
    *,
    org_default: str = "moj-analytical-services",
    target: Target | None = None,
    pin_report: PinReport | None = None,
    upgrade_pins: bool = False,
    proposal_check: str = "",
) -> Plan:
    """Decide every file operation. `templates`: rendered template files (default: rendered here); `target`:
    the base's language version; `pin_report`: requirements.txt checked against it (both learned by the
    caller, see target.py and pins.py); `upgrade_pins`: write the nearest installable versions."""
    det = detect(snap.files, set(snap.listing), snap.root)
    from ap_build.scaffold.render import Answers, ecr_repository_name, render_files

    org = snap.org or org_default
    answers = Answers(name=snap.name, org=org, base_image=base_image or "").resolved(det.runtime)
    plan = Plan(snap.root, det, answers.base_image)
    if det.kind == "migrated":
        return plan
    if templates is None:
        templates = render_files(det.runtime, answers, include_examples=False)

    # Dockerfiles (the final one decides the program the structure test looks for).
    new_dockerfile = ""  # detect() has checked that the Dockerfile is there: set in the loop
    app = "/etl"
    for name in DOCKERFILES:
        if name not in snap.files:
            continue
        text = _text(snap, name)
        rw = rewrite(parse(text, name), answers.base_image,
                     add_python=det.uses_python and name == "Dockerfile", path=name)
        plan.done += rw.done
        plan.notes += rw.notes
        if name == "Dockerfile":
            new_dockerfile, app = rw.text, rw.app_dir
        if rw.changed:
            why = "onto the runtime base (see the Dockerfile changes)"
            if name == "Dockerfile.nopython":
                why = "the no-Python variant, migrated the same way"
            plan.ops.append(FileOp("change", name, why, snap.files[name], rw.text.encode("utf-8")))

    program = _program_path(new_dockerfile)
    for path in ADDED_TEMPLATE_FILES:
        content = templates[path]
        if path == "container-structure-test.yml":
            content = adapt_structure_test(content, program)
        data = content.encode("utf-8")
        if path in snap.listing:
            if snap.files.get(path) != data:
                plan.ops.append(FileOp("keep", path, "already exists: yours is kept; compare with the template"))
            continue
        plan.ops.append(FileOp("add", path, "from the runtime template", None, data))
    if LEGACY_DEPLOY in det.workflows:
        policies = [f"`{p}`" for p in ("iam_config.yaml", "iam_config.yml", "iam_policy.json", "policy.json")
                    if p in snap.listing]
        plan.notes.append(f"The job ran with the IAM role `{legacy_deploy(snap.files)}` (deploy.json)"
                          + (f" and the policy in {', '.join(policies)}" if policies else "")
                          + ": declare the same permissions in the manifest's `iam` block; that role is not used "
                          "any more" + (" (delete the policy files once the first release works)." if policies
                                        else "."))
    for path, evidence in det.workflows.items():
        what = "legacy deployment" if path == LEGACY_DEPLOY else "legacy release workflow"
        plan.ops.append(FileOp("delete", path, f"a {what}: " + "; ".join(evidence),
                               snap.files.get(path, b""), None))

    from ap_build.scan.convert import migrate_grype  # a legacy .grype.yaml -> .trivyignore.yaml

    grype_ops, grype_notes = migrate_grype(snap.files, snap.listing)
    plan.ops += [FileOp(*op) for op in grype_ops]
    plan.notes += grype_notes
    findings = report.scan(snap.files, skip=set(TRANSFORMED) - set(det.workflows),
                           legacy_workflows=set(det.workflows), app_dir=app)
    target = target or Target(det.runtime, "", "", "not inspected")
    final = det.dockerfile.items[det.dockerfile.stage_starts()[-1]].value if det.dockerfile else ""
    plan.versions = version_line(det.runtime, final, target, answers.base_image)
    pins: list[str] = []
    summary = pins_diff = ""
    if det.runtime == "python" and REQUIREMENTS in snap.files:
        plan.pins = pin_report or PinReport(False, "not checked (no check was asked for)")
        if _COMPILER_RE.search(new_dockerfile):
            plan.pins = with_compiler(plan.pins)
        pins = pin_lines(plan.pins)
        every = not pins and plan.pins.summary.startswith("checked")
        summary = plan.pins.summary + (": every pin installs there" if every else "")
        if upgrade_pins and any(p.nearest for p in plan.pins.problems):
            old = snap.files[REQUIREMENTS]
            new = proposal(old.decode("utf-8", "replace"), plan.pins.problems).encode("utf-8")
            op = FileOp("change", REQUIREMENTS, "--upgrade-pins: the pins that cannot install moved to the nearest "
                        "version that does", old, new)
            plan.ops.append(op)
            pins_diff = op.diff()
            plan.notes.append(proposal_check or "The proposed pins were not checked together.")
    if det.runtime == "r" and "renv.lock" in snap.files:
        pins = report.risky_r_pins(snap.files["renv.lock"].decode("utf-8", "replace"), target.label)
    ops_for_report = [(o.action, o.path, o.reason) for o in plan.ops if o.action != "keep"]
    ops_for_report.append(("add", REPORT_FILE, "this report"))
    md = report.render_migration_md(
        name=snap.name,
        label=det.label,
        runtime=det.runtime,
        base_image=answers.base_image,
        github_repo=f"{org}/{snap.name}",
        ecr_repo=ecr_repository_name(org, snap.name),
        ops=ops_for_report,
        done=plan.done,
        notes=plan.notes,
        findings=findings,
        versions=plan.versions,
        pins=pins,
        pins_summary=summary,
        pins_diff=pins_diff,
        uses_python=det.uses_python,
        has_nopython="Dockerfile.nopython" in snap.files,
    )
    if REPORT_FILE in snap.listing:
        plan.ops.append(FileOp("keep", REPORT_FILE, "already exists (an earlier, interrupted run?): kept"))
    else:
        plan.ops.append(FileOp("add", REPORT_FILE, "what was done and the manual follow-ups", None,
                               md.encode("utf-8")))
    return plan
