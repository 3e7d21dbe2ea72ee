"""Shared test data and helpers for the workflow tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

AP_BUILD = str(Path(sys.executable).parent / "ap-build")

FULL = """\
dag:
  repository: moj-analytical-services/Example_Repo
  tag: "1.0"
  compute_profile: general-on-demand-4vcpu-16gb
  hmcts_sdp_networking: false
  catchup: true
  depends_on_past: true
  is_paused_upon_creation: true
  max_active_runs: 3
  retries: 2
  retry_delay: 120
  start_date: 2025-03-01
  end_date: "2026-01-31"
  schedule: "0 7 3-10 * ? *"
  params:
    run_date: "2025-01-01"
    dry_run: false
  env_vars:
    SHARED: dag-level
    OVERRIDDEN: dag
    FLAG: true
    NUMBER: 42
  tasks:
    extract:
      compute_profile: gpu-spot-8vcpu-32gb
      env_vars:
        OVERRIDDEN: extract
      inlets: ["s3://bucket/raw/"]
      outlets: ["s3://bucket/extracted/"]
    transform_1:
      hmcts_sdp_networking: true
      dependencies: [extract]
    load:
      dependencies: [extract, transform_1]
      outlets: ["s3://bucket/curated"]
maintainers: [octocat, jane-doe]
tags:
  business_unit: HMPPS
  owner: data.owner@justice.gov.uk
iam:
  athena: write
  bedrock: true
  glue: true
  lake_formation: true
  update_secrets: true
  textract: true
  kms: ["arn:aws:kms:eu-west-2:123456789012:key/abcd"]
  cloudwatch_logs_read_only: ["arn:aws:logs:eu-west-2:123456789012:log-group:/app/*"]
  s3_deny: [bucket/private/*]
  s3_read_only: [bucket/raw/*, other-bucket/in/*]
  s3_read_write: [bucket/curated/*]
  s3_write_only: [drop-bucket/out/*]
secrets: [api-key, db-password]
notifications:
  emails: [team@justice.gov.uk]
  slack_channel: "#data-alerts"
  slack_events: [failure]
"""

SINGLE = """\
dag:
  repository: ministryofjustice/single-task
  tag: v2.3.4
  schedule:
    datasets: ["s3://bucket/curated/"]
  inlets: ["s3://bucket/curated/"]
  outlets: ["s3://bucket/report"]
  env_vars:
    MODE: daily
maintainers: [octocat]
tags:
  business_unit: Platforms
  owner: someone@justice.gov.uk
iam:
  external_role: arn:aws:iam::123456789012:role/existing
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AP_BUILD, *args], capture_output=True, text=True, timeout=300)


def env_of(task: Any) -> dict[str, str]:
    """A KubernetesPodOperator's env vars as a dict (a dict, or V1EnvVar objects after rendering)."""
    env = task.env_vars
    return dict(env) if isinstance(env, dict) else {e.name: e.value for e in env}
