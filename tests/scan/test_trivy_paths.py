"""Trivy's `.trivyignore.yaml` `paths`: bmatcuk/doublestar v4's own match tests, ported.

Trivy matches an entry's `paths` with doublestar v4 `Match` after `ValidatePattern` (aquasecurity/trivy
`pkg/result/ignore.go`). The table is `matchTests` of bmatcuk/doublestar `doublestar_test.go` at tag v4.9.1
(commit 8b690afa33319b0a1869367f594e53977e38bc99): (pattern, path, should match, ErrBadPattern expected).
Rows for files on disk are kept: Match itself never reads the disk.
"""

from __future__ import annotations

import pytest

from ap_build.scan.doublestar import GlobError, check_v4, match_v4
from ap_build.scan.ignores import parse_trivyignore_yaml

DOUBLESTAR_V4 = [
    ('', '', True, False), ('*', '', True, False), ('*', '/', False, False), ('/*', '/', True, False),
    ('/*', '/debug/', False, False), ('/*', '//', False, False), ('abc', 'abc', True, False),
    ('*', 'abc', True, False), ('*c', 'abc', True, False), ('*/', 'a/', True, False), ('a*', 'a', True, False),
    ('a*', 'abc', True, False), ('a*', 'ab/c', False, False), ('a*/b', 'abc/b', True, False),
    ('a*/b', 'a/c/b', False, False), ('a*/c/', 'a/b', False, False), ('a*b*c*d*e*', 'axbxcxdxe', True, False),
    ('a*b*c*d*e*/f', 'axbxcxdxe/f', True, False), ('a*b*c*d*e*/f', 'axbxcxdxexxx/f', True, False),
    ('a*b*c*d*e*/f', 'axbxcxdxe/xxx/f', False, False), ('a*b*c*d*e*/f', 'axbxcxdxexxx/fff', False, False),
    ('a*b?c*x', 'abxbbxdbxebxczzx', True, False), ('a*b?c*x', 'abxbbxdbxebxczzy', False, False),
    ('ab[c]', 'abc', True, False), ('ab[b-d]', 'abc', True, False), ('ab[e-g]', 'abc', False, False),
    ('ab[^c]', 'abc', False, False), ('ab[^b-d]', 'abc', False, False), ('ab[^e-g]', 'abc', True, False),
    ('a\\*b', 'ab', False, False), ('a?b', 'a☺b', True, False), ('a[^a]b', 'a☺b', True, False),
    ('a[!a]b', 'a☺b', True, False), ('a???b', 'a☺b', False, False), ('a[^a][^a][^a]b', 'a☺b', False, False),
    ('[a-ζ]*', 'α', True, False), ('*[a-ζ]', 'A', False, False), ('a?b', 'a/b', False, False),
    ('a*b', 'a/b', False, False), ('[\\]a]', ']', True, False), ('[\\-]', '-', True, False),
    ('[x\\-]', 'x', True, False), ('[x\\-]', '-', True, False), ('[x\\-]', 'z', False, False),
    ('[\\-x]', 'x', True, False), ('[\\-x]', '-', True, False), ('[\\-x]', 'a', False, False),
    ('[]a]', ']', False, True), ('[-]', '-', True, False), ('[x-]', 'x', True, False), ('[x-]', '-', True, False),
    ('[x-]', 'z', False, False), ('[-x]', 'x', True, False), ('[-x]', '-', True, False), ('[-x]', 'a', False, False),
    ('[a-b-d]', 'a', True, False), ('[a-b-d]', 'b', True, False), ('[a-b-d]', '-', True, False),
    ('[a-b-d]', 'c', False, False), ('[a-b-x]', 'x', True, False), ('\\', 'a', False, True), ('[', 'a', False, True),
    ('[^', 'a', False, True), ('[^bc', 'a', False, True), ('a[', 'a', False, True), ('a[', 'ab', False, True),
    ('ad[', 'ab', False, True), ('*x', 'xxx', True, False), ('[abc]', 'b', True, False),
    ('[abc123]', '1', True, False), ('[a-z0-9]', '1', True, False), ('**', '', True, False),
    ('a/**', 'a', True, False), ('a/**/', 'a', True, False), ('a/**', 'a/', True, False),
    ('a/**/', 'a/', True, False), ('a/**', 'a/b', True, False), ('a/**', 'a/b/c', True, False),
    ('**/c', 'c', True, False), ('**/c', 'b/c', True, False), ('**/c', 'a/b/c', True, False),
    ('**/c', 'a/b', False, False), ('**/c', 'abcd', False, False), ('**/c', 'a/abc', False, False),
    ('a/**/b', 'a/b', True, False), ('a/**/c', 'a/b/c', True, False), ('a/**/d', 'a/b/c/d', True, False),
    ('a/\\**', 'a/b/c', False, False), ('a/\\[*\\]', 'a/bc', False, False), ('a/b/c', 'a/b//c', False, False),
    ('a/', 'a', False, False), ('ab{c,d}', 'abc', True, False), ('ab{c,d,*}', 'abcde', True, False),
    ('ab{c,d}[', 'abcd', False, True), ('a{,bc}', 'a', True, False), ('a{,bc}', 'abc', True, False),
    ('a/{b/c,c/b}', 'a/b/c', True, False), ('a/{b/c,c/b}', 'a/c/b', True, False), ('a/a*{b,c}', 'a/abc', True, False),
    ('{a/{b,c},abc}', 'a/b', True, False), ('{a/{b,c},abc}', 'a/c', True, False),
    ('{a/{b,c},abc}', 'abc', True, False), ('{a/{b,c},abc}', 'a/b/c', False, False),
    ('{a/ab*}', 'a/abc', True, False), ('{a/*}', 'a/b', True, False), ('{a/abc}', 'a/abc', True, False),
    ('{a/b,a/c}', 'a/c', True, False), ('abc/**', 'abc/b', True, False), ('**/abc', 'abc', True, False),
    ('abc**', 'abc/b', False, False), ('**/*.txt', 'abc/【test】.txt', True, False),
    ('**/【*', 'abc/【test】.txt', True, False), ('**/{a,b}', 'a/b', True, False), ('a/*/*/d', 'a/b/c/d', True, False),
    ('broken-symlink', 'broken-symlink', True, False), ('broken-symlink/*', 'a', False, False),
    ('broken*/*', 'a', False, False), ('working-symlink/c/*', 'working-symlink/c/d', True, False),
    ('working-sym*/*', 'working-symlink/c', True, False), ('b/**/f', 'b/symlink-dir/f', True, False),
    ('*/symlink-dir/*', 'b/symlink-dir/f', True, False), ('e/\\[x\\]/*', 'e/[x]/[y]', True, False),
    ('e/\\[x\\]/*/z', 'e/[x]/[y]/z', True, False), ('e/**', 'e/**', True, False), ('e/**', 'e/*', True, False),
    ('e/**', 'e/?', True, False), ('e/**', 'e/[', True, False), ('e/**', 'e/]', True, False),
    ('e/**', 'e/[]', True, False), ('e/**', 'e/{', True, False), ('e/**', 'e/}', True, False),
    ('e/**', 'e/\\', True, False), ('e/*', 'e/*', True, False), ('e/?', 'e/?', True, False),
    ('e/?', 'e/*', True, False), ('e/?', 'e/[', True, False), ('e/?', 'e/]', True, False),
    ('e/?', 'e/{', True, False), ('e/?', 'e/}', True, False), ('e/\\[', 'e/[', True, False),
    ('e/[', 'e/[', False, True), ('e/]', 'e/]', True, False), ('e/\\]', 'e/]', True, False),
    ('e/\\{', 'e/{', True, False), ('e/\\}', 'e/}', True, False), ('e/[\\*\\?]', 'e/*', True, False),
    ('e/[\\*\\?]', 'e/?', True, False), ('e/[\\*\\?]', 'e/**', False, False), ('e/[\\*\\?]?', 'e/**', True, False),
    ('e/{\\*,\\?}', 'e/*', True, False), ('e/{\\*,\\?}', 'e/?', True, False), ('e/\\*', 'e/*', True, False),
    ('e/\\?', 'e/?', True, False), ('e/\\?', 'e/**', False, False), ('*\\}', '}', True, False),
    ('case-sensitive/fi*', 'case-sensitive/file', True, False),
    ('case-sensitive/FI*', 'case-sensitive/FILE', True, False),
    ('case-sensitive/Fi*', 'case-sensitive/File', True, False), ('nonexistent-path', 'a', False, False),
    ('nonexistent-path/', 'a', False, False), ('nonexistent-path/file', 'a', False, False),
    ('nonexistent-path/*', 'a', False, False), ('nonexistent-path/**', 'a', False, False),
    ('nopermission/*', 'nopermission/file', True, False), ('nopermission/dir/', 'nopermission/dir', False, False),
    ('nopermission/file', 'nopermission/file', True, False),
]


@pytest.mark.parametrize(("pattern", "path", "expected", "bad"), DOUBLESTAR_V4)
def test_doublestar_v4_match(pattern, path, expected, bad):
    try:
        check_v4(pattern)
    except GlobError:
        refused = True
    else:
        refused = False
    assert refused or not bad  # every pattern v4 rejects is refused when the file is read
    assert (not refused and match_v4(pattern, path)) is expected


def test_a_path_trivy_refuses_is_a_problem_and_the_entry_ignores_nothing():
    text = "vulnerabilities:\n  - id: CVE-1\n    paths: ['usr/lib/[', 'ok/**']\n"
    entries, problems = parse_trivyignore_yaml(text, ".trivyignore.yaml")
    assert not entries and len(problems) == 1 and problems[0].line == 3
    assert "not a glob Trivy accepts" in problems[0].message
