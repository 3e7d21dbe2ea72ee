"""The few exception types that carry a one-line user message and an exit code.

One exit-code convention for every command:
    0  done / passed
    1  the check failed (gate, validation, contract)
    2  could not run (usage, missing engine or tool, unreachable source, build/push failure)
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_ERROR = 2


class ApBuildError(Exception):
    """An error the CLI reports as one line (plus an optional hint) and an exit code; never a traceback."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(ApBuildError):
    """Bad arguments or input files the command cannot even start with (exit 2)."""


class EngineError(ApBuildError):
    """No container engine, or the engine refused an operation (exit 2)."""


class ToolError(ApBuildError):
    """A helper binary (trivy, container-structure-test, ...) is missing or failed to run (exit 2)."""


class SourceError(ApBuildError):
    """A download source (mirror, index, registry) is unreachable or refused us (exit 2)."""


class CheckFailed(ApBuildError):
    """The thing was checked and did not pass: gate, validation, contract (exit 1)."""

    exit_code = EXIT_FAILED
