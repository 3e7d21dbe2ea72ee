"""Helpers shared by several jobs' tests (fixture Trivy DB, small cached test images)."""
