"""The pure renderer: every template file, answers applied, pins and defaults, bad answers refused."""

from __future__ import annotations

import re

import pytest
import yaml

from ap_build.errors import UsageError
from ap_build.scaffold.render import (
    TEMPLATE_FILES,
    Answers,
    check_pinned,
    ecr_repository_name,
    example_files,
    load_manifest,
    render_files,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("runtime", ["python", "r"])
def test_every_template_file_is_rendered(runtime: str) -> None:
    files = render_files(runtime, Answers(name="my_Repo", org="my-org"))
    assert set(files) == set(TEMPLATE_FILES) | set(example_files(runtime))
    assert not set(TEMPLATE_FILES) & set(example_files(runtime))
    for path, text in files.items():
        assert "[=" not in text and "[%" not in text, path  # no unrendered template syntax
        assert text.endswith("\n"), path


def test_examples_differ_per_runtime() -> None:
    assert set(example_files("python")) == {"requirements.txt", "src/main.py"}
    assert set(example_files("r")) == {"install.R", "src/main.R"}
    assert set(render_files("r", include_examples=False)) == set(TEMPLATE_FILES)


def test_answers_reach_the_files() -> None:
    ref = f"registry.example/ap/python:2.0.1@{DIGEST}"
    files = render_files(
        "python",
        Answers(name="Data_Pipeline", org="moj-analytical-services", base_image=ref, owner_team="data-eng",
                description="Nightly loads", year=2031),
    )
    assert files["Dockerfile"].splitlines()[0] == f"FROM {ref}"
    assert "* @moj-analytical-services/data-eng" in files[".github/CODEOWNERS"]
    assert "Copyright (c) 2031 moj-analytical-services" in files["LICENSE"]
    assert "Nightly loads" in files["README.md"]
    release = yaml.safe_load(files[".github/workflows/release-container.yml"])
    (job,) = release["jobs"].values()
    assert job["with"]["ecr-repository"] == "moj-analytical-services/data-pipeline"
    assert job["with"]["aws-region"] == "eu-west-2" and "registry" not in job["with"]
    files = render_files("python", Answers(name="x", registry="123456789012.dkr.ecr.eu-west-2.amazonaws.com"))
    (job,) = yaml.safe_load(files[".github/workflows/release-container.yml"])["jobs"].values()
    assert job["with"]["registry"] == "123456789012.dkr.ecr.eu-west-2.amazonaws.com"


def test_default_base_is_pinned_by_tag_and_digest() -> None:
    for runtime in ("python", "r"):
        ref = load_manifest()["defaults"]["base_image"][runtime]
        check_pinned(ref)
        assert render_files(runtime)["Dockerfile"].startswith(f"FROM {ref}\n")


def test_actions_are_pinned_by_full_sha_with_a_version_comment() -> None:
    files = render_files("python")
    uses = [
        line.strip()
        for path in TEMPLATE_FILES
        if path.startswith(".github/workflows/")
        for line in files[path].splitlines()
        if line.strip().startswith("uses:")
    ]
    assert len(uses) == 5
    for line in uses:
        assert re.fullmatch(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*", line), line


def test_generated_ci_reaches_ap_build_only_through_its_pinned_reusable_workflows() -> None:
    pin = load_manifest()["ap_build"]
    for runtime in ("python", "r"):
        files = render_files(runtime)
        workflows = {p: t for p, t in files.items() if p.startswith(".github/workflows/")}
        assert not any("pip install" in t or "run:" in t for p, t in workflows.items() if "container" in p)
        for name, kind in (("test", "container-test"), ("scan", "container-scan"), ("release", "container-release")):
            (job,) = yaml.safe_load(workflows[f".github/workflows/{name}-container.yml"])["jobs"].values()
            assert job["uses"] == f"{pin['repository']}/.github/workflows/reusable-{kind}.yml@{pin['sha']}"
            assert "steps" not in job  # a thin caller: the logic lives in ap-build, in one place
            assert job["with"]["ap-build-ref"] == pin["sha"]  # release: to verify the base with ap-build's action
            assert job["with"]["ap-build-repository"] == pin["repository"]


def test_a_malformed_ap_build_pin_is_refused(tmp_path) -> None:
    import shutil

    from ap_build.resources import data_dir

    shutil.copytree(data_dir("templates"), tmp_path / "t")
    toml = tmp_path / "t/template.toml"
    toml.write_text(re.sub(r'(?m)^sha = "[0-9a-f]{40}"$', 'sha = "main"', toml.read_text(), count=1))
    with pytest.raises(UsageError, match=r"\[ap_build\] needs"):
        render_files("python", template_dir=tmp_path / "t")


def test_r_has_no_pip_ecosystem_python_does() -> None:
    def ecosystems(runtime: str) -> set[str]:
        doc = yaml.safe_load(render_files(runtime)[".github/dependabot.yml"])
        return {u["package-ecosystem"] for u in doc["updates"]}

    assert ecosystems("python") == {"github-actions", "docker", "pip"}
    assert ecosystems("r") == {"github-actions", "docker"}


def test_ecr_repository_name() -> None:
    assert ecr_repository_name("MinistryOfJustice", "My_Repo") == "ministryofjustice/my-repo"


@pytest.mark.parametrize(
    "ref,fragment",
    [
        ("python:3.12", "no digest"),
        (f"python@{DIGEST}", "no tag"),
        ("python:3.12@sha256:abc", "64"),
        (f"localhost:5000/python@{DIGEST}", "no tag"),
    ],
)
def test_unpinned_base_image_refused(ref: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        render_files("python", Answers(base_image=ref))


def test_registry_port_is_not_a_tag() -> None:
    check_pinned(f"localhost:5000/ap/python:1.0.0@{DIGEST}")


@pytest.mark.parametrize("field,value", [("name", "bad name"), ("org", "a/b"), ("description", 'say "hi"')])
def test_bad_answers_refused(field: str, value: str) -> None:
    with pytest.raises(UsageError):
        render_files("python", Answers(**{field: value}))


def test_unknown_runtime_refused() -> None:
    with pytest.raises(UsageError, match="unknown runtime"):
        render_files("julia")
