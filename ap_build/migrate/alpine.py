"""Alpine's `apk` steps of a legacy `python:<v>-alpine` image, as Debian/Ubuntu `apt-get` steps (pure).

The runtime bases are Debian/Ubuntu: `apk` does not exist there. `apk add` becomes `apt-get install` of the
Debian names of the usual build packages (a name not in the table is kept, and a note asks to check it);
`apk update` becomes `apt-get update`; `apk del` goes (the packages stay: the image is bigger, not broken).
"""

from __future__ import annotations

import shlex

# Alpine package -> Debian package(s) ("" = nothing needed on Debian).
DEBIAN_NAMES = {
    "build-base": "build-essential", "alpine-sdk": "build-essential", "musl-dev": "libc6-dev",
    "linux-headers": "linux-libc-dev", "openssl-dev": "libssl-dev", "libressl-dev": "libssl-dev",
    "postgresql-dev": "libpq-dev", "postgresql-libs": "libpq5", "libpq": "libpq5", "jpeg-dev": "libjpeg-dev",
    "zlib-dev": "zlib1g-dev", "libxslt-dev": "libxslt1-dev", "freetype-dev": "libfreetype-dev",
    "unixodbc-dev": "unixodbc-dev", "libffi-dev": "libffi-dev", "libxml2-dev": "libxml2-dev", "gcc": "gcc",
    "g++": "g++", "make": "make", "git": "git", "curl": "curl", "bash": "bash", "tzdata": "tzdata",
    "ca-certificates": "ca-certificates", "python3-dev": "python3-dev", "gfortran": "gfortran",
    "openblas-dev": "libopenblas-dev", "lapack-dev": "liblapack-dev", "cmake": "cmake", "wget": "wget",
    "unzip": "unzip", "jq": "jq", "openssh-client": "openssh-client", "krb5-dev": "libkrb5-dev",
    "cyrus-sasl-dev": "libsasl2-dev", "mariadb-dev": "libmariadb-dev", "mariadb-connector-c-dev": "libmariadb-dev",
}
COMPILERS = {"gcc", "g++", "build-base", "alpine-sdk"}  # source builds of C extensions also need Python's headers
APT_INSTALL = "apt-get update && apt-get install --yes --no-install-recommends"


def translate(segment: str) -> tuple[str | None, list[str]] | None:
    """One `&&` segment of a RUN: None when it is not an apk command; else (the apt-get command, or None to
    drop it, and the Alpine names that have no known Debian name)."""
    try:
        words = shlex.split(segment)
    except ValueError:
        return None
    if not words or words[0] != "apk":
        return None
    positional, skip_next = [], False
    for w in words[1:]:
        if skip_next:
            skip_next = False
        elif w in ("--virtual", "-t", "--repository", "-X"):
            skip_next = True
        elif not w.startswith("-"):
            positional.append(w)
    verb = positional[0] if positional else ""
    if verb == "update":
        return "apt-get update", []
    if verb != "add":
        return None, []  # apk del/upgrade/...: nothing to do on the base
    packages = [w.split("=", 1)[0] for w in positional[1:]]
    debian: list[str] = []
    unknown: list[str] = []
    for name in packages:
        mapped = DEBIAN_NAMES.get(name)
        if mapped is None:
            unknown.append(name)
            mapped = name
        debian += [m for m in mapped.split() if m and m not in debian]
    if set(packages) & COMPILERS and "python3-dev" not in debian:
        debian.append("python3-dev")
    return (f"{APT_INSTALL} {' '.join(debian)}" if debian else None), unknown
