# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local AWS for the tamper and exposed-key alerts: changes to canary users recorded whoever makes
them, CloudTrail's events and AWS Health events routed through EventBridge rules to the real alert
Lambda (run from lambda/), and AWS's two wordings of a denial."""

from __future__ import annotations

import io
import json
import zipfile

import boto3
import botocore.exceptions
import pytest

from tools.alert_sink import AlertSink
from tools.local_aws import eventbridge
from tools.local_aws.cloudtrail import _query_parameters
from tools.local_aws.server import LocalAWS

ACCOUNT = "123456789012"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
TRAIL = "org-audit-trail"
FUNCTION = "audit-event-forwarder"
FUNCTION_ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{FUNCTION}"
TAMPER_RULE = "canary-user-changes"
HEALTH_RULE = "canary-key-exposed"
TAMPER_PATTERN = {"source": ["aws.iam"], "detail-type": ["AWS API Call via CloudTrail"],
                  "detail": {"eventSource": ["iam.amazonaws.com"],
                             "eventName": ["AttachUserPolicy", "PutUserPolicy", "CreateLoginProfile", "CreateAccessKey",
                                           "UpdateAccessKey", "DeleteAccessKey", "DeleteUser", "TagUser", "UntagUser"]}}
HEALTH_PATTERN = {"source": ["aws.health"], "detail-type": ["AWS Health Event"],
                  "detail": {"eventTypeCode": ["AWS_RISK_CREDENTIALS_EXPOSED"]}}
PATH = "/home/deploy/.aws/credentials"
MAPPING = {"canarykeys:managed": "true", "canarykeys:host": "web03", "canarykeys:path": PATH, "canarykeys:profile": "prod"}
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
DENY_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]})


@pytest.fixture(scope="module")
def sink():
    with AlertSink() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def recording():
    with LocalAWS(record=True, delivery_interval=3600) as aws:
        yield aws


@pytest.fixture
def aws(recording, sink):  # pylint: disable=redefined-outer-name
    recording.reset()
    sink.clear()
    return recording


def deploy(aws, sink, trusted=ROOT, permitted=True):  # pylint: disable=redefined-outer-name
    """A trail, the alert Lambda (its code is run from lambda/) and the two EventBridge rules."""
    aws.client("s3").create_bucket(Bucket=f"{TRAIL}-{ACCOUNT}")
    trail = aws.client("cloudtrail")
    trail.create_trail(Name=TRAIL, S3BucketName=f"{TRAIL}-{ACCOUNT}", IsMultiRegionTrail=True, IncludeGlobalServiceEvents=True)
    trail.start_logging(Name=TRAIL)
    role = aws.client("iam").create_role(RoleName=FUNCTION, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("alert_handler.py", "def handler(event, context):\n    return None\n")
    variables = {"CANARY_WEBHOOK_URL": sink.url("/generic")}
    if trusted:
        variables["CANARY_TRUSTED_PRINCIPALS"] = trusted
    functions = aws.client("lambda")
    functions.create_function(FunctionName=FUNCTION, Runtime="python3.12", Role=role["Role"]["Arn"],
                              Handler="alert_handler.handler", Code={"ZipFile": package.getvalue()},
                              Environment={"Variables": variables})
    events = aws.client("events")
    for name, pattern in ((TAMPER_RULE, TAMPER_PATTERN), (HEALTH_RULE, HEALTH_PATTERN)):
        rule_arn = events.put_rule(Name=name, EventPattern=json.dumps(pattern), State="ENABLED")["RuleArn"]
        events.put_targets(Rule=name, Targets=[{"Id": "alert", "Arn": FUNCTION_ARN}])
        if permitted:
            functions.add_permission(FunctionName=FUNCTION, StatementId=name, Action="lambda:InvokeFunction",
                                     Principal="events.amazonaws.com", SourceArn=rule_arn)


def plant(aws, name="web03-backup", policy=None):  # pylint: disable=redefined-outer-name
    """A canary as the seed leaves it (no policy by default), made by the operator."""
    iam = aws.client("iam")
    iam.create_user(UserName=name, Tags=[{"Key": key, "Value": value} for key, value in MAPPING.items()])
    if policy:
        iam.put_user_policy(UserName=name, PolicyName="deny-all", PolicyDocument=policy)
    return iam.create_access_key(UserName=name)["AccessKey"]


def client_of(aws, service, key):  # pylint: disable=redefined-outer-name
    return boto3.client(service, endpoint_url=aws.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])


