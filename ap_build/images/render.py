"""ImageSpec -> build context (Dockerfile text and the few files it copies). Pure: no engine, no network."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from ap_build import __version__
from ap_build.errors import UsageError
from ap_build.images.arch import lock_lines
from ap_build.images.spec import ImageSpec
from ap_build.platform import (
    BASE_TRIVYIGNORE_LABEL,
    CONTAINER_GID,
    CONTAINER_UID,
    CONTAINER_USER,
    HOME,
    WORKDIR,
)
from ap_build.resources import data_dir


@dataclass(frozen=True)
class BuildContext:
    """Files of the build context, by name (`Dockerfile` is always present, with the OCI labels), plus the
    labels the engine applies at build time: the base image's ignore list, whose value spans lines (which
    a Dockerfile LABEL cannot hold)."""

    files: dict[str, bytes]
    labels: dict[str, str]

    @property
    def dockerfile(self) -> str:
        return self.files["Dockerfile"].decode()

    def write(self, directory: Path) -> Path:
        for name, data in self.files.items():
            (directory / name).write_bytes(data)
        return directory


def apt_packages(spec: ImageSpec) -> list[str]:
    """Every distribution package of the final image, pinned where the recipe pins it."""
    pkgs = list(spec.apt_packages)
    if spec.sources.aws_cli == "debian":
        pkgs.append(f"awscli={spec.pin('aws_cli_debian')}")
    if spec.cuda_version and spec.sources.cuda == "debian":
        pkgs.append(spec.cuda["debian"])
    if spec.cuda_version and spec.sources.cuda == "nvidia":
        pkgs.extend(spec.cuda["apt"])
    if spec.runtime == "r":
        pkgs.append(f"r-base-core={spec.pin('r_distro' if spec.sources.r == 'distro' else 'r_cran')}")
    return pkgs


def wheels(spec: ImageSpec) -> list[str]:
    """The wheels.lock lines (`name==version --hash=...`) of the wheels this image needs, for its platform."""
    lock = lock_lines(_lock_text(), spec.platform)
    wanted = [*spec.wheels, *(spec.venv_wheels if spec.venv else ())]
    if spec.cuda_version and spec.sources.cuda == "pypi":
        wanted.append(spec.cuda["wheel"].split("==")[0])
    out = []
    for name in wanted:
        line = next((ln for ln in lock if ln.split("==")[0] == name), None)
        if line is None:
            raise UsageError(f"{name} is not pinned in images/common/wheels.lock for {spec.platform.machine}",
                             hint="add its hash-pinned line (see the file's header)")
        if name == "uv" and not line.startswith(f"uv=={spec.pin('uv')} "):
            raise UsageError(f"uv {spec.pin('uv')} (images/{spec.runtime}/image.toml) is not the version pinned in "
                             "images/common/wheels.lock", hint="pin the same version in both files")
        out.append(line)
    return out


def labels(spec: ImageSpec) -> dict[str, str]:
    """OCI labels; version/revision/created/source are stamped for real."""
    out = {
        "org.opencontainers.image.vendor": spec.oci["vendor"],
        "org.opencontainers.image.authors": spec.oci["authors"],
        "org.opencontainers.image.title": spec.title,
        "org.opencontainers.image.description": spec.description,
        "org.opencontainers.image.url": spec.oci["url"],
        "org.opencontainers.image.version": spec.version,
        "org.opencontainers.image.source": spec.oci["source"],
    }
    if spec.revision:
        out["org.opencontainers.image.revision"] = spec.revision
    if spec.created:
        out["org.opencontainers.image.created"] = spec.created
    return out


def render_dockerfile(spec: ImageSpec, *, ca_bundle: bool = False, source_date_epoch: int | None = None) -> str:
    """The recipe's text; `source_date_epoch`: the image stage's RUNs see SOURCE_DATE_EPOCH (a reproducible build:
    `useradd` dates the password's last change by it, Python writes hash-based byte code)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("images"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["dq"] = lambda v: '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    wheel_lines = wheels(spec)
    try:
        return env.get_template(f"{spec.runtime}/Dockerfile.j2").render(
            spec=spec,
            tool_version=__version__,
            user=CONTAINER_USER, uid=CONTAINER_UID, gid=CONTAINER_GID, home=HOME, workdir=WORKDIR,
            apt_packages=apt_packages(spec),
            wheels=[ln.split("==")[0] for ln in wheel_lines],
            venv=spec.venv, venv_wheels=list(spec.venv_wheels) if spec.venv else [],
            fetch_out=bool(wheel_lines) or spec.sources.aws_cli == "zip",
            ca_bundle=ca_bundle,
            aws_cli_url=spec.sources.aws_cli_url.format(version=spec.pin("aws_cli")),
            nvidia_repo=spec.sources.nvidia_repo.format(distro="${ID}${VERSION_ID//./}"),
            cran_repo=spec.sources.cran_repo.format(distro_family="${ID}"),
            labels=labels(spec),
            cuda_targets=spec.cuda_targets,
            source_date_epoch=source_date_epoch,
        )
    except jinja2.TemplateError as exc:  # a recipe edited into something that does not render
        where = f"images/{spec.runtime}/Dockerfile.j2" + (f":{exc.lineno}" if getattr(exc, "lineno", None) else "")
        raise UsageError(f"{where}: {exc}", hint="fix the recipe template") from exc


def build_context(spec: ImageSpec, *, ca_bundle: bytes | None, trivyignore: str,
                  source_date_epoch: int | None = None) -> BuildContext:
    """Everything the engine needs to build `spec`; `trivyignore` is the base image's ignore list (its text)."""
    dockerfile = render_dockerfile(spec, ca_bundle=ca_bundle is not None, source_date_epoch=source_date_epoch)
    files: dict[str, bytes] = {"Dockerfile": dockerfile.encode()}
    wheel_lines = wheels(spec)
    if wheel_lines:
        files["wheels.lock"] = ("\n".join(wheel_lines) + "\n").encode()
    if ca_bundle is not None:
        files["ca.crt"] = ca_bundle
    if spec.sources.aws_cli == "zip":
        key = Path(spec.sources.aws_cli_key)
        key = key if key.is_absolute() else data_dir("images") / key
        files["aws-cli.asc"] = key.read_bytes()
    return BuildContext(files=files, labels={BASE_TRIVYIGNORE_LABEL: trivyignore})


def _lock_text() -> str:
    return (data_dir("images") / "common" / "wheels.lock").read_text()
