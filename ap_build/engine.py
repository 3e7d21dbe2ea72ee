"""The Docker Engine API client: discovery, build with streamed progress, run, save, push, pull.

Talks to any Docker-API engine (Docker, rootful or rootless Podman) through the `docker` SDK.
Discovery order: `DOCKER_HOST`, then Docker's socket, rootful Podman's, rootless Podman's.
Nothing else lives here: recipes, tests and scans call this module for every engine side effect.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from ap_build.errors import EngineError, SourceError
from ap_build.reference import parse_ref

ENGINE_HINT = (
    "start an engine (Docker, or `scripts/setup.sh` for Podman serving the Docker API) "
    "or point DOCKER_HOST at one, e.g. DOCKER_HOST=unix:///run/podman/podman.sock"
)


HOST_HINT = ("set DOCKER_HOST to an engine address, e.g. unix:///run/podman/podman.sock or tcp://127.0.0.1:2375, "
             "or unset it to use the local engine's socket")
SCHEMES = ("unix", "tcp", "http", "https", "ssh", "npipe")


def host_problem(url: str) -> str | None:
    """Why `url` (DOCKER_HOST) is not an engine address the Docker SDK can use, or None (pure)."""
    if len(url) > 1024 or any(c.isspace() or not c.isprintable() for c in url):
        return "it contains spaces or control characters" if len(url) <= 1024 else "it is over 1,024 characters"
    scheme, sep, rest = url.partition("://")
    if not sep:  # the SDK reads a bare HOST:PORT as tcp://HOST:PORT
        scheme, rest = "tcp", url
    if scheme not in SCHEMES:
        return f"unknown scheme {scheme!r} (use {', '.join(s + '://' for s in SCHEMES)})"
    if scheme in ("unix", "npipe"):
        return None if rest.strip("/") else "no socket path after the scheme"
    try:
        parts = urllib.parse.urlsplit(f"{scheme}://{rest}")
        port = parts.port  # raises on a port that is not a number from 0 to 65535
    except ValueError as exc:
        return "out-of-range port (1-65535)" if "out of range" in str(exc) else f"unreadable address ({exc})"
    if not parts.hostname:
        return "no host name"
    if port == 0:
        return "port 0 is not a port an engine listens on (1-65535)"
    return None


def check_host(url: str, origin: str = "DOCKER_HOST") -> str:
    """`url` if it is a usable engine address, else EngineError naming `origin` and why (exit 2)."""
    why = host_problem(url)
    if why:
        shown = url if len(url) <= 200 else url[:200] + "..."
        raise EngineError(f"{origin}={shown!r} is not an engine address: {why}", hint=HOST_HINT)
    return url


def candidate_hosts(environ: dict[str, str] | None = None) -> list[str]:
    """Engine addresses to try, best first (pure)."""
    env = os.environ if environ is None else environ
    hosts: list[str] = []
    if env.get("DOCKER_HOST"):
        return [env["DOCKER_HOST"]]
    hosts.append("unix:///var/run/docker.sock")
    hosts.append("unix:///run/podman/podman.sock")
    runtime_dir = env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    hosts.append(f"unix://{runtime_dir}/podman/podman.sock")
    return hosts


@dataclass(frozen=True)
class EngineInfo:
    host: str
    name: str
    version: str
    api_version: str
    os: str
    arch: str


@contextlib.contextmanager
def _query(api: Any, extra: dict[str, str]) -> Iterator[None]:
    """Add `extra` to the query of the API client's requests meanwhile: the SDK's `build()` passes only the
    parameters Docker documents, and the engine's own (Podman's `timestamp`) ride along this way. Builds on one
    client are sequential; a Docker engine ignores a parameter it does not know."""
    if not extra:
        yield
        return
    post = api._post

    def with_extra(url: str, **kwargs: Any) -> Any:
        kwargs["params"] = {**(kwargs.get("params") or {}), **extra}
        return post(url, **kwargs)

    api._post = with_extra
    try:
        yield
    finally:
        del api._post  # the class's own method again


class Engine:
    """A connected Docker-API engine."""

    def __init__(self, client: docker.DockerClient, host: str) -> None:
        self.client = client
        self.api = client.api
        self.host = host

    # --- discovery ------------------------------------------------------------------------------
    @classmethod
    def connect(cls, host: str | None = None, *, timeout: int = 600) -> Engine:
        """Connect to `host` or the first engine that answers a ping; EngineError if none does."""
        hosts = [check_host(host, "engine host")] if host else [check_host(h) for h in candidate_hosts()]
        tried: list[str] = []
        for url in hosts:
            if url.startswith("unix://") and not Path(url[len("unix://") :]).exists():
                tried.append(f"{url} (no socket)")
                continue
            try:
                client = docker.DockerClient(base_url=url, timeout=timeout)
                client.ping()
            except (docker.errors.DockerException, requests.exceptions.RequestException, ValueError) as exc:
                tried.append(f"{url} ({type(exc).__name__})")
                continue
            return cls(client, url)
        raise EngineError(f"no container engine answered: tried {', '.join(tried)}", hint=ENGINE_HINT)

    def info(self) -> EngineInfo:
        v = self.api.version()
        comps = {c.get("Name"): c for c in v.get("Components", [])}
        name = "Podman" if any("Podman" in (n or "") for n in comps) else "Docker"
        return EngineInfo(
            host=self.host,
            name=name,
            version=v.get("Version", "?"),
            api_version=v.get("ApiVersion", "?"),
            os=v.get("Os", "?"),
            arch=v.get("Arch", "?"),
        )

    # --- images -------------------------------------------------------------------------------
    def _lookup(self, ref: str) -> dict[str, Any] | None:
        """Inspect `ref`; `name:tag@digest` falls back to `name@digest` (Podman does not resolve the pair)."""
        name, tag, digest = parse_ref(ref)
        candidates = [ref] + ([f"{name}@{digest}"] if tag and digest else [])
        for candidate in candidates:
            try:
                return self.api.inspect_image(candidate)
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as exc:
                if exc.status_code == 404:
                    continue
                raise EngineError(f"cannot inspect {ref}: {exc.explanation or exc}") from exc
        return None

    def image_exists(self, ref: str) -> bool:
        return self._lookup(ref) is not None

    def inspect(self, ref: str) -> dict[str, Any]:
        found = self._lookup(ref)
        if found is None:
            raise EngineError(f"image {ref} not found in the engine", hint="build or pull it first")
        return found

    def build(
        self,
        context: Path,
        *,
        dockerfile: str = "Dockerfile",
        buildargs: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        nocache: bool = False,
        on_line: Callable[[str], None] | None = None,
        network_mode: str | None = None,
        platform: str | None = None,
        timestamp: int | None = None,
    ) -> str:
        """Build `context` and return the image ID. The image is left untagged: tag on success only.
        `platform` (`linux/arm64`): the target platform (None: the engine's own). `timestamp` (seconds since the
        epoch): asks the engine to stamp the image and every file of the layers it writes with it (Podman's
        `--timestamp`, which makes the layers a function of their content; an engine without it ignores it: see
        `stamped`).

        Podman's build cache lookup walks every image in the store and fails (`layer not known`) when
        another client removes an image meanwhile; that build is started again (twice at most), from
        the cache it has so far."""
        for attempt in range(3):
            try:
                with _query(self.api, {"timestamp": str(timestamp)} if timestamp is not None else {}):
                    return self._build(context, dockerfile=dockerfile, buildargs=buildargs, labels=labels,
                                       nocache=nocache, on_line=on_line, network_mode=network_mode,
                                       platform=platform)
            except BuildFailed as exc:
                if attempt == 2 or not _RACED.search(exc.message):
                    raise
                time.sleep(1 + attempt)
        raise AssertionError("unreachable")

    def _build(self, context: Path, *, dockerfile: str, buildargs: dict[str, str] | None,
               labels: dict[str, str] | None, nocache: bool, on_line: Callable[[str], None] | None,
               network_mode: str | None, platform: str | None) -> str:
        try:
            stream = self.api.build(
                path=str(context),
                dockerfile=dockerfile,
                buildargs=buildargs or {},
                labels=labels or {},
                rm=True,
                forcerm=True,
                nocache=nocache,
                decode=True,
                pull=False,
                network_mode=network_mode,
                **({"platform": platform} if platform else {}),
            )
            image_id, last = _follow_build(stream, on_line)
        except docker.errors.APIError as exc:
            raise BuildFailed(str(exc.explanation or exc)) from exc
        except requests.exceptions.RequestException as exc:
            raise EngineError(f"lost the engine during the build: {exc}", hint=ENGINE_HINT) from exc
        if not image_id:
            raise BuildFailed("the engine finished the build without reporting an image ID", last_lines=last)
        return self.inspect(image_id)["Id"]

    def tag(self, image_id: str, ref: str) -> None:
        repo, tag, _ = parse_ref(ref)
        if not self.api.tag(image_id, repo, tag or "latest"):
            raise EngineError(f"could not tag {image_id[:19]} as {ref}")

    def remove_containers(self, label: str) -> None:
        """Stop and remove every container carrying `label` (`key=value`), all at once; best effort."""
        from concurrent.futures import ThreadPoolExecutor

        def remove(container: Any) -> None:
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)

        with contextlib.suppress(docker.errors.DockerException):
            found = self.client.containers.list(all=True, sparse=True, filters={"label": label})
            with ThreadPoolExecutor(max_workers=8) as pool:  # each removal waits on the engine
                list(pool.map(remove, found))

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        """Remove `ref` and its untagged parents. `force`: remove the containers made from it first, and leave
        the image where it is still in use: Podman's own forced removal also deletes the containers on its
        untagged parents, and those parents may be another build's layer cache, so a concurrent build's RUN died
        with it ("error in copier subprocess", "signal: killed"; tests/test_engine_e2e.py)."""
        with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.NotFound):
            if not force:
                self.api.remove_image(ref, force=False, noprune=False)
                return
            for container in self.api.containers(all=True, filters={"ancestor": ref}):
                with contextlib.suppress(docker.errors.NotFound):
                    self.api.remove_container(container["Id"], force=True)
            try:
                self.api.remove_image(ref, force=False, noprune=False)
            except docker.errors.APIError as exc:
                if exc.status_code == 409:  # in use (a build on one of its parents): left for later
                    return
                info = self._lookup(ref)  # an ID with several names: each name goes, the last takes the image
                names = [*((info or {}).get("RepoTags") or []), *((info or {}).get("RepoDigests") or [])]
                if len(names) < 2:
                    raise
                for name in names:
                    with contextlib.suppress(docker.errors.APIError):
                        self.api.remove_image(name, force=False, noprune=False)

    def import_tarball(self, tarball: Path, ref: str, changes: list[str] | None = None,
                       platform: str | None = None) -> str:
        """Import a root filesystem tarball as image `ref` (tagged explicitly: Podman ignores the tag);
        `platform` (`linux/arm64`) sets the image's OS and Architecture (None: the engine's own)."""
        try:
            if platform:  # the SDK's import has no platform; the API's /images/create takes it
                params = {"fromSrc": "-", "changes": changes or [], "platform": platform}
                with tarball.open("rb") as fh:
                    res = self.api._result(self.api._post(self.api._url("/images/create"), params=params, data=fh,
                                                          headers={"Content-Type": "application/tar"}, timeout=None))
            else:
                res = self.api.import_image_from_file(str(tarball), changes=changes)
        except docker.errors.APIError as exc:
            raise EngineError(f"could not import {tarball}: {exc.explanation or exc}") from exc
        text = res.decode() if isinstance(res, bytes) else str(res)
        image_id = None
        for line in text.splitlines():
            with contextlib.suppress(json.JSONDecodeError, AttributeError):
                obj = json.loads(line)
                if obj.get("error"):
                    raise EngineError(f"could not import {tarball}: {obj['error']}")
                m = re.search(r"(sha256:)?([0-9a-f]{64})", str(obj.get("status", "")))
                if m:
                    image_id = m.group(2)
        if not image_id:
            raise EngineError(f"the engine did not report an image ID for the import of {tarball}: {text[:200]}")
        self.tag(image_id, ref)
        return self.inspect(ref)["Id"]

    def save_stream(self, ref: str) -> Iterator[bytes]:
        """`docker save` of one image, as the engine sends it (a tar archive in chunks)."""
        try:
            yield from self.api.get_image(ref)
        except docker.errors.APIError as exc:
            raise EngineError(f"could not save {ref}: {exc.explanation or exc}") from exc

    def save(self, ref: str, dest: Path) -> Path:
        """Write `docker save` of one image to `dest` (a tar archive)."""
        try:
            chunks = self.api.get_image(ref)
            tmp = dest.with_name(dest.name + ".part")
            with tmp.open("wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
            tmp.replace(dest)
        except docker.errors.APIError as exc:
            raise EngineError(f"could not save {ref}: {exc.explanation or exc}") from exc
        return dest

    def load(self, archive: Path | Iterable[bytes]) -> None:
        """Load a docker-archive (`docker load`) from a file or streamed as it is written (chunked); the caller
        knows the image ID it holds."""
        what = archive if isinstance(archive, Path) else "the streamed archive"
        try:
            with archive.open("rb") if isinstance(archive, Path) else contextlib.nullcontext(archive) as body:
                for chunk in self.api.load_image(body):
                    if isinstance(chunk, dict) and (chunk.get("error") or chunk.get("errorDetail")):
                        raise EngineError(f"could not load {what}: {chunk.get('error') or chunk['errorDetail']}")
        except docker.errors.APIError as exc:
            raise EngineError(f"could not load {what}: {exc.explanation or exc}") from exc

    def pull(self, ref: str, platform: str | None = None) -> str:
        """Pull `ref` (for `platform`, e.g. `linux/arm64`; None: the engine's own) and return the local image ID."""
        repo, tag, digest = parse_ref(ref)
        try:
            for chunk in self.api.pull(repo, tag=digest or tag or "latest", stream=True, decode=True,
                                       **({"platform": platform} if platform else {})):
                if "error" in chunk or "errorDetail" in chunk:
                    detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error")
                    raise SourceError(f"could not pull {ref}: {detail}")
        except docker.errors.APIError as exc:
            raise SourceError(f"could not pull {ref}: {exc.explanation or exc}") from exc
        return self.inspect(ref)["Id"]

    def push(self, ref: str, on_line: Callable[[str], None] | None = None) -> str:
        """Push `ref` and return its manifest digest (`sha256:...`). Errors arrive in the stream."""
        repo, tag, _ = parse_ref(ref)
        digest = None
        try:
            for chunk in self.api.push(repo, tag=tag or "latest", stream=True, decode=True):
                if "error" in chunk or "errorDetail" in chunk:
                    detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error")
                    raise SourceError(f"the registry refused the push of {ref}: {str(detail).strip()}")
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = aux["Digest"]
                status = chunk.get("status") or chunk.get("stream") or ""
                m = re.search(r"digest: (sha256:[0-9a-f]{64})", status)
                if m:
                    digest = m.group(1)
                if on_line and status.strip():
                    on_line(status.strip())
        except docker.errors.APIError as exc:
            raise SourceError(f"could not push {ref}: {exc.explanation or exc}") from exc
        except requests.exceptions.RequestException as exc:
            raise SourceError(f"could not push {ref}: {exc}") from exc
        if not digest:
            digest = self.registry_digest(ref)
        return digest

    def registry_digest(self, ref: str) -> str:
        """The manifest digest a registry serves for `ref` (through the engine's distribution API)."""
        try:
            data = self.api.inspect_distribution(ref)
        except docker.errors.APIError as exc:
            raise SourceError(f"could not resolve {ref} in its registry: {exc.explanation or exc}") from exc
        digest = data.get("Descriptor", {}).get("digest")
        if not digest:
            raise SourceError(f"the registry returned no digest for {ref}")
        return digest

    # --- containers ---------------------------------------------------------------------------
    def run(self, image: str, command: list[str], *, user: str | None = None,
            entrypoint: list[str] | None = None, environment: dict[str, str] | None = None) -> tuple[int, str]:
        """Run one command in a fresh container; return (exit code, combined output)."""
        try:
            container = self.client.containers.run(
                image, command=command, entrypoint=entrypoint, user=user, environment=environment,
                detach=True,
            )
        except docker.errors.APIError as exc:
            raise EngineError(f"could not run {image}: {exc.explanation or exc}") from exc
        try:
            result = container.wait()
            logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
            return int(result.get("StatusCode", 1)), logs
        finally:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)


