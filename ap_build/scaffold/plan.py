"""Plan what `scaffold` and `scaffold --update` write (pure: file contents in, a list of actions out).

Nothing here touches the disk; `apply.py` carries the plan out. The three-way merge itself is passed in
(`merge.py` wraps `git merge-file`) so the decisions stay testable without it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

# (current, base, new) -> (merged text, number of conflicts)
Merger = Callable[[str, str, str], tuple[str, int]]

WRITES = {"create", "update", "merge", "conflict"}


@dataclass(frozen=True)
class FileAction:
    """One file's fate: `action` is one of

    create     the file is new: write it
    update     the user had not changed it and the template did: write the template's new version
    merge      both changed it: write the clean three-way merge
    conflict   both changed the same lines: write the merge with conflict markers (exit 1)
    unchanged  already what the template gives: nothing to do
    keep       the user changed it and the template did not: left as is
    skip       exists and differs from the template (a new scaffold into a non-empty folder): left as is
    delete     the template dropped it and the user had not changed it: removed
    orphan     the template dropped it but the user changed it: left as is
    missing    the user deleted it: left deleted
    """

    path: str
    action: str
    content: str | None = None
    conflicts: int = 0

    @property
    def writes(self) -> bool:
        return self.action in WRITES

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "action": self.action, "conflicts": self.conflicts}


def plan_create(rendered: Mapping[str, str], existing: Mapping[str, str | None]) -> list[FileAction]:
    """A new scaffold: write what is missing, never overwrite a file that differs."""
    actions = []
    for path, text in sorted(rendered.items()):
        cur = existing.get(path)
        if cur is None:
            actions.append(FileAction(path, "create", text))
        elif cur == text:
            actions.append(FileAction(path, "unchanged"))
        else:
            actions.append(FileAction(path, "skip"))
    return actions


def plan_update(
    base: Mapping[str, str],
    current: Mapping[str, str | None],
    new: Mapping[str, str],
    merge: Merger,
) -> list[FileAction]:
    """Bring template files from `base` (the recorded rendering) to `new`, keeping the user's edits.

    `current` maps every path in `base` or `new` to the file on disk (None if absent).
    """
    actions = []
    for path in sorted(set(base) | set(new)):
        b, c, n = base.get(path), current.get(path), new.get(path)
        if n is None:  # the template dropped the file
            if c is None:
                continue
            actions.append(FileAction(path, "delete") if c == b else FileAction(path, "orphan"))
        elif c is None:
            actions.append(FileAction(path, "create", n) if b is None else FileAction(path, "missing"))
        elif c == n:
            actions.append(FileAction(path, "unchanged"))
        elif b is not None and c == b:
            actions.append(FileAction(path, "update", n))
        elif b is not None and n == b:
            actions.append(FileAction(path, "keep"))
        else:
            merged, conflicts = merge(c, b or "", n)
            if conflicts:
                actions.append(FileAction(path, "conflict", merged, conflicts))
            elif merged == c:
                actions.append(FileAction(path, "keep"))
            else:
                actions.append(FileAction(path, "merge", merged))
    return actions


def summary(actions: list[FileAction]) -> dict[str, int]:
    """Count of actions by kind (pure)."""
    counts: dict[str, int] = {}
    for a in actions:
        counts[a.action] = counts.get(a.action, 0) + 1
    return counts
