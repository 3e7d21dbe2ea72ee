"""ap-build: build, test, scan and ship Analytical Platform runtime images, repositories and workflows."""

__version__ = "0.1.0"
