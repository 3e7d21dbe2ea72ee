"""What Trivy reports about an image is data: control and bidi characters in it are shown escaped."""

from __future__ import annotations

import datetime as dt
from io import StringIO

from rich.console import Console
from scan.reports import report, vuln

from ap_build.scan.policy import Policy, evaluate
from ap_build.scan.report import render_table
from ap_build.ui import printable


def test_printable_escapes_controls_and_bidi_but_keeps_text() -> None:
    assert printable("a\nb\x1b[31m\x00\u202e[/]\té") == "a\\nb\\x1b[31m\\x00\\u202e[/]\té"


def test_table_cells_from_a_hostile_image_are_escaped() -> None:
    r = report([vuln("CVE-1\x1b]8;;http://evil\x07", "zlib\u202e1g[/]", "HIGH", fixed="2\n3")], [], [])
    buf = StringIO()
    render_table(evaluate(r, [], Policy(today=dt.date(2026, 11, 24))), {"name": "x\x1b[2J"},
                 Console(file=buf, width=200, color_system=None))
    text = buf.getvalue()
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "zlib\\u202e1g[/]" in text and "CVE-1\\x1b]8;;http://evil\\x07" in text
