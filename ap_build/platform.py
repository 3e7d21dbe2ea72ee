"""The platform's fixed facts shared by every job (the image contract, names, paths)."""

from __future__ import annotations

CONTAINER_USER = "analyticalplatform"
CONTAINER_UID = 1000
CONTAINER_GID = 1000
WORKDIR = "/opt/analyticalplatform"
HOME = f"/home/{CONTAINER_USER}"
RUNTIMES = ("python", "r")

# The label that carries a base image's own Trivy ignore list, verbatim (the repository's root
# `.trivyignore` at build time). Labels live in the image config and are inherited by `FROM`, so a user
# image's scan reads its base's ignores from the same Trivy report: no network call, no layer read.
BASE_TRIVYIGNORE_LABEL = "uk.gov.justice.analytical-platform.trivyignore"

# The contract every USER image (built FROM a base) must meet.
USER_IMAGE_CONTRACT = {"user": str(CONTAINER_UID), "workdir": WORKDIR}

# Loopback registry started by scripts/setup.sh (tests and local pushes).
LOCAL_REGISTRY = "127.0.0.1:5000"
