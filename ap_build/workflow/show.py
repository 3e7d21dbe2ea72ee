"""`ap-build workflow show`: the compiled task graph as a Rich tree.

Manifest text is shown, never obeyed: every piece is a Rich `Text` (no markup), with control and
format characters (newline, ESC, NUL, bidi overrides, line separators) shown as escapes.
"""

from __future__ import annotations

import unicodedata

from cron_descriptor import get_description
from rich.text import Text
from rich.tree import Tree

from ap_build import names
from ap_build.ui import printable, styled
from ap_build.workflow import model
from ap_build.workflow.plan import image, plan_tasks
from ap_build.workflow.settings import Identity, Settings


def shown(text: object) -> str:
    """`text` as one inert line: ui.printable's escapes, plus Unicode format and separator characters."""
    return "".join(c if unicodedata.category(c) not in ("Cf", "Zl", "Zp", "Cs") else f"\\u{ord(c):04x}"
                   for c in printable(text))


def _line(*parts: str | tuple[str, str]) -> Text:
    return styled(*(shown(p) if isinstance(p, str) else (shown(p[0]), p[1]) for p in parts))


def schedule_in_words(m: model.Manifest) -> str:
    s = m.dag.schedule
    if s is None or (isinstance(s, str) and s.strip() in ("", "None")):
        return "manual only"
    if isinstance(s, str):
        text = s.strip()
        if text.startswith("@"):
            return text
        fields = text.split()
        if len(fields) == 6:  # AWS style: minute hour day month weekday year
            fields = [f.replace("?", "*") for f in fields[:5]]
        try:
            return f"{get_description(' '.join(fields))} ({text})"
        except Exception:  # cron-descriptor cannot word every valid expression
            return text
    if s.datasets is not None:
        return "when updated: " + ", ".join(s.datasets)
    unit = next(k for k in ("seconds", "minutes", "hours") if getattr(s, k) is not None)
    return f"every {getattr(s, unit)} {unit}"


def render_tree(m: model.Manifest, ident: Identity, settings: Settings) -> Tree:
    tree = Tree(_line((ident.dag_id(settings), "bold"), f" ({ident.environment})"))
    tree.add(_line(f"schedule: {schedule_in_words(m)}"))
    tree.add(_line(f"image: {image(m, settings)}"))
    secret_names = {names.secret_env(s) for s in m.secrets}
    tasks = tree.add("tasks")
    for plan in plan_tasks(m, ident, settings):
        node = tasks.add(_line((plan.task_id, "cyan"), f" pod {plan.pod_name}: {plan.cpu} vCPU, {plan.memory_gb} GiB"
                                f"{', 1 GPU' if plan.gpu else ''} on {plan.pool}"
                                + (f" after {', '.join(plan.upstream)}" if plan.upstream else "")))
        env = node.add("env")
        for key, value in plan.env.items():
            env.add(_line(f"{key}={value}"))
        for name in sorted(secret_names):
            env.add(Text(f"{name}=******** (secret)"))
    return tree
