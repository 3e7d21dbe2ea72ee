"""Property tests: the parsers never crash, and the gate's invariants hold for any report."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from ap_build.scan.grype import parse_grype
from ap_build.scan.ignores import parse_trivyignore, parse_trivyignore_yaml
from ap_build.scan.policy import SEVERITY_ORDER, Policy, evaluate

from .reports import report, vuln

TODAY = dt.date(2026, 11, 24)
ids = st.sampled_from(["CVE-1", "CVE-2", "CVE-3", "GHSA-x"])
vulns = st.lists(
    st.builds(
        lambda i, p, s, f: vuln(i, p, s, fixed=f),
        ids,
        st.sampled_from(["zlib1g", "libc6"]),
        st.sampled_from(SEVERITY_ORDER),
        st.sampled_from([None, "2"]),
    ),
    max_size=8,
)


@given(st.text(max_size=300))
def test_ignore_parsers_never_raise_and_account_for_every_line(text):
    entries, problems = parse_trivyignore(text, "f")
    meaningful = [ln for ln in text.splitlines() if ln.split("#")[0].strip() and not ln.strip().startswith("#")]
    assert len({e.line for e in entries} | {p.line for p in problems}) <= len(text.splitlines())
    assert len(entries) <= len(meaningful)
    parse_trivyignore_yaml(text, "f.yaml")
    parse_grype(text, ".grype.yaml")


_rule_values = st.one_of(st.text(max_size=12), st.integers(), st.booleans(), st.none(),
                         st.lists(st.text(max_size=5), max_size=2), st.dictionaries(st.text(max_size=8),
                                                                                     st.text(max_size=8), max_size=2))
_rule_keys = st.sampled_from(["vulnerability", "reason", "fix-state", "package", "namespace", "expires-at",
                              "include-aliases", "vex-status", "match-type", "bogus"])


@settings(max_examples=150)
@given(st.lists(st.dictionaries(_rule_keys, _rule_values, max_size=4), max_size=4), vulns)
def test_grype_rules_never_raise_and_a_problem_never_ignores(rules, vs):
    import yaml

    text = yaml.safe_dump({"ignore": rules})
    entries, problems = parse_grype(text, ".grype.yaml")
    assert len(entries) + len({p.line for p in problems}) <= max(len(rules), 1)
    v = evaluate(report(vs), entries, Policy(today=TODAY))
    for f in v.findings:  # an ignored finding is ignored by a parsed rule whose every field matched it
        if f.verdict == "ignored":
            assert any(e.where == f.ignored_by and e.rule.matches(f) for e in entries)


@settings(max_examples=150)
@given(vulns, st.lists(ids, max_size=4), st.booleans())
def test_gate_invariants(vs, ignored_ids, include_unfixed):
    entries, _ = parse_trivyignore("\n".join(ignored_ids), ".trivyignore")
    v = evaluate(report(vs), entries, Policy(today=TODAY, include_unfixed=include_unfixed))
    assert len(v.findings) == len(vs)  # everything is reported
    assert v.passed == (v.count("blocking") == 0)
    for f in v.findings:
        if f.id in ignored_ids:
            assert f.verdict == "ignored"
        elif f.verdict == "blocking":
            assert f.severity in ("HIGH", "CRITICAL") and (f.fixable or include_unfixed)
        else:
            assert f.severity not in ("HIGH", "CRITICAL") or not (f.fixable or include_unfixed)
    # ignoring every ID passes the gate
    all_ignored, _ = parse_trivyignore("\n".join({f.id for f in v.findings}), ".trivyignore")
    assert evaluate(report(vs), all_ignored, Policy(today=TODAY, include_unfixed=include_unfixed)).passed
