"""Registry credentials and the distribution auth challenge (Basic, or a Bearer token from the registry's token
service, anonymous or with the credentials `docker login`/`podman login` stored), for `registry.py`."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import requests

_PARAM = re.compile(r'([A-Za-z_]+)="([^"]*)"')


def auth_files(environ: dict[str, str] | None = None) -> list[Path]:
    """Where Podman and Docker keep registry credentials, in the order they are consulted."""
    env = os.environ if environ is None else environ
    files = [env.get("REGISTRY_AUTH_FILE", "")]
    files.append(f"{env['XDG_RUNTIME_DIR']}/containers/auth.json" if env.get("XDG_RUNTIME_DIR") else "")
    files.append(f"/run/containers/{os.getuid()}/auth.json")
    files.append(f"{env['DOCKER_CONFIG']}/config.json" if env.get("DOCKER_CONFIG") else "")
    files.append(str(Path.home() / ".docker" / "config.json"))
    return [Path(f) for f in files if f]


def credentials(host: str, environ: dict[str, str] | None = None) -> str | None:
    """base64 `user:password` stored for `host` by `docker login`/`podman login`, if any (credential helpers: no)."""
    for path in auth_files(environ):
        try:
            auths = json.loads(path.read_text()).get("auths") or {}
        except (OSError, ValueError, AttributeError):
            continue
        for key in (host, f"https://{host}", f"http://{host}", f"https://{host}/v1/"):
            entry = auths.get(key)
            if isinstance(entry, dict) and entry.get("auth"):
                return str(entry["auth"])
    return None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {realm, service, scope}) (pure)."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


def authorization(session: requests.Session, challenge: str, creds: str | None, timeout: float) -> str | None:
    """The Authorization header that answers `challenge` (None if it cannot be answered)."""
    scheme, params = parse_challenge(challenge)
    if scheme == "basic":
        return f"Basic {creds}" if creds else None
    if scheme != "bearer" or not params.get("realm"):
        return None
    query = {k: v for k, v in params.items() if k in ("service", "scope")}
    headers = {"Authorization": f"Basic {creds}"} if creds else {}
    try:
        resp = session.get(params["realm"], params=query, headers=headers, timeout=timeout)
        body: dict[str, Any] = resp.json() if resp.status_code == 200 else {}
    except (requests.RequestException, ValueError):
        return None
    token = body.get("token") or body.get("access_token")
    return f"Bearer {token}" if token else None
