"""Fixtures for the scan/sbom/test jobs' tests."""

from __future__ import annotations





