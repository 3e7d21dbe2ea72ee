"""The legacy -> runtime-base Dockerfile rewrite (pure): final stage onto the base, program in WORKDIR.

Untouched items keep their exact bytes; substitutions act on an item's raw text (continuations and inner
comments survive); only FROM, ENTRYPOINT/CMD and a RUN chain that lost a segment are regenerated.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field, replace

from ap_build.errors import UsageError
from ap_build.migrate.alpine import translate
from ap_build.migrate.dockerfile import _DE_ECR_RE, _DIRECTIVE_RE, Dockerfile, Item, is_migrated
from ap_build.platform import WORKDIR

LEGACY_WORKDIR = "/etl"
# A WORKDIR of the legacy image that is a system folder: its paths are not moved (they are not the program's).
SYSTEM_DIRS = frozenset(("/", "/bin", "/etc", "/home", "/opt", "/root", "/srv", "/tmp", "/usr", "/usr/local",
                         "/usr/src", "/var", WORKDIR))
_PYTHON_RE = re.compile(r"(?<![\w./$-])python(?:3\.\d+)?(?![\w.-])")  # python, python3.7 -> the base's python3
_PIP_RE = re.compile(r"(?<![\w./$-])pip3\.\d+(?![\w.-])")  # pip3.7 -> pip3
_PIP_USER_RE = re.compile(r"(\bpip3?\s+install\b[^&|;\n]*?)\s+--user\b")  # the venv has no user site
_CHMOD_RE = re.compile(r"^(?:RUN\s+)?chmod\s+(?:-R\s+777|777\s+-R|-R\s+a\+rwx|a\+rwx\s+-R)\s+\S+$")
_USER_ADD_RE = re.compile(r"^(?:adduser|useradd|addgroup|groupadd)\b")
_RENV_RE = re.compile(r"\brenv::\w+")  # renv steps: the project library and cache belong to the runtime user
_SHELL_META = set("&|;<>$`*?(){}[]~\\'\"\n#")
ROOT_STEPS = ("RUN", "COPY", "ADD")
USER_UID = "USER ${CONTAINER_UID}"


@dataclass
class Rewrite:
    """The result of rewriting one Dockerfile: new text and what was done (for the report)."""

    text: str
    changed: bool
    done: list[str] = field(default_factory=list)  # one line per change, with the source line
    notes: list[str] = field(default_factory=list)  # manual follow-ups found while rewriting
    app_dir: str = LEGACY_WORKDIR  # the legacy image's program folder, now WORKDIR


def exec_form(command: str) -> tuple[list[str], bool]:
    """Shell-form command -> exec-form argv; (argv, needed_a_shell)."""
    if any(c in _SHELL_META for c in command):
        return ["/bin/sh", "-c", command], True
    return shlex.split(command), False


def _python3(text: str) -> str:
    return _PIP_USER_RE.sub(r"\1", _PIP_RE.sub("pip3", _PYTHON_RE.sub("python3", text)))


def path_pattern(dirs: set[str] | frozenset[str]) -> re.Pattern[str]:
    """Absolute paths in or at one of `dirs` (a whole path component, not /etlx or /a/etl)."""
    alt = "|".join(re.escape(d) for d in sorted(dirs, key=len, reverse=True))
    return re.compile(rf"(?<![\w./-])(?:{alt})(?=[/\s\"':;,)\]]|$)")


def app_dir(df: Dockerfile) -> str:
    """The legacy program folder: the final stage's last absolute WORKDIR (/etl in the templates)."""
    starts = df.stage_starts()
    dirs = [i.value.strip().strip("\"'") for i in df.items[starts[-1]:] if i.keyword == "WORKDIR"] if starts else []
    absolute = [d.rstrip("/") or "/" for d in dirs if d.startswith("/")]
    return absolute[-1] if absolute else LEGACY_WORKDIR


class _Walk:
    """The rewrite's state while walking the items once (output, report lines, removals)."""

    def __init__(self, df: Dockerfile, base_image: str, path: str) -> None:
        self.df, self.base, self.path, self.nl = df, base_image, path, df.newline
        self.done: list[str] = []
        self.notes: list[str] = []
        self.out: list[Item | str] = []  # strings are new lines (already terminated)
        self.drops: list[int] = []  # positions in `out` where an instruction was removed
        self.app = app_dir(df)
        movable = self.app not in SYSTEM_DIRS
        self.paths = path_pattern({LEGACY_WORKDIR, self.app} if movable else {LEGACY_WORKDIR})
        if not movable:
            self.notes.append(f"{path}: WORKDIR {self.app} is a system folder: its paths were not moved to "
                              f"{WORKDIR}; check where the program is copied")
        self.users = _created_users(df)
        self.directives = _directive_items(df)

    def where(self, item: Item) -> str:
        return f"{self.path}:{item.line}"

    def moved(self, text: str) -> str:
        return self.paths.sub(WORKDIR, text)

    def drop(self, item: Item, message: str) -> None:
        """Remove an instruction, with the comment lines attached right above it."""
        self.done += _pop_attached_comments(self.out, self.directives, self.path)
        self.done.append(f"{self.where(item)}: {message}")
        self.drops.append(len(self.out))