def _follow_build(stream: Any, on_line: Callable[[str], None] | None) -> tuple[str | None, str]:
    """Read the engine's build stream: (the image ID it reported, the log's last 4,000 characters); each
    log line to `on_line`; BuildFailed on the first error the engine reports."""
    image_id, last = None, ""
    for chunk in stream:
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error", "")
            raise BuildFailed(detail.strip(), last_lines=last)
        if "stream" in chunk:
            text = chunk["stream"]
            last = (last + text)[-4000:]
            for line in text.splitlines():
                if on_line and line.strip():
                    on_line(line)
            if m := re.search(r"Successfully built ([0-9a-f]{12,64})", text):
                image_id = m.group(1)
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            image_id = aux["ID"]
    return image_id, last


# the engine's cache lookup raced with another client's image removal (Podman): nothing in the build failed
_RACED = re.compile(r"checking if cached image exists.*layer not known")


class BuildFailed(EngineError):
    """A build step failed; its hint is the last line of the build log."""

    def __init__(self, message: str, *, last_lines: str = "") -> None:
        tail = [ln for ln in last_lines.splitlines() if ln.strip()][-1:]
        hint = f"last build output: {tail[0].strip()[:300]}" if tail else None
        super().__init__(f"build failed: {message[:500]}", hint=hint)
