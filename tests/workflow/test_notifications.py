"""A compiled DAG's failure notification, rendered and sent through the real Slack provider to a Slack
stand-in on loopback (the `slack_base_url` setting), as the platform's would reach Slack."""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from ap_build.workflow.codegen import render_dag
from ap_build.workflow.settings import Identity, load_settings
from ap_build.workflow.validate import validate_text
from workflow.helpers import FULL

pytestmark = pytest.mark.xdist_group("airflow")
TOKEN = "xoxb-not-a-real-token"


class SlackStandIn(BaseHTTPRequestHandler):
    """Answers chat.postMessage as Slack's Web API does, and records each request."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        form = self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded")
        self.received.append({"path": self.path, "auth": self.headers.get("Authorization"),
                              "body": dict(urllib.parse.parse_qsl(body)) if form else json.loads(body)})
        reply = json.dumps({"ok": True, "channel": "C0123", "ts": "1700000000.000100"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slack() -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlackStandIn)
    SlackStandIn.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_failure_notification_reaches_slack_through_the_provider(slack, dagbag, tmp_path: Path, monkeypatch) -> None:
    ident = Identity("production", "electronic-monitoring-data-store", "my-flow")
    settings = dataclasses.replace(load_settings(), airflow=3,
                                   slack_base_url=f"http://127.0.0.1:{slack.server_port}/api/")
    manifest = validate_text(FULL, "workflow.yml", ident).manifest
    (tmp_path / "my-flow.py").write_text(render_dag(manifest, ident, settings))
    bag = dagbag(tmp_path)
    assert bag.import_errors == {}
    dag = bag.dags["emds.my-flow"]
    task = dag.get_task("transform_1")
    [notifier] = [cb for cb in task.on_failure_callback if type(cb).__name__ == "SlackNotifier"]
    # the platform's connection: a Slack API connection whose password is the bot token
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_API_DEFAULT", json.dumps({"conn_type": "slack", "password": TOKEN}))
    ti = SimpleNamespace(task_id="transform_1", log_url="https://airflow.example/log?task_id=transform_1")
    notifier({"dag": dag, "ti": ti, "task_instance": ti})
    [request] = SlackStandIn.received
    assert request["path"] == "/api/chat.postMessage" and request["auth"] == f"Bearer {TOKEN}"
    body = request["body"]
    assert body["channel"] == "#data-alerts"
    assert body["text"] == (":airflow: *Airflow Production*\n:x: emds.my-flow has failed.\n"
                            "*Task*: transform_1\n*Logs*: https://airflow.example/log?task_id=transform_1")
    assert body["username"] == "Airflow"