def _pop_attached_comments(out: list[Item | str], directives: set[Item], path: str) -> list[str]:
    """Remove the comment lines right above a removed instruction (not parser directives); report them."""
    gone: list[Item] = []
    while out and isinstance(out[-1], Item) and out[-1].kind == "comment" and out[-1] not in directives:
        gone.insert(0, out.pop())  # type: ignore[arg-type]
    return [f"{path}:{g.line}: dropped the comment of a removed line: {g.raw.strip()}" for g in gone]


def _directive_items(df: Dockerfile) -> set[Item]:
    out = set()
    for item in df.items:
        m = _DIRECTIVE_RE.match(item.raw.strip()) if item.kind == "comment" else None
        if not m or m.group(1).lower() not in df.directives:
            break
        out.add(item)
    return out


def _created_users(df: Dockerfile) -> set[str]:
    """Users the legacy image created (adduser daguser ...), so their USER/chown lines go too."""
    users: set[str] = set()
    starts = df.stage_starts()
    for item in df.items[starts[-1]:] if starts else ():
        if item.keyword == "RUN" and not item.heredocs:
            for seg in _segments(item.value):
                if _USER_ADD_RE.match(seg):
                    words = [w for w in shlex.split(seg, posix=True) if not w.startswith("-")]
                    if len(words) > 1:
                        users.add(words[-1])
    return users


def _segments(value: str) -> list[str]:
    return [s.strip() for s in value.split("&&")]


def _is_arg_de_ecr(item: Item | str) -> bool:
    return isinstance(item, Item) and item.keyword == "ARG" and item.value.split("=")[0].strip() == "DE_ECR"


def _earlier_stage(w: _Walk, item: Item) -> None:
    """Before the final stage: re-base `${DE_ECR}` build stages; everything else as it is."""
    if item.keyword == "FROM" and _DE_ECR_RE.search(item.value):
        alias = _alias(item.value)
        w.out += [f"FROM {w.base}{alias}{w.nl}", f"USER root{w.nl}"]
        w.done.append(f"{w.where(item)}: build stage{alias.replace(' AS ', ' ')} re-based from "
                      f"{item.value.split()[0]} (the old ECR) onto the runtime base, as root like before; "
                      "its other lines are unchanged")
        return
    if item.keyword == "FROM":
        w.notes.append(f"{w.where(item)}: build stage FROM {item.value} left unchanged "
                       "(only the final stage is migrated; check that this image is still reachable)")
    w.out.append(item)  # ARG DE_ECR included: decided once we know whether any FROM still uses it


def _final_from(w: _Walk, item: Item, rest: tuple[Item, ...]) -> None:
    alias = _alias(item.value)
    w.out.append(f"FROM {w.base}{alias}{w.nl}")
    w.done.append(f"{w.where(item)}: FROM {item.value.split()[0]} -> FROM {w.base}")
    if not any(i.keyword == "ARG" and i.value.startswith("MOJAP_IMAGE_VERSION") for i in rest):
        w.out += [f'ARG MOJAP_IMAGE_VERSION="default"{w.nl}',
                  f'ENV MOJAP_IMAGE_VERSION="${{MOJAP_IMAGE_VERSION}}"{w.nl}']
        w.done.append(f"{w.where(item)}: added ARG/ENV MOJAP_IMAGE_VERSION (the release tag, as a build-arg)")


