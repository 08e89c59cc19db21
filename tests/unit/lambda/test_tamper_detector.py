# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tamper alert, through ``alert_handler.handler``: EventBridge ``AWS API Call via CloudTrail``
events of IAM (fixtures/eventbridge_iam_*.json, shaped as AWS delivers them) against canary users
planted in moto's IAM, delivered to a real HTTP webhook and a real SNS topic."""

from __future__ import annotations

import copy
import json
import pathlib

import boto3
import pytest

import alert_handler

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
PATH = "/home/deploy/.aws/credentials"
ADMIN_SESSION = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_AdministratorAccess_5f1e2d3c4b5a6978/mira.k@example.com"
SSO_ROLE = ("arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/"
            "AWSReservedSSO_AdministratorAccess_5f1e2d3c4b5a6978")


def event(name, key=None, **detail):
    """A fixture event, with the canary's real key id in place of the fixture's, and ``detail`` fields set."""
    text = (FIXTURES / f"eventbridge_iam_{name}.json").read_text()
    if key:
        text = text.replace("AKIAVRUVQ3KTEXAMPLE1", key)
    result = json.loads(text)
    result["detail"].update(detail)
    return result


@pytest.fixture
def web03(plant):
    return plant("web03-backup", "web03", PATH, "prod", reminder="web03 deploy user")


def test_a_policy_attached_by_an_admin_session_is_one_tamper_alert(monkeypatch, web03, hook, sns_inbox, context):
    monkeypatch.setenv("CANARY_SNS_TOPIC_ARN", sns_inbox.topic_arn)
    monkeypatch.setenv("CANARY_TRUSTED_PRINCIPALS", "arn:aws:iam::123456789012:role/canarykeys-controller")

    summary = alert_handler.handler(event("attach_user_policy"), context)

    assert summary["alerts"] == 1 and summary["sent"][0]["detector"] == "tamper"
    (alert,) = hook.json_bodies()
    assert {key: alert[key] for key in ("detector", "alert", "iam_user", "host", "path", "profile", "count", "first_seen")} == {
        "detector": "tamper", "alert": "canary", "iam_user": "web03-backup", "host": "web03", "path": PATH,
        "profile": "prod", "count": 1, "first_seen": "2024-05-14T10:04:37Z"}
    assert alert["change"] == {
        "call": "iam:AttachUserPolicy", "principal_arn": ADMIN_SESSION, "principal_type": "AssumedRole",
        "session_issuer_arn": SSO_ROLE, "invoked_by": None, "source_ip": "203.0.113.77", "by_aws": False,
        "quarantine_policy": None,
        "request_parameters": {"userName": "web03-backup", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}}
    assert alert["events"][0]["eventName"] == "AttachUserPolicy" and alert["events"][0]["sourceIPAddress"] == "203.0.113.77"
    (notification,) = sns_inbox.messages()
    assert notification["Subject"] == "Canary AWS user tampered with: web03 /home/deploy/.aws/credentials [prod]"
    assert f"Changed by: {ADMIN_SESSION}" in " ".join(notification["Message"].split())
    assert "AdministratorAccess" in notification["Message"]


@pytest.mark.parametrize("patterns", [
    ADMIN_SESSION,                                                          # the session itself
    SSO_ROLE,                                                               # the role behind the session
    "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Administrator*/*, arn:aws:iam::123456789012:role/other",
])
def test_the_collections_own_principal_makes_no_alert(monkeypatch, web03, hook, context, patterns):
    monkeypatch.setenv("CANARY_TRUSTED_PRINCIPALS", patterns)

    summary = alert_handler.handler(event("attach_user_policy"), context)

    assert summary["alerts"] == 0 and summary["trusted"] == 1
    assert hook.requests == []


