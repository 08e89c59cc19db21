# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A local webhook receiver for canary alerts, on 127.0.0.1: what a Slack channel or a SIEM would get.

    with AlertSink(secret="...") as sink:
        # point the alert handler at it: CANARY_WEBHOOK_URL=sink.url("/generic"), CANARY_WEBHOOK_SECRET=...
        received = sink.wait(lambda item: item.alert is not None, timeout=30)
        sys.stdout.write(format_alert(received[0].alert))

Every POST on any path is kept as it arrived (path, headers, raw body, time of arrival).  A body that
is the generic JSON alert (docs/alerts.md) is parsed, and its ``X-Canary-Signature`` is checked
against the raw bytes when the sink knows the secret.  ``slack_message(alert)`` is the body the
alert handler's own Slack channel (``lambda/alert_channels.py``, loaded from this collection) sends
for that alert: the sink never writes a rendering of its own.

CLI: ``python -m tools.alert_sink [--port N]`` prints its URL, then every alert it receives, readably,
until SIGTERM or SIGINT.  The signing secret, if any, is read from ``CANARY_WEBHOOK_SECRET`` (a
command line would show it in ``ps``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import hmac
import http.server
import importlib.util
import json
import os
import pathlib
import sys
import threading
import time

from tools.serve import serve_until_signalled

LAMBDA_DIR = pathlib.Path(__file__).resolve().parents[1] / "lambda"
SIGNATURE_HEADER = "X-Canary-Signature"
# An alert is a few kilobytes (at most 50 events); anything far larger is not one.
MAX_BODY = 1024 * 1024
# What a body must carry to be read as the generic alert payload.
ALERT_FIELDS = ("detector", "alert", "iam_user", "count", "events")
USER_AGENT_WIDTH = 40


@dataclasses.dataclass
class Received:
    """One POST as it arrived."""

    path: str
    headers: dict
    body: bytes
    received_at: float
    # The generic alert payload, when the body is one.
    alert: dict | None = None
    # True/False when the sink has a secret and the body is an alert; None otherwise.
    signature_ok: bool | None = None

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def _signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _as_alert(document) -> dict | None:
    if isinstance(document, dict) and all(field in document for field in ALERT_FIELDS):
        return document
    return None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_SinkServer"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        # The sink's own record is the output; a stderr line per request would only add noise.
        pass

    def do_POST(self):  # pylint: disable=invalid-name
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        item = Received(self.path, dict(self.headers.items()), body, time.time())
        item.alert = _as_alert(item.json())
        if item.alert is not None and self.server.secret:
            item.signature_ok = hmac.compare_digest(_signature(self.server.secret, body), self.headers.get(SIGNATURE_HEADER) or "")
        self.server.sink.add(item)
        # A 2xx is what the handler counts as delivered; a bad signature is recorded, not refused, so
        # that a test sees it instead of a retry storm.
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


class _SinkServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, sink, secret):
        super().__init__(address, _Handler)
        self.sink = sink
        self.secret = secret


