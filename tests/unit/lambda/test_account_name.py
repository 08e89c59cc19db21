# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alerts name the canary account (``CANARY_ACCOUNT_NAME``, set by the detection role per entry of
``canary_accounts``) next to its id: every detector of the alert Lambda, every rendering.

The last-used detector's alert is checked in test_last_used_detector.py, with its own fixtures.
"""

from __future__ import annotations

import base64
import gzip
import json
import pathlib

import pytest

import alert_channels
import alert_handler
import alert_payload

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
FIXTURE_KEY = "AKIAVRUVQ3KTEXAMPLE1"
ACCOUNT = "123456789012"
NAME = "canary-east"
PATH = "/home/deploy/.aws/credentials"


def fixture(name, key):
    return json.loads((FIXTURES / f"{name}.json").read_text().replace(FIXTURE_KEY, key))


def cloudwatch_logs_event(record):
    document = {"messageType": "DATA_MESSAGE", "owner": ACCOUNT, "logGroup": "org-audit-trail",
                "logStream": f"{ACCOUNT}_CloudTrail_us-east-1", "subscriptionFilters": ["iam-user-activity"],
                "logEvents": [{"id": "1", "timestamp": 1715678400000, "message": json.dumps(record)}]}
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(document).encode())).decode()}}


def fast_path_event(record):
    return {"detail-type": "AWS API Call via CloudTrail", "source": "aws.sts", "account": ACCOUNT, "time": record["eventTime"],
            "region": "us-east-1", "detail": record}


@pytest.fixture
def web03(plant):
    return plant("web03-backup", "web03", PATH, "prod")


@pytest.fixture
def named(monkeypatch, aws):
    monkeypatch.setenv("CANARY_ACCOUNT_NAME", NAME)


EVENTS = {
    "cloudtrail": lambda key: cloudwatch_logs_event(fixture("iam_user_sts_get_caller_identity", key)),
    "fast path": lambda key: fast_path_event(fixture("iam_user_sts_get_caller_identity", key)),
    "tamper": lambda key: fixture("eventbridge_iam_attach_user_policy", key),
    "exposed": lambda key: fixture("health_aws_risk_credentials_exposed", key),
}


@pytest.mark.parametrize("path", sorted(EVENTS))
def test_every_detector_of_the_handler_names_the_account(named, web03, hook, context, path):  # pylint: disable=unused-argument
    summary = alert_handler.handler(EVENTS[path](web03), context)

    assert summary["alerts"] == 1
    (alert,) = hook.json_bodies()
    assert (alert["account"], alert["account_id"], alert["alert"], alert["host"]) == (NAME, ACCOUNT, "canary", "web03")
    # Next to the id, in the payload's order.
    assert list(alert)[list(alert).index("account") + 1] == "account_id"


def test_without_a_name_the_field_is_empty_and_the_headline_unchanged(aws, web03, hook, context):
    alert_handler.handler(EVENTS["cloudtrail"](web03), context)

    (alert,) = hook.json_bodies()
    assert alert["account"] == "" and alert["account_id"] == ACCOUNT
    assert alert_payload.headline(alert) == f"Canary AWS key used: web03 {PATH} [prod]"


def test_sns_and_the_chat_renderings_name_the_account(monkeypatch, named, web03, hook, sns_inbox, context):  # pylint: disable=unused-argument
    monkeypatch.setenv("CANARY_SNS_TOPIC_ARN", sns_inbox.topic_arn)
    alert_handler.handler(EVENTS["cloudtrail"](web03), context)
    (alert,) = hook.json_bodies()
    headline = f"Canary AWS key used: web03 {PATH} [prod] (account {NAME})"

    (notification,) = sns_inbox.messages()
    assert notification["Subject"] == headline
    assert any(line.split() == ["Account:", NAME, f"({ACCOUNT})"] for line in notification["Message"].splitlines())

    slack = alert_channels.render_slack(alert)
    assert slack["blocks"][0]["text"]["text"] == headline and slack["text"].startswith(headline)
    fields = [field["text"] for block in slack["blocks"] if block.get("fields") for field in block["fields"]]
    assert f"*Account*\n{NAME} ({ACCOUNT})" in fields

    runs = [[run["text"] for run in block["inlines"]] for block in alert_channels.render_teams(alert)["attachments"][0]["content"]["body"]]
    assert [headline] in runs and ["Account: ", f"{NAME} ({ACCOUNT})"] in runs


def test_an_unknown_users_headline_names_the_account_too(named, hook, context):  # pylint: disable=unused-argument
    record = fixture("iam_user_sts_get_caller_identity", "AKIAIOSFODNN7NOTOURS")
    record["userIdentity"]["userName"] = "someone-else"
    record["userIdentity"]["arn"] = f"arn:aws:iam::{ACCOUNT}:user/someone-else"

    alert_handler.handler(cloudwatch_logs_event(record), context)

    (alert,) = hook.json_bodies()
    assert (alert["alert"], alert["account"]) == ("unknown-iam-user", NAME)
    assert alert_payload.headline(alert) == f"Unknown IAM user activity in the canary account: someone-else (account {NAME})"