def test_aws_quarantining_the_key_is_reported_even_with_every_principal_trusted(monkeypatch, web03, hook, context):
    monkeypatch.setenv("CANARY_TRUSTED_PRINCIPALS", "*")

    summary = alert_handler.handler(event("attach_quarantine_policy"), context)

    assert summary["alerts"] == 1
    (alert,) = hook.json_bodies()
    assert alert["detector"] == "tamper" and alert["host"] == "web03"
    assert alert["change"]["by_aws"] is True
    assert alert["change"]["quarantine_policy"] == "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3"


@pytest.mark.parametrize("name", ["create_login_profile", "create_access_key", "update_access_key", "untag_user"])
def test_credential_and_mapping_changes_alert(web03, hook, context, name):
    summary = alert_handler.handler(event(name, key=web03), context)

    assert summary["alerts"] == 1
    (alert,) = hook.json_bodies()
    assert (alert["detector"], alert["host"], alert["profile"]) == ("tamper", "web03", "prod")
    assert alert["change"]["call"] == "iam:" + event(name)["detail"]["eventName"]
    if name == "update_access_key":
        assert alert["access_key_id"] == web03 and alert["change"]["request_parameters"]["status"] == "Inactive"
    if name == "create_access_key":
        assert alert["access_key_id"] == "AKIAVRUVQ3KTMEXAMPLE6"


def test_a_console_password_is_never_quoted(web03, hook, context):
    changed = event("create_login_profile")
    changed["detail"]["requestParameters"]["password"] = "Hunter2-NotForAnyLog"

    alert_handler.handler(changed, context)

    (_path, _headers, body) = hook.requests[0]
    assert b"Hunter2" not in body
    assert json.loads(body)["change"]["request_parameters"]["password"] == "(not quoted)"


def test_mapping_tags_removed_still_name_the_placement_read_before(aws, plant, hook, context):
    key = plant("web03-backup", "web03", PATH, "prod")
    alert_handler.handler(event("update_access_key", key=key), context)  # the mapping is read (and kept) here
    boto3.client("iam").untag_user(UserName="web03-backup", TagKeys=["canarykeys:host", "canarykeys:path"])

    alert_handler.handler(event("untag_user"), context)

    assert [(alert["change"]["call"], alert["host"], alert["path"]) for alert in hook.json_bodies()] == [
        ("iam:UpdateAccessKey", "web03", PATH), ("iam:UntagUser", "web03", PATH)]


def test_a_deleted_canary_is_named_from_the_mapping_read_earlier(aws, plant, hook, context):
    key = plant("web03-backup", "web03", PATH, "prod")
    iam = boto3.client("iam")
    alert_handler.handler(event("update_access_key", key=key), context)
    iam.delete_access_key(UserName="web03-backup", AccessKeyId=key)
    for tag in iam.list_user_tags(UserName="web03-backup")["Tags"]:
        iam.untag_user(UserName="web03-backup", TagKeys=[tag["Key"]])
    iam.delete_user(UserName="web03-backup")

    summary = alert_handler.handler(event("delete_user"), context)

    assert summary["alerts"] == 1
    alert = hook.json_bodies()[-1]
    assert (alert["detector"], alert["alert"], alert["host"]) == ("tamper", "canary", "web03")
    assert alert["change"]["principal_arn"] == "arn:aws:iam::123456789012:user/ops-admin"


def test_a_deleted_user_nobody_remembers_is_reported_as_unknown(aws, hook, context):
    summary = alert_handler.handler(event("delete_user"), context)

    assert summary["alerts"] == 1
    (alert,) = hook.json_bodies()
    assert (alert["detector"], alert["alert"], alert["host"]) == ("tamper", "unknown-iam-user", None)


def test_changes_to_users_that_are_no_canary_are_ignored(aws, plant, hook, context):
    boto3.client("iam").create_user(UserName="web03-backup")  # a real user, no mapping tags

    summary = alert_handler.handler(event("attach_user_policy"), context)

    assert summary["alerts"] == 0 and hook.requests == []


