# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local alert sink against the alert handler's own channels, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request

import pytest

from tools import alert_sink
from tools.alert_sink import AlertSink, format_alert, format_generic_json, format_slack, slack_message

SECRET = "sink-test-" + "0123456789abcdef" * 2
ALERT = {
    "detector": "cloudtrail",
    "alert": "canary",
    "account_id": "123456789012",
    "iam_user": "web03-backup",
    "access_key_id": "AKIAVRUVQ3KTEXAMPLE1",
    "host": "web03",
    "path": "/home/deploy/.aws/credentials",
    "profile": "prod",
    "reminder": "web03 deploy user",
    "planted_at": "2024-05-01T10:00:00Z",
    "count": 2,
    "first_seen": "2024-05-14T09:20:41Z",
    "last_seen": "2024-05-14T09:21:07Z",
    "events": [
        {"eventTime": "2024-05-14T09:20:41Z", "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
         "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.23", "userAgent": "aws-cli/1.46.3 <!channel> " + "x" * 120,
         "errorCode": None, "eventID": "0b8e4f7a-2c3d-4e5f-9a1b-6c7d8e9f0a1b"},
        {"eventTime": "2024-05-14T09:21:07Z", "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets",
         "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.23", "userAgent": "aws-cli/1.46.3",
         "errorCode": "AccessDenied", "eventID": "9d1f3c2a-6b7e-4f0a-8c5d-2e4b6a8c0f12"},
    ],
}


@pytest.fixture
def sink():
    with AlertSink(secret=SECRET) as running:
        yield running


def send(channels, url, webhook_format, secret=""):
    """What the alert handler does for one alert and one webhook channel."""
    channels.WebhookChannel(url, webhook_format, secret).send(ALERT)


def test_generic_alert_from_the_handler_is_kept_and_its_signature_checked(sink):
    channels = alert_sink.handler_channels()
    send(channels, sink.url("/generic"), "generic", SECRET)
    send(channels, sink.url("/generic"), "generic", "another-secret")
    send(channels, sink.url("/generic"), "generic")
    good, forged, unsigned = sink.received("/generic")
    assert good.alert == ALERT and good.signature_ok is True
    assert good.body == channels.generic_body(ALERT)
    assert forged.alert == ALERT and forged.signature_ok is False
    assert unsigned.signature_ok is False
    assert sink.alerts() == [ALERT] * 3
    assert sink.base_url.startswith("http://127.0.0.1:")


def test_slack_message_is_what_the_handler_sends_to_a_slack_webhook(sink):
    send(alert_sink.handler_channels(), sink.url("/slack"), "slack")
    (received,) = sink.received("/slack")
    # A Slack message is not an alert payload: kept, not parsed as one.
    assert received.alert is None and received.signature_ok is None
    assert received.json() == slack_message(ALERT)
    assert "<!channel>" not in received.body.decode()


def test_handler_modules_load_without_taking_the_plain_names():
    before = {name: sys.modules.get(name) for name in ("alert_payload", "alert_channels")}
    alert_sink._CHANNELS.clear()  # pylint: disable=protected-access
    channels = alert_sink.handler_channels()
    assert channels.__name__ == "_alert_sink_alert_channels"
    assert channels.alert_payload.__name__ == "_alert_sink_alert_payload"
    assert {name: sys.modules.get(name) for name in before} == before


def test_readable_renderings():
    text = format_alert(ALERT)
    for fact in ("web03", "/home/deploy/.aws/credentials", "prod", "web03 deploy user", "GetCallerIdentity", "ListBuckets",
                 "AccessDenied", "198.51.100.23", "AKIAVRUVQ3KTEXAMPLE1"):
        assert fact in text
    # Long user agents are cut in the table; the JSON keeps them whole.
    assert "x" * 120 not in text and "..." in text
    assert json.loads(format_generic_json(ALERT)) == ALERT
    slack = format_slack(slack_message(ALERT))
    assert "# Canary AWS key used: web03 /home/deploy/.aws/credentials [prod]" in slack
    assert "Host:        web03" in slack
    # Slack shows the escaped attacker text as the characters it stands for.
    assert "<!channel>" in slack


def test_wait_returns_what_arrives_and_gives_up_at_the_timeout(sink):
    started = time.monotonic()
    assert sink.wait(timeout=0.3) == []
    assert 0.25 <= time.monotonic() - started < 5

    def post_later():
        time.sleep(0.2)
        request = urllib.request.Request(sink.url("/other"), data=b"not json", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:  # nosec B310: the test's own sink
            response.read()

    thread = threading.Thread(target=post_later)
    thread.start()
    (item,) = sink.wait(lambda item: item.path == "/other", timeout=10)
    thread.join()
    assert item.body == b"not json" and item.alert is None and item.json() is None
    assert "not an alert payload" in alert_sink.describe(item)
    sink.clear()
    assert sink.received() == []
