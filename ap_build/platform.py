"""The platform's fixed facts shared by every job (the image contract, names, paths)."""

from __future__ import annotations

CONTAINER_USER = "analyticalplatform"
CONTAINER_UID = 1000
CONTAINER_GID = 1000
WORKDIR = "/opt/analyticalplatform"
HOME = f"/home/{CONTAINER_USER}"
RUNTIMES = ("python", "r")

# Where a base image carries its own Trivy ignore list (the repository's root `.trivyignore` at build
# time). A user image's scan reads it from the image it scans, so it inherits the base's ignores
# with no network call. The label names the path so other tools can find it.
BASE_TRIVYIGNORE_PATH = "/usr/local/share/analyticalplatform/trivyignore"
BASE_TRIVYIGNORE_LABEL = "uk.gov.justice.analytical-platform.trivyignore"

# The contract every USER image (built FROM a base) must meet.
USER_IMAGE_CONTRACT = {"user": str(CONTAINER_UID), "workdir": WORKDIR}

# Loopback registry started by scripts/setup.sh (tests and local pushes).
LOCAL_REGISTRY = "127.0.0.1:5000"
