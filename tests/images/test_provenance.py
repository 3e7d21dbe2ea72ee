"""The SLSA v1 provenance statement (pure): what `image build` records about its inputs and results."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from ap_build.images import provenance
from ap_build.images.pipeline import BuildRequest, external_parameters
from ap_build.images.render import build_context
from ap_build.images.spec import load_sources, load_spec

BASE = "localhost/ap-build/debian:trixie-abc"
IMAGE = "sha256:" + "1" * 64


def spec(profile: str = "upstream", runtime: str = "python"):
    return load_spec(runtime, version="1.2.3", base=BASE, sources=load_sources(profile, environ={}),
                     revision="abc123", created="2025-01-01T00:00:00Z", suite="trixie")


def inputs(profile: str = "upstream", **over: object) -> provenance.ProvenanceInputs:
    s = spec(profile)
    context = build_context(s, ca_bundle=None, trivyignore="CVE-1\n").files
    wheels = tuple(context.get("wheels.lock", b"").decode().splitlines())
    base = dict(
        external=external_parameters(BuildRequest(runtime="python", version="1.2.3", snapshot="20250101T000000Z")),
        spec=s, context=context, image_id=IMAGE, tag="localhost/ap-build/python-base:1.2.3", base_ref=BASE,
        base_id="sha256:" + "2" * 64, base_layers=("sha256:" + "3" * 64,),
        apt_sources=("deb http://snapshot.debian.org/archive/debian/20250101T000000Z trixie main",),
        packages=(("python3", "3.13.5-1", "amd64"), ("curl", "8.14.1-2", "amd64")), wheels=wheels,
        aws_cli_zip_sha256="4" * 64, builder_id="https://ci.example/run/1", engine_version="Podman 4.3.1",
        started="2026-12-07T02:00:00Z", finished="2026-12-07T02:01:00Z", components={"python": "3.13.5"},
    )
    base.update(over)
    return provenance.ProvenanceInputs(**base)  # type: ignore[arg-type]


def deps(stmt: dict) -> dict[str, dict]:
    return {d["name"]: d for d in stmt["predicate"]["buildDefinition"]["resolvedDependencies"]}


def test_statement_is_in_toto_v1_with_slsa_v1_predicate_about_the_image() -> None:
    stmt = provenance.statement(inputs())
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["predicateType"] == "https://slsa.dev/provenance/v1"
    assert stmt["subject"] == [{"name": "localhost/ap-build/python-base:1.2.3", "digest": {"sha256": "1" * 64}}]
    run = stmt["predicate"]["runDetails"]
    assert run["builder"]["id"] == "https://ci.example/run/1"
    assert run["metadata"]["startedOn"] == "2026-12-07T02:00:00Z"
    assert run["metadata"]["finishedOn"] == "2026-12-07T02:01:00Z"


def test_every_option_is_an_external_parameter() -> None:
    ext = provenance.statement(inputs())["predicate"]["buildDefinition"]["externalParameters"]
    fields = set(BuildRequest.__dataclass_fields__)
    assert fields <= set(ext) and "source_date_epoch" in ext
    assert ext["snapshot"] == "20250101T000000Z" and ext["runtime"] == "python"


def test_recipe_base_wheels_and_packages_carry_their_digests() -> None:
    inp = inputs()
    stmt = provenance.statement(inp)
    d = deps(stmt)
    dockerfile = hashlib.sha256(inp.context["Dockerfile"]).hexdigest()
    assert d["recipe/Dockerfile"]["digest"]["sha256"] == dockerfile
    assert stmt["predicate"]["buildDefinition"]["internalParameters"]["recipe"]["Dockerfile"]["sha256"] == dockerfile
    assert d["base"]["digest"] == {"sha256": "2" * 64} and d["base"]["annotations"]["diffIds"] == ["sha256:" + "3" * 64]
    uv = d["wheel/uv"]
    lock = next(ln for ln in inp.wheels if ln.startswith("uv=="))
    assert uv["digest"]["sha256"] == lock.split("sha256:")[1] and uv["uri"].startswith("pkg:pypi/uv@")
    assert d["deb/python3"]["uri"] == "pkg:deb/debian/python3@3.13.5-1?arch=amd64"
    assert d["dpkg-installed"]["annotations"]["count"] == 2
    assert d["apt-source"]["annotations"]["snapshot"] == "20250101T000000Z"


def test_aws_cli_zip_digest_and_key_fingerprint_and_cuda() -> None:
    d = deps(provenance.statement(inputs()))
    aws = d["aws-cli"]
    assert aws["digest"] == {"sha256": "4" * 64}
    assert aws["annotations"]["signingKeyFingerprint"] == "FB5DB77FD5C118B80511ADA8A6310ACC4672475C"
    assert aws["uri"].startswith("https://awscli.amazonaws.com/awscli-exe-linux-x86_64-2.")
    assert d["recipe/aws-cli.asc"]["digest"]["sha256"]
    cuda = d["cuda"]
    assert cuda["annotations"]["source"] == "nvidia" and cuda["annotations"]["repositoryKeyFingerprint"]
    assert cuda["annotations"]["packages"] == ["cuda-cudart-13-0", "cuda-compat-13-0"]
    # the distribution's AWS CLI: no zip, the package is in the package list instead
    assert "aws-cli" not in deps(provenance.statement(inputs("debian", spec=spec("debian"))))


def test_statement_is_a_pure_function_of_its_inputs() -> None:
    a, b = provenance.statement(inputs()), provenance.statement(inputs())
    assert provenance.dumps(a) == provenance.dumps(b)
    changed = provenance.statement(inputs(packages=(("python3", "3.13.6-1", "amd64"),)))
    assert deps(changed)["dpkg-installed"]["digest"] != deps(a)["dpkg-installed"]["digest"]
    other_recipe = inputs()
    other_recipe = replace(other_recipe, context={**other_recipe.context, "Dockerfile": b"FROM x\n"})
    assert deps(provenance.statement(other_recipe))["recipe/Dockerfile"] != deps(a)["recipe/Dockerfile"]


def test_resubject_names_the_pushed_digest_and_keeps_the_predicate() -> None:
    stmt = provenance.statement(inputs())
    pushed = provenance.resubject(stmt, "127.0.0.1:5000/x", "sha256:" + "9" * 64)
    assert pushed["subject"] == [{"name": "127.0.0.1:5000/x", "digest": {"sha256": "9" * 64}}]
    assert pushed["predicate"] == stmt["predicate"]


def test_zip_digest_watcher_reads_the_recipe_line_and_passes_every_line_on(tmp_path) -> None:
    seen: list[str] = []
    watch = provenance.ZipDigestWatcher(seen.append)
    watch("STEP 5/12: RUN ...")
    watch(f"{'a' * 64}  /tmp/awscliv2.zip\n")
    assert watch.digest == "a" * 64 and len(seen) == 2
    url = "https://example/aws.zip"
    assert provenance.zip_digest(tmp_path, url, watch.digest) == "a" * 64
    assert provenance.zip_digest(tmp_path, url, "") == "a" * 64  # a cached step prints nothing
    assert provenance.zip_digest(tmp_path, "https://other/aws.zip", "") == ""


def test_written_beside_the_report_and_in_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    stmt = provenance.statement(inputs())
    where = provenance.write(stmt, IMAGE, tmp_path / "cache", tmp_path / "out" / "build-report.json")
    assert where == tmp_path / "out" / "build-report.intoto.json"
    assert json.loads(where.read_text()) == stmt
    assert provenance.load(provenance.cache_path(tmp_path / "cache", IMAGE)) == stmt


def test_rebuild_request_is_the_recorded_options_as_a_no_cache_reproducible_build() -> None:
    from ap_build.images.rebuild import request_from

    request = BuildRequest(runtime="r", version="2.0.0", base="bootstrap", sources="debian", suite="bookworm",
                           overrides={"pypi_index": "https://pypi.example/simple"}, cuda_version="none",
                           snapshot="20250101T000000Z", tag="reg/r-base:2.0.0", reproducible=True)
    stmt = provenance.statement(inputs(external=external_parameters(request)))
    again = request_from(stmt, "localhost/ap-build/rebuild:x")
    assert again == BuildRequest(runtime="r", version="2.0.0", base="bootstrap", sources="debian", suite="bookworm",
                                 overrides={"pypi_index": "https://pypi.example/simple"}, cuda_version="none",
                                 snapshot="20250101T000000Z", tag="localhost/ap-build/rebuild:x", nocache=True,
                                 reproducible=True)