def admin(aws):  # pylint: disable=redefined-outer-name
    """An IAM user with every permission: the attacker's stolen administrator key."""
    iam = aws.client("iam")
    iam.create_user(UserName="ops-admin")
    iam.put_user_policy(UserName="ops-admin", PolicyName="admin", PolicyDocument=ALLOW_ALL)
    return client_of(aws, "iam", iam.create_access_key(UserName="ops-admin")["AccessKey"])


def routed_alerts(aws):  # pylint: disable=redefined-outer-name
    """What the alert Lambda returned for each event EventBridge routed to it (errors raise)."""
    entries = aws.recorder.routed()
    assert [entry["error"] for entry in entries if entry["error"]] == []
    return [sent for entry in entries for sent in entry["result"]["sent"]]


# ---------------------------------------------------------------- AWS's two denials


@pytest.mark.parametrize("policy, reason", [
    (None, "because no identity-based policy allows the {action} action"),
    (DENY_ALL, "with an explicit deny in an identity-based policy"),
])
def test_a_planted_key_is_denied_in_awss_words(aws, policy, reason):  # pylint: disable=redefined-outer-name
    key = plant(aws, policy=policy)
    user = f"arn:aws:iam::{ACCOUNT}:user/web03-backup"

    iam_error = pytest.raises(botocore.exceptions.ClientError, client_of(aws, "iam", key).list_users).value.response["Error"]
    sqs_error = pytest.raises(botocore.exceptions.ClientError, client_of(aws, "sqs", key).list_queues).value.response["Error"]

    assert iam_error["Code"] == "AccessDenied"
    assert iam_error["Message"] == (f"User: {user} is not authorized to perform: iam:ListUsers on resource: "
                                    f"arn:aws:iam::{ACCOUNT}:user/ " + reason.format(action="iam:ListUsers"))
    assert sqs_error["Message"] == f"User: {user} is not authorized to perform: sqs:ListQueues " + reason.format(action="sqs:ListQueues")


def test_the_operator_is_the_root_user_for_get_caller_identity(aws):  # pylint: disable=redefined-outer-name
    assert aws.client("sts").get_caller_identity()["Arn"] == ROOT


# ---------------------------------------------------------------- tamper


def test_the_collections_own_changes_are_recorded_as_roots_and_make_no_alert(aws, sink):  # pylint: disable=redefined-outer-name
    deploy(aws, sink)
    key = plant(aws)
    iam = aws.client("iam")
    iam.create_user(UserName="not-a-canary")  # the operator's other calls are not recorded
    iam.tag_user(UserName="web03-backup", Tags=[{"Key": "canarykeys:generation", "Value": "2"}])
    iam.delete_access_key(UserName="web03-backup", AccessKeyId=key["AccessKeyId"])
    iam.untag_user(UserName="web03-backup", TagKeys=list(MAPPING))
    iam.delete_user(UserName="web03-backup")

    aws.recorder.flush()

    records = aws.recorder.records()
    assert [record["eventName"] for record in records] == ["CreateUser", "CreateAccessKey", "TagUser", "DeleteAccessKey",
                                                           "UntagUser", "DeleteUser"]
    assert {json.dumps(record["userIdentity"], sort_keys=True) for record in records} == {json.dumps(
        {"type": "Root", "principalId": ACCOUNT, "arn": ROOT, "accountId": ACCOUNT, "accessKeyId": "testing"}, sort_keys=True)}
    assert records[0]["requestParameters"]["tags"][0] == {"key": "canarykeys:managed", "value": "true"}
    assert records[4]["requestParameters"]["tagKeys"] == list(MAPPING)
    # CreateUser is no change the tamper rule selects; the five others reach the Lambda, which trusts root.
    assert len(aws.recorder.routed()) == 5 and routed_alerts(aws) == [] and sink.received() == []


