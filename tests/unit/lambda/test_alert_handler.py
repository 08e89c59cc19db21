# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The alert Lambda, end to end in-process.

CloudTrail records as AWS writes them (fixtures/*.json), wrapped exactly as CloudWatch Logs delivers
them (gzip + base64 of the subscription document) or as EventBridge does; canary users tagged in
moto's IAM by canary_mapping.mapping_tags; a real HTTP server receiving the webhooks; SNS observed
through an SQS queue subscribed to the topic.  The handler runs through its real entry point.
"""

from __future__ import annotations

import base64
import calendar
import gzip
import hashlib
import hmac
import json
import pathlib
import random
import socket
import subprocess
import sys
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import alert_channels
import alert_handler
import alert_payload

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
REPO = pathlib.Path(__file__).resolve().parents[3]
ACCOUNT = "123456789012"
FIXTURE_USER = "web03-backup"
FIXTURE_KEY = "AKIAVRUVQ3KTEXAMPLE1"
PATH = "/home/deploy/.aws/credentials"
REMINDER = "web03 deploy user - planted by seed_canaries.yml - do not use"
SECRET = "whsec-canary-test-3f9a1c"  # the webhook signing secret of these tests


def record(name, user=FIXTURE_USER, key=FIXTURE_KEY, **fields):
    """A fixture record re-issued for ``user`` and its key ``key``, with a fresh eventID."""
    text = (FIXTURES / f"{name}.json").read_text().replace(FIXTURE_USER, user).replace(FIXTURE_KEY, key)
    result = json.loads(text)
    result["eventID"] = str(uuid.uuid4())
    result.update(fields)
    return result


def _millis(event_time):
    return calendar.timegm(time.strptime(event_time, "%Y-%m-%dT%H:%M:%SZ")) * 1000


def cloudwatch_logs_event(*records, owner=ACCOUNT):
    """What the subscription filter hands to Lambda: ``{"awslogs": {"data": base64(gzip(json))}}``."""
    log_events = []
    for index, item in enumerate(records):
        message = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
        stamp = _millis(item["eventTime"]) if isinstance(item, dict) and isinstance(item.get("eventTime"), str) else 1715678400000
        log_events.append({"id": str(38226153431466318617406520458125468107548301312065421312 + index), "timestamp": stamp, "message": message})
    document = {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": "org-audit-trail",
        "logStream": f"{owner}_CloudTrail_us-east-1",
        "subscriptionFilters": ["iam-user-activity"],
        "logEvents": log_events,
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(document).encode("utf-8"))).decode("ascii")}}


def at(second):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1715678400 + second))


def verify_signature(secret, body, header):
    """The receiver's check, as docs/alerts.md shows it."""
    expected = "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header or "")


@pytest.fixture
def web03(plant):
    return plant("web03-backup", "web03", PATH, "prod", reminder=REMINDER)


@pytest.fixture
def generic_webhook(monkeypatch, aws, webhook):
    monkeypatch.setenv("CANARY_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("CANARY_WEBHOOK_FORMAT", "generic")
    monkeypatch.setenv("CANARY_WEBHOOK_SECRET", SECRET)
    return webhook


# ---------------------------------------------------------------- the canary alert


def test_canary_alert_names_the_placement_on_webhook_and_sns(monkeypatch, web03, generic_webhook, sns_inbox, context, iam_calls):
    monkeypatch.setenv("CANARY_SNS_TOPIC_ARN", sns_inbox.topic_arn)
    records = [
        record("iam_user_sts_get_caller_identity", key=web03, eventTime=at(0)),
        record("iam_user_s3_list_buckets_denied", key=web03, eventTime=at(26)),
    ]

    summary = alert_handler.handler(cloudwatch_logs_event(*records), context)

    assert summary["alerts"] == 1 and summary["undelivered"] == 0
    assert len(generic_webhook.requests) == 1
    _path, headers, body = generic_webhook.requests[0]
    assert verify_signature(SECRET, body, headers.get("X-Canary-Signature"))
    assert not verify_signature(SECRET, body + b" ", headers.get("X-Canary-Signature"))
    alert = json.loads(body)
    assert {key: alert[key] for key in ("detector", "alert", "account_id", "iam_user", "access_key_id", "host", "path", "profile", "reminder",
                                        "planted_at", "count", "first_seen", "last_seen")} == {
        "detector": "cloudtrail", "alert": "canary", "account_id": ACCOUNT, "iam_user": "web03-backup", "access_key_id": web03,
        "host": "web03", "path": PATH, "profile": "prod", "reminder": REMINDER, "planted_at": "2024-05-01T10:00:00Z",
        "count": 2, "first_seen": at(0), "last_seen": at(26),
    }
    assert [(event["eventName"], event["errorCode"]) for event in alert["events"]] == [("GetCallerIdentity", None), ("ListBuckets", "AccessDenied")]
    assert set(alert["events"][0]) == set(alert_payload.EVENT_FIELDS)
    assert alert["events"][1]["eventID"] == records[1]["eventID"]

    (notification,) = sns_inbox.messages()
    assert notification["Subject"] == "Canary AWS key used: web03 /home/deploy/.aws/credentials [prod]"
    assert REMINDER in notification["Message"] and "198.51.100.23" in notification["Message"]
    assert json.loads(notification["Message"].split("as the generic webhook receives it):\n", 1)[1]) == alert
    assert iam_calls["ListUserTags"] == 1


def test_five_hundred_calls_make_one_alert_with_the_true_count(web03, generic_webhook, context):
    records = [record("iam_user_s3_list_buckets_denied", key=web03, eventTime=at(second)) for second in range(500)]
    random.Random(7).shuffle(records)

    summary = alert_handler.handler(cloudwatch_logs_event(*records), context)

    (alert,) = generic_webhook.json_bodies()
    assert summary["alerts"] == 1 and alert["count"] == 500
    assert (alert["first_seen"], alert["last_seen"]) == (at(0), at(499))
    assert [event["eventTime"] for event in alert["events"]] == [at(second) for second in range(alert_payload.DEFAULT_MAX_EVENTS)]


def test_every_key_gets_its_own_alert_and_every_user_one_lookup(monkeypatch, plant, generic_webhook, context, iam_calls):
    first = plant("web01-backup", "web01", PATH, "prod")
    second = alert_handler.iam_client().create_access_key(UserName="web01-backup")["AccessKey"]["AccessKeyId"]
    laptop = plant("alice-laptop-sync", "laptop-alice", "/home/alice/.aws/credentials", "backup")
    records = []
    for second_offset in range(20):
        records.append(record("iam_user_sts_get_caller_identity", user="web01-backup", key=first, eventTime=at(second_offset)))
        records.append(record("iam_user_s3_list_buckets_denied", user="web01-backup", key=second, eventTime=at(second_offset)))
        records.append(record("iam_user_s3_list_buckets_denied", user="alice-laptop-sync", key=laptop, eventTime=at(second_offset)))
        records.append(record("iam_user_sts_get_caller_identity", user="ci-deployer", key="AKIAVRUVQ3KTCIDEPLOY", eventTime=at(second_offset)))

    summary = alert_handler.handler(cloudwatch_logs_event(*records), context)

    alerts = {alert["access_key_id"]: alert for alert in generic_webhook.json_bodies()}
    assert sorted(alerts) == sorted([first, second, laptop, "AKIAVRUVQ3KTCIDEPLOY"])
    assert all(alert["count"] == 20 for alert in alerts.values())
    assert alerts[laptop]["host"] == "laptop-alice" and alerts[second]["host"] == "web01"
    assert iam_calls["ListUserTags"] == 3 == summary["iam_lookups"]

    # A warm container remembers the mappings for a while...
    iam_calls.clear()
    alert_handler.handler(cloudwatch_logs_event(*records), context)
    assert iam_calls["ListUserTags"] == 0
    # ...unless told not to: then once per user and invocation again.
    monkeypatch.setenv("CANARY_MAPPING_CACHE_SECONDS", "0")
    alert_handler.handler(cloudwatch_logs_event(*records), context)
    assert iam_calls["ListUserTags"] == 3


# ---------------------------------------------------------------- who counts


def test_principals_that_are_not_iam_users_are_ignored(web03, generic_webhook, context, iam_calls):
    records = [record("aws_service_sts_assume_role"), record("root_console_login"), record("assumed_role_iam_list_user_tags")]

    summary = alert_handler.handler(cloudwatch_logs_event(*records), context)

    assert summary["records"] == 3 and summary["ignored"] == 3 and summary["alerts"] == 0
    assert generic_webhook.requests == [] and sum(iam_calls.values()) == 0


def test_session_credentials_of_a_canary_alert_as_its_key(web03, generic_webhook, context, iam_calls, capsys, caplog):
    minted = record("iam_user_sts_get_session_token", key=web03, eventTime=at(0))
    in_session = [record("iam_user_session_ec2_describe_denied", eventTime=at(second)) for second in range(1, 6)]

    alert_handler.handler(cloudwatch_logs_event(minted, *in_session), context)

    (alert,) = generic_webhook.json_bodies()
    # Calls with ASIA... credentials count for the key that minted them (known from GetSessionToken).
    assert (alert["alert"], alert["access_key_id"], alert["host"], alert["count"]) == ("canary", web03, "web03", 6)
    assert {event["awsRegion"] for event in alert["events"]} == {"us-east-1", "eu-west-1"}
    assert iam_calls["ListAccessKeys"] == 0
    printed = capsys.readouterr()
    # The session token of the GetSessionToken response is never quoted nor logged.
    for text in (json.dumps(alert), caplog.text, printed.out, printed.err):
        assert "EXAMPLE-SESSION-TOKEN" not in text


def test_session_credentials_without_their_minting_call_name_the_users_only_key(web03, generic_webhook, context, iam_calls):
    federated = [record("federated_user_dynamodb_list_tables_denied", eventTime=at(second)) for second in range(3)]
    plain_session = record("iam_user_session_ec2_describe_denied", eventTime=at(9))

    alert_handler.handler(cloudwatch_logs_event(*federated, plain_session), context)

    (alert,) = generic_webhook.json_bodies()
    assert (alert["iam_user"], alert["access_key_id"], alert["profile"], alert["count"]) == ("web03-backup", web03, "prod", 4)
    assert "203.0.113.77" in alert_payload.source_addresses(alert)
    assert iam_calls["ListUserTags"] == 1 and iam_calls["ListAccessKeys"] == 1


def test_unknown_iam_user_alerts_as_such(plant, generic_webhook, context):
    plant("web05-backup", "web05", PATH, "prod")
    alice = alert_handler.iam_client()
    alice.create_user(UserName="alice.admin")
    key = alice.create_access_key(UserName="alice.admin")["AccessKey"]["AccessKeyId"]

    alert_handler.handler(cloudwatch_logs_event(record("iam_user_s3_list_buckets_denied", user="alice.admin", key=key)), context)

    (alert,) = generic_webhook.json_bodies()
    assert (alert["alert"], alert["iam_user"], alert["access_key_id"], alert["count"]) == ("unknown-iam-user", "alice.admin", key, 1)
    assert [alert[field] for field in ("host", "path", "profile", "reminder", "planted_at")] == [None] * 5
    assert alert_payload.headline(alert) == "Unknown IAM user activity in the canary account: alice.admin"


def test_deleted_user_still_alerts_with_what_the_record_says(generic_webhook, context, iam_calls):
    gone = record("iam_user_s3_list_buckets_denied", user="db02-backup", key="AKIAVRUVQ3KTDELETED1")

    alert_handler.handler(cloudwatch_logs_event(gone), context)

    (alert,) = generic_webhook.json_bodies()
    assert (alert["alert"], alert["iam_user"], alert["access_key_id"]) == ("unknown-iam-user", "db02-backup", "AKIAVRUVQ3KTDELETED1")
    assert alert["events"][0]["eventID"] == gone["eventID"] and iam_calls["ListUserTags"] == 1


def test_user_of_another_account_is_not_looked_up_here(web03, generic_webhook, context, iam_calls):
    # A namesake in another account (organisation trail, cross-account call) is not our canary.
    foreign = record("iam_user_s3_list_buckets_denied", key="AKIAZZZZFOREIGNKEY01")
    foreign["userIdentity"]["accountId"] = "210987654321"
    foreign["userIdentity"]["arn"] = "arn:aws:iam::210987654321:user/web03-backup"

    alert_handler.handler(cloudwatch_logs_event(foreign), context)

    (alert,) = generic_webhook.json_bodies()
    assert (alert["alert"], alert["account_id"], alert["host"]) == ("unknown-iam-user", "210987654321", None)
    assert sum(iam_calls.values()) == 0


# ---------------------------------------------------------------- what arrives


def test_corrupt_records_are_skipped_and_the_rest_alerts(web03, generic_webhook, context, caplog):
    no_identity = record("iam_user_sts_get_caller_identity", key=web03)
    del no_identity["userIdentity"]
    identity_not_object = record("iam_user_sts_get_caller_identity", key=web03, userIdentity="IAMUser")
    name_not_text = record("iam_user_sts_get_caller_identity", key=web03)
    name_not_text["userIdentity"]["userName"] = 42
    good = [record("iam_user_sts_get_caller_identity", key=web03, eventTime=at(0)), record("iam_user_s3_list_buckets_denied", key=web03, eventTime=at(1))]
    batch = [good[0], '{"eventVersion": "1.09", "userIdentity": {"type": "IAMUs', "[1, 2]", no_identity, identity_not_object, name_not_text, good[1]]

    summary = alert_handler.handler(cloudwatch_logs_event(*batch), context)

    assert (summary["records"], summary["skipped"], summary["alerts"]) == (7, 5, 1)
    (alert,) = generic_webhook.json_bodies()
    assert alert["count"] == 2 and alert["host"] == "web03"
    assert caplog.text.count("skipping malformed record") == 5
    assert no_identity["eventID"] in caplog.text


def test_control_message_is_ignored(aws, generic_webhook, context):
    document = json.loads((FIXTURES / "cloudwatch_logs_control_message.json").read_text())
    event = {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(document).encode())).decode()}}

    summary = alert_handler.handler(event, context)

    assert summary["source"] == "cloudwatch-logs-control" and summary["alerts"] == 0
    assert generic_webhook.requests == []


@pytest.mark.parametrize("event", [
    {"Records": [{"eventSource": "aws:s3", "s3": {}}]},
    {"awslogs": {"data": "bm90IGd6aXA="}},
    {"detail-type": "Scheduled Event", "detail": {}},
    ["not", "an", "object"],
], ids=["s3-notification", "awslogs-not-gzip", "other-eventbridge", "list"])
def test_anything_else_is_logged_and_returns(aws, generic_webhook, context, event, caplog):
    summary = alert_handler.handler(event, context)

    assert summary["source"] == "unrecognised" and summary["alerts"] == 0
    assert generic_webhook.requests == [] and caplog.records


def test_eventbridge_event_alerts_too(web03, generic_webhook, context):
    event = json.loads((FIXTURES / "eventbridge_aws_api_call.json").read_text().replace(FIXTURE_KEY, web03))

    summary = alert_handler.handler(event, context)

    assert summary["source"] == "eventbridge"
    (alert,) = generic_webhook.json_bodies()
    assert (alert["host"], alert["access_key_id"], alert["count"], alert["events"][0]["eventName"]) == ("web03", web03, 1, "GetCallerIdentity")


def test_a_dead_letter_message_replays_as_its_event(web03, generic_webhook, context):
    original = cloudwatch_logs_event(record("iam_user_s3_list_buckets_denied", key=web03))
    # The body Lambda's on-failure destination puts in the queue once the retries are spent.
    dead_letter = {
        "version": "1.0",
        "timestamp": "2024-05-14T09:40:12.521Z",
        "requestContext": {
            "requestId": "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
            "functionArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:audit-event-forwarder:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": original,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "1 of 1 alert(s) reached no channel; see the log above", "errorType": "AlertDeliveryFailed"},
    }

    summary = alert_handler.handler(dead_letter, context)

    assert summary["source"] == "cloudwatch-logs" and [alert["host"] for alert in generic_webhook.json_bodies()] == ["web03"]


# ---------------------------------------------------------------- channels that fail


def test_webhook_answering_500_is_retried_then_sns_still_delivers(monkeypatch, web03, generic_webhook, sns_inbox, context, retry_sleeps):
    monkeypatch.setenv("CANARY_SNS_TOPIC_ARN", sns_inbox.topic_arn)
    generic_webhook.statuses = [500] * 10

    summary = alert_handler.handler(cloudwatch_logs_event(record("iam_user_s3_list_buckets_denied", key=web03)), context)

    assert len(generic_webhook.requests) == 3 and retry_sleeps == [0.5, 1.0]
    assert summary["sent"][0]["delivered"] == ["sns:security-alerts"] and summary["undelivered"] == 0
    assert len(sns_inbox.messages()) == 1


def test_webhook_recovering_on_the_third_attempt_counts_as_delivered(web03, generic_webhook, context, retry_sleeps):
    generic_webhook.statuses = [503, 429]

    summary = alert_handler.handler(cloudwatch_logs_event(record("iam_user_s3_list_buckets_denied", key=web03)), context)

    assert len(generic_webhook.requests) == 3 and summary["undelivered"] == 0
    assert all(verify_signature(SECRET, body, headers["X-Canary-Signature"]) for _path, headers, body in generic_webhook.requests)


def test_refused_connection_is_retried_and_a_webhook_down_is_skipped_for_later_alerts(monkeypatch, plant, sns_inbox, context, retry_sleeps):
    closed = _closed_port()
    monkeypatch.setenv("CANARY_WEBHOOK_URL", f"http://127.0.0.1:{closed}/hook")
    monkeypatch.setenv("CANARY_SNS_TOPIC_ARN", sns_inbox.topic_arn)
    keys = [plant(f"web0{index}-backup", f"web0{index}", PATH, "prod") for index in (1, 2)]
    records = [record("iam_user_s3_list_buckets_denied", user=f"web0{index}-backup", key=key) for index, key in zip((1, 2), keys)]

    summary = alert_handler.handler(cloudwatch_logs_event(*records), context)

    # Three attempts for the first alert; the second does not wait for a webhook already known down.
    assert retry_sleeps == [0.5, 1.0]
    assert [item["failed"] for item in summary["sent"]] == [["webhook:generic:127.0.0.1"]] * 2
    assert {message["Subject"] for message in sns_inbox.messages()} == {f"Canary AWS key used: web0{index} {PATH} [prod]" for index in (1, 2)}


def test_every_channel_down_fails_the_invocation_and_logs_the_alert(monkeypatch, web03, webhook, context, retry_sleeps, caplog, capsys):
    monkeypatch.setenv("CANARY_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("CANARY_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("CANARY_SNS_TOPIC_ARN", f"arn:aws:sns:us-east-1:{ACCOUNT}:no-such-topic")
    webhook.statuses = [502] * 10

    with pytest.raises(alert_handler.AlertDeliveryFailed):
        alert_handler.handler(cloudwatch_logs_event(record("iam_user_s3_list_buckets_denied", key=web03)), context)

    assert len(webhook.requests) == 3
    logged = [json.loads(item.getMessage()) for item in caplog.records if item.getMessage().startswith('{"detector"')]
    assert [(alert["host"], alert["access_key_id"]) for alert in logged] == [("web03", web03)]
    printed = capsys.readouterr()
    for text in (caplog.text, printed.out, printed.err):
        assert SECRET not in text and "s3cr3tWebhookPathToken" not in text


@pytest.mark.parametrize("status", [404, 302])
def test_a_refusal_or_a_redirect_is_not_retried(monkeypatch, web03, webhook, context, retry_sleeps, status):
    # urllib would follow a 302 to a POST with a GET without the body and call that a success.
    monkeypatch.setenv("CANARY_WEBHOOK_URL", webhook.url)
    webhook.statuses = [status] * 3

    with pytest.raises(alert_handler.AlertDeliveryFailed):
        alert_handler.handler(cloudwatch_logs_event(record("iam_user_s3_list_buckets_denied", key=web03)), context)

    assert [path for path, _headers, _body in webhook.requests] == ["/services/T0CANARY/B0CANARY/s3cr3tWebhookPathToken"]
    assert retry_sleeps == []


def test_no_retry_outlives_the_invocation(monkeypatch, web03, webhook, context, retry_sleeps):
    monkeypatch.setenv("CANARY_WEBHOOK_URL", webhook.url)
    webhook.statuses = [500] * 10
    context.get_remaining_time_in_millis = lambda: 4000

    with pytest.raises(alert_handler.AlertDeliveryFailed):
        alert_handler.handler(cloudwatch_logs_event(record("iam_user_s3_list_buckets_denied", key=web03)), context)

    assert len(webhook.requests) == 1 and retry_sleeps == []


def test_without_any_channel_the_alert_is_one_json_log_line(web03, context, caplog):
    summary = alert_handler.handler(cloudwatch_logs_event(record("iam_user_s3_list_buckets_denied", key=web03)), context)

    assert summary["sent"][0]["delivered"] == ["log"]
    lines = [item.getMessage() for item in caplog.records if item.getMessage().startswith('{"detector"')]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert json.loads(lines[0])["reminder"] == REMINDER


# ---------------------------------------------------------------- renderings


HOSTILE_AGENT = "<!channel> <https://evil.example/|click here> [docs](https://evil.example/) **urgent** & more"


def test_slack_message_carries_the_facts_and_neutralises_attacker_text(monkeypatch, web03, webhook, context):
    monkeypatch.setenv("CANARY_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("CANARY_WEBHOOK_FORMAT", "slack")
    monkeypatch.setenv("CANARY_WEBHOOK_SECRET", SECRET)

    alert_handler.handler(cloudwatch_logs_event(record("iam_user_s3_list_buckets_denied", key=web03, userAgent=HOSTILE_AGENT)), context)

    (_path, headers, body) = webhook.requests[0]
    message = json.loads(body)
    assert "X-Canary-Signature" not in headers
    assert message["text"].startswith("Canary AWS key used: web03 /home/deploy/.aws/credentials [prod]")
    assert message["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "Canary AWS key used: web03 /home/deploy/.aws/credentials [prod]"}}
    fields = {field["text"].split("\n")[0]: field["text"].split("\n", 1)[1] for field in message["blocks"][2]["fields"]}
    assert (fields["*Host*"], fields["*Profile*"], fields["*Reminder*"], fields["*Access key*"]) == ("web03", "prod", REMINDER, web03)
    mrkdwn = json.dumps(message["blocks"])
    assert "<!channel>" not in mrkdwn and "<https://evil" not in mrkdwn and "&lt;!channel&gt;" in mrkdwn


def test_teams_card_carries_the_facts_as_plain_text_runs(monkeypatch, web03, webhook, context):
    monkeypatch.setenv("CANARY_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("CANARY_WEBHOOK_FORMAT", "teams")

    alert_handler.handler(cloudwatch_logs_event(record("iam_user_s3_list_buckets_denied", key=web03, userAgent=HOSTILE_AGENT)), context)

    message = webhook.json_bodies()[0]
    (attachment,) = message["attachments"]
    card = attachment["content"]
    assert (message["type"], attachment["contentType"], card["type"]) == ("message", "application/vnd.microsoft.card.adaptive", "AdaptiveCard")
    # Only RichTextBlock/TextRun: the one Adaptive Card text that is never read as Markdown.
    assert {element["type"] for element in card["body"]} == {"RichTextBlock"}
    runs = [run["text"] for element in card["body"] for run in element["inlines"]]
    assert "web03" in runs and REMINDER in runs and any(HOSTILE_AGENT in text for text in runs)


def test_sns_subject_stays_readable_within_the_limit():
    alert = alert_payload.build_alert("cloudtrail", ACCOUNT, "web03-backup", FIXTURE_KEY,
                                      {"host": "web03", "path": "/srv/" + "deep/" * 40 + "credentials", "profile": "prod"},
                                      alert_payload.EventGroup())
    subject = alert_channels.sns_subject(alert)
    assert len(subject) < 100 and subject.startswith("Canary AWS key used: web03 ...") and subject.endswith("/credentials [prod]")
    alert["host"] = "h\u00f6st\nname"
    assert alert_channels.sns_subject(alert).isascii() and "\n" not in alert_channels.sns_subject(alert)


# ---------------------------------------------------------------- pieces


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=8)
IDENTITY_KEYS = st.sampled_from(["type", "userName", "arn", "accountId", "accessKeyId", "sessionContext", "sessionIssuer"])
SHAPED = st.dictionaries(
    st.sampled_from(["userIdentity", "eventTime", "eventName", "responseElements", "recipientAccountId", "errorCode"]),
    JSON | st.dictionaries(IDENTITY_KEYS, JSON | st.sampled_from(["IAMUser", "FederatedUser", "web03-backup"]), max_size=5),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(SHAPED | JSON | st.text(max_size=20), max_size=6))
def test_no_record_shape_stops_the_batch(records):
    items = [(item, None) for item in records] + [(record("iam_user_sts_get_caller_identity"), None)]

    users, _parents, counters = alert_handler.collect(items, ACCOUNT, 5)

    grouped = sum(group.count for calls in users.values() for group in calls.by_key.values())
    assert counters["records"] == len(items) == counters["ignored"] + counters["skipped"] + grouped
    assert (ACCOUNT, FIXTURE_USER) in users


def test_mapping_cache_is_bounded_and_expires():
    now = [0.0]
    cache = alert_handler.MappingCache(max_users=3, clock=lambda: now[0])
    for index in range(5):
        cache.put(f"user{index}", ({"host": f"h{index}"},), ttl=60)
    assert len(cache) == 3 and cache.get("user0", 60) is None and cache.get("user4", 60) == ({"host": "h4"},)
    now[0] = 61.0
    assert cache.get("user4", 60) is None


def test_the_package_imports_flat_from_its_zip(tmp_path):
    # As the role packages it: every lambda/*.py and every shared file (roles/detection/vars/main.yml).
    sources = [str(path) for path in sorted((REPO / "lambda").glob("*.py")) + sorted((REPO / "plugins/module_utils/_lambda_shared").glob("[!_]*.py"))]
    package = tmp_path / "detection-lambda.zip"
    subprocess.run([sys.executable, str(REPO / "roles/detection/files/lambda_zip.py"), "--output", str(package), *sources],
                   check=True, capture_output=True)
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import alert_handler; "
             "print(alert_handler.handler({'awslogs': {'data': sys.argv[2]}}, None)['source'])")
    control = cloudwatch_logs_event()["awslogs"]["data"]
    done = subprocess.run([sys.executable, "-I", "-c", probe, str(package), control], check=True, capture_output=True, text=True)
    assert done.stdout.strip() == "cloudwatch-logs"


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
