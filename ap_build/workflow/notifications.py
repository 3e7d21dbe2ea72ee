"""Slack and email notifications of a compiled DAG, as the platform sends them (pure rendering).

Slack goes through the Slack provider's `SlackNotifier` on the platform's Slack API connection with the
platform's message text, on the manifest's `slack_events`; emails are Airflow's own failure/retry mails
to `notifications.emails` (on the Airflow 3 line through the SMTP provider's `SmtpNotifier`, the
replacement Airflow 3 asks for, on the same two events, instead of the deprecated task `email`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ap_build.workflow import model
from ap_build.workflow.settings import Identity, Settings

# The platform's message text (templates/workflow.yml.j2); `{{ ti... }}` is rendered by Airflow.
HEADLINE = {"failure": ":x: {dag_id} has failed.", "success": ":white_check_mark: {dag_id} has succeeded."}
TEXT = ":airflow: *Airflow {environment}*\n{headline}\n*Task*: {{{{ ti.task_id }}}}\n*Logs*: {{{{ ti.log_url }}}}\n"


def slack_text(event: str, ident: Identity, settings: Settings) -> str:
    """The platform's Slack message for `event` ('failure' or 'success') of this workflow."""
    dag_id = ident.dag_id(settings)
    return TEXT.format(environment=ident.environment.capitalize(), headline=HEADLINE[event].format(dag_id=dag_id))


@dataclass(frozen=True)
class Notifications:
    """What the DAG file needs: import lines, module-level constants, and the callbacks per event."""

    imports: list[str]
    constants: list[str]
    task_callbacks: dict[str, list[str]]  # 'failure' | 'success' | 'retry' -> Python expressions, per task
    dag_callbacks: dict[str, list[str]]  # the same on the DAG (notify_per = "dag": one Slack message per run)
    email: list[str]  # for default_args['email'] (Airflow 2 line), else empty


def plan(m: model.Manifest, ident: Identity, settings: Settings, r: Callable[..., str]) -> Notifications:
    """`r` renders a plain value as a Python literal (codegen._r)."""
    n = m.notifications
    af3 = settings.airflow == 3
    imports: list[str] = []
    constants: list[str] = []
    callbacks: dict[str, list[str]] = {}
    dag_callbacks: dict[str, list[str]] = {}
    slack = dag_callbacks if settings.notify_per == "dag" else callbacks
    events = [e for e in ("failure", "success") if e in n.slack_events] if n.slack_channel else []
    if events:
        imports.append("from airflow.providers.slack.notifications.slack import SlackNotifier")
        extra = f", base_url={r(settings.slack_base_url)}" if settings.slack_base_url else ""
        for event in events:
            name = f"SLACK_{event.upper()}"
            constants += [
                f"{name} = SlackNotifier(",
                f"    slack_conn_id={r(settings.slack_connection)}, channel={r(n.slack_channel)}{extra},",
                f"    text={r(slack_text(event, ident, settings))},",
                ")",
            ]
            slack.setdefault(event, []).append(name)
    email: list[str] = []
    if n.emails and af3:
        imports.append("from airflow.providers.smtp.notifications.smtp import SmtpNotifier")
        constants.append(f"EMAIL = SmtpNotifier(to={r(list(n.emails))})")
        for event in ("failure", "retry"):  # Airflow's email_on_failure and email_on_retry defaults
            callbacks.setdefault(event, []).append("EMAIL")
    elif n.emails:
        email = list(n.emails)
    return Notifications(imports, constants, callbacks, dag_callbacks, email)
