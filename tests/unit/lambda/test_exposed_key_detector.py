# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS's exposed-key Health event (fixtures/health_aws_risk_credentials_exposed.json, the shape of
AWS Health's EventBridge schema) through ``alert_handler.handler``, against moto's IAM."""

from __future__ import annotations

import json
import pathlib


import alert_handler

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
FIXTURE_KEY = "AKIAVRUVQ3KTEXAMPLE1"
PATH = "/home/deploy/.aws/credentials"


def health_event(key=FIXTURE_KEY, **detail):
    result = json.loads((FIXTURES / "health_aws_risk_credentials_exposed.json").read_text().replace(FIXTURE_KEY, key))
    result["detail"].update(detail)
    return result


def test_a_published_canary_key_names_its_placement_and_carries_aws_words(monkeypatch, plant, hook, sns_inbox, context):
    monkeypatch.setenv("CANARY_SNS_TOPIC_ARN", sns_inbox.topic_arn)
    key = plant("web03-backup", "web03", PATH, "prod")
    event = health_event(key)

    summary = alert_handler.handler(event, context)

    assert summary["source"] == "health" and summary["alerts"] == 1
    (alert,) = hook.json_bodies()
    assert {name: alert[name] for name in ("detector", "alert", "iam_user", "access_key_id", "host", "path", "profile")} == {
        "detector": "exposed", "alert": "canary", "iam_user": "web03-backup", "access_key_id": key, "host": "web03",
        "path": PATH, "profile": "prod"}
    assert alert["exposure"]["event_type"] == "AWS_RISK_CREDENTIALS_EXPOSED"
    assert alert["exposure"]["description"] == event["detail"]["eventDescription"][0]["latestDescription"]
    assert alert["events"][0]["eventSource"] == "health.amazonaws.com" and alert["events"][0]["eventID"] == event["id"]
    (notification,) = sns_inbox.messages()
    assert notification["Subject"] == "Canary AWS key published, AWS says: web03 /home/deploy/.aws/credentials [prod]"
    assert "publicly available online" in notification["Message"]


def test_a_published_key_that_is_no_canary_is_still_reported(aws, hook, context):
    summary = alert_handler.handler(health_event(), context)  # no such key in this account's IAM

    assert summary["alerts"] == 1
    (alert,) = hook.json_bodies()
    assert (alert["detector"], alert["alert"], alert["access_key_id"], alert["host"]) == (
        "exposed", "unknown-iam-user", FIXTURE_KEY, None)


def test_other_health_events_are_ignored(aws, hook, context):
    summary = alert_handler.handler(health_event(eventTypeCode="AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED", service="EC2"), context)

    assert summary["alerts"] == 0 and summary["ignored"] == 1 and hook.requests == []


def test_every_affected_key_gets_its_alert(aws, plant, hook, context):
    first = plant("web03-backup", "web03", PATH, "prod")
    second = plant("web04-backup", "web04", PATH, "prod")
    event = health_event(first, affectedEntities=[{"entityValue": first}, {"entityValue": second}])

    alert_handler.handler(event, context)

    assert sorted(alert["host"] for alert in hook.json_bodies()) == ["web03", "web04"]


def test_the_dead_letter_copy_of_a_health_event_replays(plant, hook, context):
    key = plant("web03-backup", "web03", PATH, "prod")
    message = {"version": "1.0", "requestContext": {"condition": "RetriesExhausted"}, "requestPayload": health_event(key)}

    alert_handler.handler(message, context)

    assert [alert["detector"] for alert in hook.json_bodies()] == ["exposed"]
