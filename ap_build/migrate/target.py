"""Learn the new base's Python or R version (side effects: the container engine).

The base image is asked itself when the engine has it (or can pull it from a loopback registry): `python3`
reports its version, glibc and machine; the R base's config carries `R_VERSION`. The platform's published
bases, which this machine cannot pull, are described by the platform's contract (Ubuntu 24.04 with Python
3.12, R 4.6: /work/shared/spec/runtime-images.md). Any other base that cannot be asked is "not known",
and the pins are then not checked.
"""

from __future__ import annotations

from ap_build.errors import ApBuildError
from ap_build.migrate.versions import Target, platform_tag

_PROBE = "import platform, sys; print('%d.%d' % sys.version_info[:2], platform.libc_ver()[1], platform.machine())"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
# The platform's published bases (Ubuntu 24.04: glibc 2.39), as the platform's contract describes them.
PUBLISHED = {"python": ("3.12", "x86_64-manylinux_2_39"), "r": ("4.6", "")}


def published_target(base_image: str, runtime: str, why: str) -> Target:
    from ap_build.scaffold.render import load_manifest

    if base_image == load_manifest()["defaults"]["base_image"][runtime]:
        version, platform = PUBLISHED[runtime]
        return Target(runtime, version, platform,
                      f"the platform's published {runtime} base (Ubuntu 24.04) as its contract describes it; "
                      f"not inspected: {why}")
    return Target(runtime, "", "", f"not known: {why} (pull it with `docker pull`, then re-run)")


def inspect_target(base_image: str, runtime: str, engine: object | None = None) -> Target:
    """The base's language version (and Python platform), asked of the image itself when possible."""
    from ap_build.engine import Engine

    try:
        eng = engine if isinstance(engine, Engine) else Engine.connect(timeout=120)
        if not eng.image_exists(base_image):
            host = base_image.split("/", 1)[0].rsplit(":", 1)[0]
            if host not in LOOPBACK:
                return published_target(base_image, runtime, "the image is not in the container engine")
            eng.pull(base_image)
        if runtime == "r":
            env = dict(e.split("=", 1) for e in eng.inspect(base_image)["Config"].get("Env") or [] if "=" in e)
            if env.get("R_VERSION"):
                return Target("r", env["R_VERSION"], "", "inspected (its R_VERSION)")
            rc, out = eng.run(base_image, ["Rscript", "-e", "cat(R.version$major, R.version$minor, sep='.')"])
            version = out.strip().splitlines()[-1] if rc == 0 and out.strip() else ""
            return Target("r", version, "", "inspected (Rscript)") if version else \
                published_target(base_image, runtime, f"Rscript failed in it (exit {rc})")
        rc, out = eng.run(base_image, ["python3", "-c", _PROBE])
        words = out.split()
        if rc != 0 or len(words) < 3:
            return published_target(base_image, runtime, f"python3 failed in it (exit {rc})")
        version, glibc, machine = words[-3:]
        return Target("python", version, platform_tag(machine, glibc),
                      f"inspected: python3 {version}, glibc {glibc}, {machine}")
    except ApBuildError as exc:
        return published_target(base_image, runtime, exc.message)
