"""The `workflow.yml` manifest as typed models: the single source of truth.

The validator, the defaults, the JSON Schema (`ap-build workflow schema`) and the docs all come from
these classes. Unknown keys are rejected at every level (except inside `env_vars` and `params`),
null values are rejected (`{}` is fine), and every pattern must match the whole value.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, field_validator

# Bounds on numbers, so a valid manifest never compiles to a DAG that Airflow cannot load (OverflowError):
DB_INT_MAX = 2**31 - 1  # Airflow stores max_active_runs and retries in 32-bit integer columns
TEN_YEARS_S = 10 * 365 * 24 * 3600  # the longest schedule interval or retry delay (a timedelta has ~2.7 million years)
SIZES: dict[str, tuple[int, int]] = {
    "1vcpu-4gb": (1, 4), "2vcpu-8gb": (2, 8), "4vcpu-16gb": (4, 16), "8vcpu-32gb": (8, 32),
    "16vcpu-64gb": (16, 64), "32vcpu-128gb": (32, 128), "64vcpu-256gb": (64, 256),
    "120vcpu-500gb": (120, 500), "128vcpu-512gb": (128, 512),
}
COMPUTE_PROFILES = tuple(f"{kind}-{capacity}-{size}" for kind in ("general", "gpu")
                         for capacity in ("on-demand", "spot") for size in SIZES)
BUSINESS_UNITS = ("Central Digital", "CICA", "HMCTS", "HMPPS", "HQ", "LAA", "OPG", "Platforms", "Technology Services")
DEFAULT_COMPUTE_PROFILE = "general-spot-1vcpu-4gb"

ComputeProfile = Literal[COMPUTE_PROFILES]  # type: ignore[valid-type]
BusinessUnit = Literal[BUSINESS_UNITS]  # type: ignore[valid-type]
Scalar = StrictStr | StrictBool | StrictInt | StrictFloat
TaskName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@justice\.gov\.uk$")]
# bucket/path without the `arn:aws:s3:::` prefix; an `s3://` prefix occurs in real manifests and is stripped for IAM
S3Path = Annotated[str, Field(pattern=r"^(s3://)?[a-z0-9][a-z0-9.-]*[a-z0-9](/.*)?$")]
Arn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d*:.+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScheduleMap(_Strict):
    """A timedelta (one of seconds/minutes/hours) or the dataset URIs that trigger the DAG."""

    seconds: StrictInt | None = Field(None, gt=0, le=TEN_YEARS_S)
    minutes: StrictInt | None = Field(None, gt=0, le=TEN_YEARS_S // 60)
    hours: StrictInt | None = Field(None, gt=0, le=TEN_YEARS_S // 3600)
    datasets: list[StrictStr] | None = Field(None, min_length=1)


class Task(_Strict):
    compute_profile: ComputeProfile | None = None
    hmcts_sdp_networking: StrictBool | None = None
    env_vars: dict[StrictStr, Scalar] = Field(default_factory=dict)
    dependencies: list[TaskName] = Field(default_factory=list)
    inlets: list[StrictStr] = Field(default_factory=list)
    outlets: list[StrictStr] = Field(default_factory=list)


class Dag(_Strict):
    repository: Annotated[str, Field(pattern=r"^(ministryofjustice|moj-analytical-services)/[A-Za-z0-9_-]+$")]
    tag: StrictStr = Field(description="Release tag of the image (quote it: YAML reads 1.0 as a number).")
    compute_profile: ComputeProfile = DEFAULT_COMPUTE_PROFILE
    hmcts_sdp_networking: StrictBool = False
    env_vars: dict[StrictStr, Scalar] = Field(default_factory=dict)
    catchup: StrictBool = False
    depends_on_past: StrictBool = False
    is_paused_upon_creation: StrictBool = False
    max_active_runs: StrictInt = Field(1, ge=1, le=DB_INT_MAX)
    retries: StrictInt = Field(0, ge=0, le=DB_INT_MAX)
    retry_delay: StrictInt = Field(300, ge=0, le=TEN_YEARS_S, description="Seconds; applied only when retries > 0.")
    start_date: dt.date = dt.date(2025, 1, 1)
    end_date: dt.date | None = None
    schedule: StrictStr | ScheduleMap | None = Field(
        None, description="None/absent/empty = manual; a cron string or preset; or a timedelta/datasets map.")
    params: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")], Scalar] = Field(default_factory=dict)
    inlets: list[StrictStr] = Field(default_factory=list)
    outlets: list[StrictStr] = Field(default_factory=list)
    python_dag: StrictBool = False
    tasks: dict[TaskName, Task] | None = None

    @field_validator("start_date", "end_date", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> object:
        if isinstance(value, dt.datetime):
            raise ValueError("a date (YYYY-MM-DD) is expected, not a date and time")
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value) if len(value) == 10 else _bad_date(value)
            except ValueError:
                _bad_date(value)
        return value


def _bad_date(value: str) -> None:
    raise ValueError(f"{value!r} is not a date in the form YYYY-MM-DD")


class Iam(_Strict):
    external_role: Arn | None = None
    athena: Literal["read", "write"] | None = None
    bedrock: StrictBool = False
    glue: StrictBool = False
    lake_formation: StrictBool = False
    update_secrets: StrictBool = False
    textract: StrictBool = False
    cloudwatch_logs_read_only: list[Arn] = Field(default_factory=list)
    kms: list[Arn] = Field(default_factory=list)
    s3_deny: list[S3Path] = Field(default_factory=list)
    s3_read_only: list[S3Path] = Field(default_factory=list)
    s3_read_write: list[S3Path] = Field(default_factory=list)
    s3_write_only: list[S3Path] = Field(default_factory=list)


class Notifications(_Strict):
    emails: list[Email] = Field(default_factory=list)
    slack_channel: StrictStr | None = None
    slack_events: list[Literal["failure", "success"]] = Field(default_factory=lambda: ["failure", "success"])


class Tags(_Strict):
    business_unit: BusinessUnit
    owner: Email


class Manifest(_Strict):
    """One `environments/<environment>/<project>/<workflow>/workflow.yml`."""

    dag: Dag
    maintainers: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")]] = Field(min_length=1)
    tags: Tags
    iam: Iam = Field(default_factory=Iam)
    secrets: list[Annotated[str, Field(pattern=r"^[a-z-]+$")]] = Field(default_factory=list)
    notifications: Notifications = Field(default_factory=Notifications)


def json_schema() -> dict[str, object]:
    """The manifest's JSON Schema (draft 2020-12), for editors and the YAML language server."""
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Analytical Platform Airflow workflow manifest (workflow.yml)"
    return schema
