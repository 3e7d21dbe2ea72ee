"""Benchmark: `ap-build image verify` (no --rebuild) against the loopback registry; target < 2 s.

Usage: python bench/verify_bench.py [--image REF --key PUB] [--runs N]

Without --image, the Python runtime base (built here if the engine lacks it, with its provenance) is pushed
to the loopback registry with a throw-away key and attested (`image push --sign-key`). Each run is the whole
CLI (interpreter start-up included), as a release workflow calls it; the baseline is the same documents
fetched with curl (the registry round trips and the ~4 MB of envelopes, no verification), and
`ap-build --version` is the start-up alone. Prints medians.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

AP_BUILD = str(Path(sys.executable).parent / "ap-build")


def timed(cmd: list[str], ok: tuple[int, ...] = (0,)) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode not in ok:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-1000:]}{proc.stderr[-2000:]}")
    return elapsed


def prepare(folder: Path) -> tuple[str, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from support.images import build_runtime

    from ap_build.engine import Engine
    from ap_build.images.base import bootstrap
    from ap_build.platform import LOCAL_REGISTRY

    engine = Engine.connect()
    report = build_runtime(engine, "python", bootstrap(engine))
    key = ec.generate_private_key(ec.SECP256R1())
    (folder / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (folder / "k.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                 serialization.PublicFormat.SubjectPublicKeyInfo))
    target = f"{LOCAL_REGISTRY}/ap-build-bench/python-base:verify"
    proc = subprocess.run([AP_BUILD, "image", "push", report.image_id, target, "--sign-key", str(folder / "k.pem")],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(proc.stderr)
    return target, folder / "k.pub"


def curl_fetch(image: str) -> list[str]:
    """The baseline: the same manifest and envelope blobs, fetched with curl in one process."""
    from ap_build.images.attest import att_tag
    from ap_build.images.registry import Reference, Registry

    ref = Reference.parse(image)
    reg = Registry(ref.host)
    digest = reg.resolve(ref)
    att = reg.manifest(ref.repo, att_tag(digest))
    assert att is not None
    base = f"http://{ref.host}/v2/{ref.repo}"
    accept = "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"
    urls = [f"{base}/manifests/{ref.tag}", f"{base}/manifests/{att_tag(digest)}"]
    urls += [f"{base}/blobs/{layer['digest']}" for layer in json.loads(att[0])["layers"]]
    cmd = ["curl", "-fsS", "-H", f"Accept: {accept}"]
    for url in urls:
        cmd += ["-o", "/dev/null", url]
    return cmd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image")
    ap.add_argument("--key")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ap-build-bench-") as tmp:
        image, key = (args.image, Path(args.key)) if args.image else prepare(Path(tmp))
        verify = [AP_BUILD, "image", "verify", image, "--key", str(key)]
        timed(verify)  # warm the page cache and the registry
        runs: dict[str, list[float]] = {"verify": [], "curl": [], "start-up": []}
        curl = curl_fetch(image) if shutil.which("curl") else None
        for _ in range(args.runs):
            runs["verify"].append(timed(verify))
            if curl:
                runs["curl"].append(timed(curl))
            runs["start-up"].append(timed([AP_BUILD, "--version"]))
    med = {k: statistics.median(v) for k, v in runs.items() if v}
    print(f"image verify {image}: median {med['verify']:.2f} s over {args.runs} runs "
          f"(min {min(runs['verify']):.2f}, max {max(runs['verify']):.2f}); target < 2 s: "
          f"{'met' if med['verify'] < 2 else 'NOT met'}")
    if "curl" in med:
        print(f"baseline: the same documents fetched by curl {med['curl']:.2f} s; ap-build start-up "
              f"{med['start-up']:.2f} s")


if __name__ == "__main__":
    main()