class AlertSink:
    """An HTTP receiver on 127.0.0.1 (a free port unless ``port`` is given) that keeps every POST."""

    def __init__(self, port: int = 0, secret: str = "", on_receive=None):
        self.requested_port = port
        self.secret = secret
        self.on_receive = on_receive
        self.base_url = None
        self._server = None
        self._thread = None
        self._items = []
        self._changed = threading.Condition()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        # Loopback only: alerts name hosts and files, and nobody else should be able to post fake ones.
        self._server = _SinkServer(("127.0.0.1", self.requested_port), self, self.secret)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="alert-sink", daemon=True)
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def url(self, path: str = "/generic") -> str:
        return self.base_url + path

    def add(self, item: Received):
        with self._changed:
            self._items.append(item)
            self._changed.notify_all()
        if self.on_receive is not None:
            self.on_receive(item)

    def received(self, path: str | None = None) -> list:
        with self._changed:
            return [item for item in self._items if path is None or item.path == path]

    def alerts(self) -> list:
        """The generic alert payloads received, in order of arrival."""
        return [item.alert for item in self.received() if item.alert is not None]

    def clear(self):
        with self._changed:
            self._items.clear()

    def wait(self, predicate=lambda item: True, count: int = 1, timeout: float = 30.0) -> list:
        """The received items that satisfy ``predicate`` once there are ``count`` of them (or at the timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matching = [item for item in self._items if predicate(item)]
                remaining = deadline - time.monotonic()
                if len(matching) >= count or remaining <= 0:
                    return matching
                self._changed.wait(remaining)


# -- the handler's own renderings -------------------------------------------------------------------

_CHANNELS = []
_LOAD_LOCK = threading.Lock()


def _load(name: str, private_name: str):
    spec = importlib.util.spec_from_file_location(private_name, LAMBDA_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def handler_channels():
    """``lambda/alert_channels.py``, the module the deployed handler sends alerts with.

    Loaded under private names: the Lambda's modules import each other by plain name (they sit flat
    at the package root), and the local AWS imports the deployed function's copy too; two modules
    called ``alert_payload`` in one process must not replace each other.
    """
    with _LOAD_LOCK:
        if not _CHANNELS:
            payload = _load("alert_payload", "_alert_sink_alert_payload")
            previous = sys.modules.get("alert_payload")
            sys.modules["alert_payload"] = payload
            try:
                _CHANNELS.append(_load("alert_channels", "_alert_sink_alert_channels"))
            finally:
                if previous is None:
                    del sys.modules["alert_payload"]
                else:
                    sys.modules["alert_payload"] = previous
        return _CHANNELS[0]


def slack_message(alert: dict) -> dict:
    """The exact message the handler POSTs to a Slack webhook (CANARY_WEBHOOK_FORMAT=slack) for ``alert``."""
    channels = handler_channels()
    body, _headers = channels.WebhookChannel("https://hooks.slack.invalid/", "slack").body_and_headers(alert)
    return json.loads(body)


# -- reading alerts ---------------------------------------------------------------------------------

def _cell(event: dict, column: str) -> str:
    value = event.get(column)
    if value is None:
        return "OK" if column == "errorCode" else "-"
    value = " ".join(str(value).split())
    # SDK user agents run to 200 characters; the JSON has them whole.
    return value if column != "userAgent" or len(value) <= USER_AGENT_WIDTH else value[:USER_AGENT_WIDTH - 3] + "..."


def format_alert(alert: dict, indent: str = "") -> str:
    """An alert as a responder reads it: where the key was planted, then what the attacker did."""
    kind = "canary key used" if alert.get("alert") == "canary" else "unknown IAM user activity"
    rows = [
        ("alert", f"{kind} (detector {alert.get('detector')})"),
        ("host", alert.get("host")),
        ("file", alert.get("path")),
        ("profile", alert.get("profile")),
        ("reminder", alert.get("reminder")),
        ("planted at", alert.get("planted_at")),
        ("IAM user", f"{alert.get('iam_user')}  (account {alert.get('account_id')}, key {alert.get('access_key_id')})"),
        ("calls", f"{alert.get('count')}, {alert.get('first_seen')} to {alert.get('last_seen')}"),
    ]
    lines = [f"{indent}{label:<11} {value if value is not None else '-'}" for label, value in rows]
    events = alert.get("events") or []
    columns = ("eventTime", "eventSource", "eventName", "sourceIPAddress", "errorCode", "userAgent")
    table = [columns] + [tuple(_cell(event, column) for column in columns) for event in events]
    widths = [max(len(row[index]) for row in table) for index in range(len(columns) - 1)]
    lines.append(f"{indent}events:")
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        lines.append(f"{indent}  " + "  ".join(cells + [row[-1]]))
    return "\n".join(lines) + "\n"


def format_generic_json(alert: dict, indent: str = "") -> str:
    """The payload as JSON, one field per line and one event per line (still valid JSON)."""
    fields = [f'{indent}  {json.dumps(key)}: {json.dumps(value)}' for key, value in alert.items() if key != "events"]
    events = [f"{indent}    {json.dumps(event)}" for event in alert.get("events") or []]
    fields.append(f'{indent}  "events": [\n' + ",\n".join(events) + f"\n{indent}  ]")
    return f"{indent}{{\n" + ",\n".join(fields) + f"\n{indent}}}\n"


def _slack_text(element) -> str:
    text = element.get("text") if isinstance(element, dict) else None
    return text.get("text", "") if isinstance(text, dict) else (text or "")


def format_slack(message: dict, indent: str = "") -> str:
    """A Slack message's blocks as plain text, roughly as the channel shows them."""
    lines = [f"{indent}notification: {message.get('text')}"]
    for block in message.get("blocks") or []:
        kind = block.get("type")
        if kind == "header":
            lines.append(f"{indent}# {_slack_text(block)}")
        elif kind == "section":
            if block.get("text"):
                lines.extend(f"{indent}{line}" for line in _slack_text(block).splitlines())
            for field in block.get("fields") or []:
                label, _sep, value = field.get("text", "").partition("\n")
                lines.append(f"{indent}{label.strip('*') + ':':<12} {value}")
        elif kind == "context":
            lines.append(f"{indent}({' '.join(element.get('text', '') for element in block.get('elements') or [])})")
    # Slack shows &amp; &lt; &gt; as the characters they stand for.
    text = "\n".join(lines).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text + "\n"


def describe(item: Received) -> str:
    """What the CLI prints for one POST."""
    stamp = time.strftime("%H:%M:%S", time.localtime(item.received_at))
    if item.alert is None:
        document = item.json()
        if isinstance(document, dict) and "blocks" in document:
            return f"[{stamp}] POST {item.path}: a Slack message\n" + format_slack(document, "  ")
        return f"[{stamp}] POST {item.path}: {len(item.body)} bytes, not an alert payload\n"
    signature = {True: "signature verified", False: "BAD SIGNATURE", None: "unsigned"}[item.signature_ok]
    return (f"[{stamp}] POST {item.path}: generic alert, {signature}\n" + format_alert(item.alert, "  ")
            + "  as a Slack message (the handler's Slack rendering):\n" + format_slack(slack_message(item.alert), "    "))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Receive canary alerts on 127.0.0.1 and print them.")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    args = parser.parse_args(argv)

    def show(item):
        sys.stdout.write(describe(item))
        sys.stdout.flush()

    sink = AlertSink(port=args.port, secret=os.environ.get("CANARY_WEBHOOK_SECRET", ""), on_receive=show)
    return serve_until_signalled(
        sink, lambda running: f"alert sink listening: {running.url('/generic')} (generic JSON), {running.url('/slack')} (Slack)")


if __name__ == "__main__":
    sys.exit(main())