def test_a_change_by_an_unknown_iam_user_on_another_user_is_that_users_activity(aws, plant, hook, context):
    boto3.client("iam").create_user(UserName="web03-backup")

    alert_handler.handler(event("create_login_profile"), context)

    (alert,) = hook.json_bodies()
    assert (alert["detector"], alert["alert"], alert["iam_user"]) == ("cloudtrail", "unknown-iam-user", "ops-admin")


@pytest.mark.parametrize("change", [
    {"errorCode": "AccessDenied", "errorMessage": "User: ... is not authorized to perform: iam:AttachUserPolicy"},
    {"eventName": "TagUser", "requestParameters": {"userName": "web03-backup", "tags": [{"key": "team", "value": "ops"}]}},
    {"eventName": "TagUser", "requestParameters": {"userName": "web03-backup",
                                                   "tags": [{"key": "canarykeys:last-used-reported", "value": "2024-05-14T10:00:00Z"}]}},
    {"eventName": "ListAttachedUserPolicies"},
])
def test_what_changes_nothing_of_the_canary_makes_no_tamper_alert(web03, hook, context, change):
    changed = event("attach_user_policy")
    changed["detail"].update(copy.deepcopy(change))

    alert_handler.handler(changed, context)

    assert [alert["detector"] for alert in hook.json_bodies()] == []


def test_tag_changes_of_the_mapping_alert(web03, hook, context):
    changed = event("attach_user_policy", eventName="TagUser",
                    requestParameters={"userName": "web03-backup", "tags": [{"key": "canarykeys:host", "value": "web99"}]})

    alert_handler.handler(changed, context)

    (alert,) = hook.json_bodies()
    assert alert["change"]["call"] == "iam:TagUser"


def test_a_trusted_principal_that_is_a_canary_still_alerts_on_its_use(monkeypatch, web03, hook, context):
    monkeypatch.setenv("CANARY_TRUSTED_PRINCIPALS", "arn:aws:iam::123456789012:user/*")
    use = json.loads((FIXTURES / "eventbridge_aws_api_call.json").read_text().replace("AKIAVRUVQ3KTEXAMPLE1", web03))

    alert_handler.handler(use, context)
    alert_handler.handler(event("create_login_profile"), context)  # ops-admin, trusted by the same pattern

    assert [(alert["detector"], alert["iam_user"]) for alert in hook.json_bodies()] == [("cloudtrail", "web03-backup")]


def test_slack_and_teams_show_who_changed_what(monkeypatch, web03, webhook, context):
    monkeypatch.setenv("CANARY_WEBHOOK_URL", webhook.url)
    for fmt in ("slack", "teams"):
        monkeypatch.setenv("CANARY_WEBHOOK_FORMAT", fmt)
        alert_handler.handler(event("attach_user_policy"), context)
    slack, teams = (body.decode() for _path, _headers, body in webhook.requests)
    assert ADMIN_SESSION in slack and "iam:AttachUserPolicy" in slack and "tampered" in slack
    assert ADMIN_SESSION in teams and "Changed by" in teams


def test_a_renamed_canary_is_found_under_its_new_name(web03, hook, context):
    iam = boto3.client("iam")
    tags = iam.list_user_tags(UserName="web03-backup")["Tags"]
    iam.update_user(UserName="web03-backup", NewUserName="svc-backup")
    # AWS keeps a user's tags across a rename; moto drops them, so they are put back as AWS has them.
    iam.tag_user(UserName="svc-backup", Tags=tags)
    renamed = event("attach_user_policy", eventName="UpdateUser",
                    requestParameters={"userName": "web03-backup", "newUserName": "svc-backup"})

    alert_handler.handler(renamed, context)

    (alert,) = hook.json_bodies()
    assert (alert["change"]["call"], alert["host"], alert["iam_user"]) == ("iam:UpdateUser", "web03", "web03-backup")