def _final_instruction(w: _Walk, item: Item) -> None:
    """One instruction of the final stage (after its FROM)."""
    kw = item.keyword
    if _is_arg_de_ecr(item):
        return w.drop(item, "dropped ARG DE_ECR")
    if kw == "USER":
        return w.drop(item, f"dropped USER {item.value} (the image now ends as {USER_UID})")
    if kw == "RUN" and not item.heredocs:
        segs = _segments(item.value)
        keep = [s for s in segs if not _drop_segment(s, w.users)]
        apt = _apk_to_apt(w, item, keep)
        if not apt:
            return w.drop(item, f"dropped RUN {item.value}")
        if apt != segs:
            dropped = [s for s in segs if s not in keep]
            sep = " \\" + w.nl + "    && " if len(apt) > 1 else ""
            if dropped:
                w.done.append(f"{w.where(item)}: removed {' ; '.join(dropped)} from a RUN")
            item = replace(item, raw="RUN " + sep.join(apt) + w.nl, value=" && ".join(apt))
    if kw == "RUN" and item.heredocs and re.search(r"chmod\s+-R\s+777|adduser|useradd", item.raw):
        w.notes.append(f"{w.where(item)}: a heredoc RUN changes permissions or users; check it by hand")
    if kw in ("ENTRYPOINT", "CMD") and not item.value.startswith("["):
        argv, shell = exec_form(w.moved(_python3(item.value)))
        w.done.append(f"{w.where(item)}: {kw} {item.value} -> exec form {json.dumps(argv)}")
        if shell:
            w.notes.append(f"{w.where(item)}: {kw} uses shell syntax, so it runs through /bin/sh -c; "
                           "consider a plain argv or an entrypoint script")
        w.out.append(f"{kw} {json.dumps(argv)}{w.nl}")
        return None
    if kw in ("COPY", "ADD") and w.users:
        item = _without_chown(w, item)
    new = _moved_copy(w, item) if kw in ("COPY", "ADD") else w.moved(item.raw)
    if kw in ("RUN", "ENTRYPOINT", "CMD"):
        new = _python3(new)
    if new == item.raw:
        w.out.append(item)
        return None
    what = []
    if w.paths.search(item.raw):
        what.append(f"{w.app} -> {WORKDIR}")
    if kw in ("RUN", "ENTRYPOINT", "CMD") and _python3(item.raw) != item.raw:
        what.append("python -> python3 (pip install without --user: the base's Python is a venv)")
    w.done.append(f"{w.where(item)}: {kw} {', '.join(what) or 'rewritten'}")
    w.out.append(new)
    return None


def _apk_to_apt(w: _Walk, item: Item, segments: list[str]) -> list[str]:
    """Alpine's apk steps as apt-get steps (the bases are Debian/Ubuntu); other segments as they are."""
    out: list[str] = []
    for seg in segments:
        found = translate(seg)
        if found is None:
            out.append(seg)
            continue
        apt, unknown = found
        w.done.append(f"{w.where(item)}: {seg} -> " + (apt or "dropped (nothing to do on the Debian base)"))
        if unknown:
            w.notes.append(f"{w.where(item)}: Alpine packages {', '.join(unknown)} were kept under the same names "
                           "in apt-get install: check their Debian names")
        if apt and out and out[-1] == "apt-get update" and apt.startswith("apt-get update && "):
            out[-1] = apt  # `apk update && apk add ...`: one update
        elif apt:
            out.append(apt)
    return out


def _without_chown(w: _Walk, item: Item) -> Item:
    """COPY --chown=daguser: the user the legacy image created is gone, so is the flag (root owns the files)."""
    def gone(m: re.Match[str]) -> str:
        return "" if m.group(1).split(":")[0] in w.users else m.group(0)

    chown = re.compile(r"\s--chown=(\S+)")
    raw = chown.sub(gone, item.raw)
    if raw == item.raw:
        return item
    w.done.append(f"{w.where(item)}: {item.keyword} --chown to a removed user dropped")
    return replace(item, raw=raw, value=chown.sub(gone, item.value))


def _moved_copy(w: _Walk, item: Item) -> str:
    """Paths moved in a COPY/ADD; with --from only the destination (the sources are the other stage's)."""
    if "--from" not in item.value or item.heredocs:
        return w.moved(item.raw)
    body = item.raw.rstrip("\r\n")
    tail = item.raw[len(body):]
    head, sep, last = body.rpartition(" ")
    return head + sep + w.moved(last) + tail if sep else item.raw


def rewrite(df: Dockerfile, base_image: str, *, add_python: bool = False, path: str = "Dockerfile") -> Rewrite:
    """Rewrite a legacy Dockerfile onto the runtime base (final stage; `${DE_ECR}` stages re-based).

    Untouched items keep their exact bytes; new lines use the file's newline convention.
    """
    if is_migrated(df):
        return Rewrite(df.text(), False)
    starts = df.stage_starts()
    if not starts:
        raise UsageError(f"{path}: no FROM instruction", hint="a Dockerfile needs at least one FROM")
    final_at = starts[-1]
    w = _Walk(df, base_image, path)
    for n, item in enumerate(df.items):
        if n < final_at:
            _earlier_stage(w, item)
        elif n == final_at:
            _final_from(w, item, df.items[n:])
        elif item.is_instruction:
            _final_instruction(w, item)
        else:
            w.out.append(item)
    _tidy_blank_lines(w)
    _drop_unused_de_ecr(w)
    final_pos = max(k for k, x in enumerate(w.out) if _kw(x) == "FROM")
    _switch_users(w, final_pos, add_python)
    if not any(_kw(x) == "WORKDIR" for x in w.out[final_pos:]):
        at = final_pos + 3 if _kw(w.out[final_pos + 1]) == "ARG" else final_pos + 1
        w.out.insert(at, f"WORKDIR {WORKDIR}{w.nl}")
        w.done.append(f"{path}: added WORKDIR {WORKDIR}")
    text = "".join(x if isinstance(x, str) else x.raw for x in w.out)
    return Rewrite(text, text != df.text(), w.done, w.notes, w.app)


