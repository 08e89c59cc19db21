# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the alert Lambda's tests.

The Lambda package is flat (``alert_handler.py`` next to ``canary_mapping.py``), so its modules
import each other by bare name: pytest.ini puts ``lambda/`` and ``plugins/module_utils/_lambda_shared/`` on
the import path the way the zip's root is on Lambda's.

aws          function  moto's AWS in-process (IAM, SNS, SQS), the handler's clients and cache reset,
                       no CANARY_* setting inherited from the environment
iam_calls    function  Counter of the IAM operations the handler's own client makes
plant        function  plant(user, host, path, profile, reminder) -> access key id: an IAM user tagged
                       with canary_mapping.mapping_tags, as the seed leaves it
webhook      function  a real HTTP server on 127.0.0.1 (free port) recording every request; set
                       ``statuses`` to make it fail
hook         function  ``webhook`` set as the generic channel (CANARY_WEBHOOK_URL)
sns_inbox    function  an SNS topic with an SQS queue subscribed; ``messages()`` reads what SNS sent
retry_sleeps function  the backoff delays the dispatcher asked for (the waits themselves are skipped)
context      function  a Lambda context of function audit-event-forwarder in account 123456789012
"""

from __future__ import annotations

import collections
import http.server
import json
import os
import threading
import types

import pytest

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

import alert_channels  # noqa: E402  pylint: disable=wrong-import-position
import alert_handler  # noqa: E402  pylint: disable=wrong-import-position
import canary_mapping  # noqa: E402  pylint: disable=wrong-import-position

ACCOUNT = "123456789012"  # moto's default account, as in the fixtures' records
REGION = "us-east-1"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:audit-event-forwarder"


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL_SNS", "AWS_CONFIG_FILE",
                 "AWS_SHARED_CREDENTIALS_FILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in [name for name in list(os.environ) if name.startswith("CANARY_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    with moto.mock_aws():
        alert_handler.reset_state()
        yield
    alert_handler.reset_state()


@pytest.fixture
def iam_calls(aws):
    counts = collections.Counter()

    def count(model, **_kwargs):
        counts[model.name] += 1

    alert_handler.iam_client().meta.events.register("before-call.iam", count)
    return counts


@pytest.fixture
def plant(aws):
    iam = boto3.client("iam")

    def _plant(user, host, path, profile, reminder="", planted_at="2024-05-01T10:00:00Z"):
        tags = canary_mapping.mapping_tags(host, path, profile, reminder=reminder, planted_at=planted_at, planted_by="seed_canaries.yml")
        iam.create_user(UserName=user, Tags=[{"Key": key, "Value": value} for key, value in tags.items()])
        # Only the key id is kept; the secret is dropped on the spot, as nothing here may print it.
        return iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]

    return _plant


class WebhookReceiver:
    """Records each POST as ``(path, headers, body bytes)``; answers with ``statuses`` in turn, then 200."""

    def __init__(self):
        self.requests = []
        self.statuses = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the name http.server calls)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((self.path, dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/moved")
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *_args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        # A path shaped like a Slack webhook's: it is a credential and must never be logged.
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T0CANARY/B0CANARY/s3cr3tWebhookPathToken"

    def json_bodies(self):
        return [json.loads(body) for _path, _headers, body in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def hook(monkeypatch, aws, webhook):  # pylint: disable=redefined-outer-name
    monkeypatch.setenv("CANARY_WEBHOOK_URL", webhook.url)
    return webhook


@pytest.fixture
def sns_inbox(aws):
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name="security-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="security-alerts-observer")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    def messages():
        """The SNS notifications (``Subject``, ``Message``) that reached the queue so far."""
        found = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    return types.SimpleNamespace(topic_arn=topic_arn, messages=messages)


@pytest.fixture
def retry_sleeps(monkeypatch):
    sleeps = []
    monkeypatch.setattr(alert_channels, "_sleep", sleeps.append)
    return sleeps


@pytest.fixture
def context():
    return types.SimpleNamespace(
        function_name="audit-event-forwarder",
        invoked_function_arn=FUNCTION_ARN,
        aws_request_id="6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
        get_remaining_time_in_millis=lambda: 30000,
    )