def test_an_administrators_change_to_a_canary_is_one_tamper_alert(aws, sink):  # pylint: disable=redefined-outer-name
    deploy(aws, sink)
    plant(aws)
    attacker = admin(aws)
    # moto does not load AWS's managed policies: the attacker brings its own.
    policy = attacker.create_policy(PolicyName="ops-full", PolicyDocument=ALLOW_ALL)["Policy"]["Arn"]
    attacker.attach_user_policy(UserName="web03-backup", PolicyArn=policy)
    attacker.create_login_profile(UserName="web03-backup", Password="Winter2024!Winter2024!")

    aws.recorder.flush()

    changes = [record for record in aws.recorder.records() if record["eventName"] in ("AttachUserPolicy", "CreateLoginProfile")]
    assert [record["userIdentity"]["arn"] for record in changes] == [f"arn:aws:iam::{ACCOUNT}:user/ops-admin"] * 2
    assert "password" not in json.dumps(changes).lower().replace("passwordresetrequired", "")
    alerts = [item.alert for item in sink.received()]
    assert [(alert["detector"], alert["host"], alert["path"], alert["profile"], alert["change"]["call"]) for alert in alerts] == [
        ("tamper", "web03", PATH, "prod", "iam:AttachUserPolicy"), ("tamper", "web03", PATH, "prod", "iam:CreateLoginProfile")]
    assert alerts[0]["change"]["principal_arn"] == f"arn:aws:iam::{ACCOUNT}:user/ops-admin"
    assert alerts[0]["change"]["source_ip"] == "127.0.0.1"
    assert alerts[0]["change"]["request_parameters"]["policyArn"] == policy


def test_without_trusted_principals_the_operators_change_alerts(aws, sink):  # pylint: disable=redefined-outer-name
    deploy(aws, sink, trusted="")
    plant(aws)
    aws.recorder.flush()
    sink.clear()

    aws.client("iam").put_user_policy(UserName="web03-backup", PolicyName="read", PolicyDocument=ALLOW_ALL)
    aws.recorder.flush()

    assert [(item.alert["detector"], item.alert["change"]["principal_arn"]) for item in sink.received()] == [("tamper", ROOT)]


def test_a_rule_without_the_functions_permission_invokes_nothing(aws, sink):  # pylint: disable=redefined-outer-name
    deploy(aws, sink, trusted="", permitted=False)
    plant(aws)

    aws.recorder.flush()

    assert aws.recorder.routed() and all("does not let events.amazonaws.com" in entry["error"] for entry in aws.recorder.routed())
    assert sink.received() == []


def test_without_a_logging_trail_eventbridge_gets_no_cloudtrail_event(aws, sink):  # pylint: disable=redefined-outer-name
    deploy(aws, sink, trusted="")
    aws.client("cloudtrail").stop_logging(Name=TRAIL)
    plant(aws)

    aws.recorder.flush()

    assert aws.recorder.records() and aws.recorder.routed() == []


# ---------------------------------------------------------------- AWS Health


def test_an_injected_health_event_alerts_with_the_placement(aws, sink):  # pylint: disable=redefined-outer-name
    deploy(aws, sink)
    key = plant(aws)
    aws.recorder.flush()

    entries = aws.recorder.put_events(eventbridge.health_event(ACCOUNT, key["AccessKeyId"], user_name="web03-backup"))

    assert [entry["rule"] for entry in entries] == [HEALTH_RULE]
    (alert,) = [item.alert for item in sink.received()]
    assert (alert["detector"], alert["access_key_id"], alert["host"], alert["path"]) == ("exposed", key["AccessKeyId"], "web03", PATH)
    assert "is publicly available online" in alert["exposure"]["description"]


def test_other_health_events_reach_no_rule(aws, sink):  # pylint: disable=redefined-outer-name
    deploy(aws, sink)

    assert aws.recorder.put_events(eventbridge.health_event(ACCOUNT, "AKIAEXAMPLE", event_type="AWS_EC2_OPERATIONAL_ISSUE")) == []


# ---------------------------------------------------------------- pieces


@pytest.mark.parametrize("state, read_only, received", [
    ("ENABLED", False, True), ("ENABLED", True, False), ("ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS", True, True),
    ("DISABLED", False, False),
])
def test_rule_states_and_read_only_calls(state, read_only, received):
    record = {"eventSource": "iam.amazonaws.com", "eventName": "ListUsers", "readOnly": read_only, "recipientAccountId": ACCOUNT,
              "eventTime": "2024-05-14T10:00:00Z", "awsRegion": "us-east-1", "userIdentity": {"type": "IAMUser"}}
    rule = {"State": state, "EventPattern": json.dumps({"source": ["aws.iam"], "detail": {"userIdentity": {"type": ["IAMUser"]}}})}

    assert eventbridge.rule_receives(rule, eventbridge.cloudtrail_event(record)) is received


def test_query_member_lists_take_cloudtrails_shape():
    assert _query_parameters({"Action": "TagUser", "Version": "2010-05-08", "UserName": "u",
                              "Tags.member.2.Key": "b", "Tags.member.2.Value": "2", "Tags.member.1.Key": "a",
                              "Tags.member.1.Value": "1", "Password": "never", "TagKeys.member.1": "k"}) == {
        "userName": "u", "tags": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}], "tagKeys": ["k"]}