def _tidy_blank_lines(w: _Walk) -> None:
    """A removed instruction between two blank lines leaves one blank line, not two."""
    out = w.out
    for p in reversed(w.drops):
        if 0 < p < len(out) and all(isinstance(x, Item) and x.kind == "blank" for x in (out[p - 1], out[p])):
            del out[p]


def _drop_unused_de_ecr(w: _Walk) -> None:
    """ARG DE_ECR before FROM: dropped (with its comment) when no FROM uses it any more."""
    if any(_kw(x) == "FROM" and _DE_ECR_RE.search(x if isinstance(x, str) else x.value) for x in w.out):
        return
    kept: list[Item | str] = []
    for x in w.out:
        if _is_arg_de_ecr(x):
            assert isinstance(x, Item)
            w.done += _pop_attached_comments(kept, w.directives, w.path)
            w.done.append(f"{w.where(x)}: dropped ARG DE_ECR")
            continue
        kept.append(x)
    w.out[:] = kept


def _needs_root(x: Item | str) -> bool | None:
    """True for a step that needs root, False for one the runtime user runs (renv), None for other lines."""
    kw = _kw(x)
    if kw not in ROOT_STEPS:
        return None
    text = x if isinstance(x, str) else x.value
    return not (kw == "RUN" and _RENV_RE.search(text))


def _switch_users(w: _Walk, final_pos: int, add_python: bool) -> None:
    """`USER root` before the steps that need root and `USER ${CONTAINER_UID}` before renv steps and after the
    last root step (above the comments attached to the step), so renv's library and cache belong to uid 1000
    and the image ends as user 1000."""
    nl, out = w.nl, w.out
    new: list[Item | str] = out[: final_pos + 1]
    current, first_root, last_root = "user", True, -1
    for x in out[final_pos + 1:]:
        root = _needs_root(x)
        want = None if root is None else ("root" if root else "user")
        if want and want != current:
            attached: list[Item | str] = []
            while len(new) > final_pos + 1 and isinstance(new[-1], Item) and new[-1].kind == "comment":
                attached.insert(0, new.pop())
            new.append(f"USER root{nl}" if want == "root" else f"{USER_UID}{nl}")
            if want == "root" and first_root:
                first_root = False
                new += _python_block(w) if add_python else []
            new += attached
            current = want
        if isinstance(x, Item) and root is not None and not x.raw.endswith(("\n", "\r")):
            x = x.raw + nl
        new.append(x)
        if root:
            last_root = len(new)
    if current == "root":
        new.insert(last_root, f"{USER_UID}{nl}")
    if last_root >= 0:
        renv = any(_needs_root(x) is False for x in new[final_pos + 1:])
        w.done.append(f"{w.path}: root steps wrapped in USER root ... {USER_UID}"
                      + ("; renv steps run as the runtime user (uid 1000)" if renv else "")
                      + "; the image ends as 1000")
    out[:] = new


def _python_block(w: _Walk) -> list[Item | str]:
    nl = w.nl
    w.done.append(f"{w.path}: added python3 from the distribution as root (the R base has no Python)")
    return [
        f"# The R runtime base has no Python; botor/reticulate need one (see MIGRATION.md).{nl}",
        f"RUN apt-get update \\{nl}"
        f"    && apt-get install --yes --no-install-recommends python3 python3-venv python3-pip \\{nl}"
        f"    && apt-get clean && rm -rf /var/lib/apt/lists/*{nl}",
    ]


def _kw(x: Item | str) -> str:
    if isinstance(x, Item):
        return x.keyword
    return x.split(" ", 1)[0].strip().upper() if not x.startswith("#") else ""


def _alias(value: str) -> str:
    words = value.split()
    for k, w in enumerate(words[:-1]):
        if w.upper() == "AS":
            return f" AS {words[k + 1]}"
    return ""


def _drop_segment(seg: str, users: set[str]) -> bool:
    if _CHMOD_RE.match(seg) or _USER_ADD_RE.match(seg):
        return True
    return bool(seg.startswith("chown") and any(re.search(rf"\b{re.escape(u)}\b", seg) for u in users))
