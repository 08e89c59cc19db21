# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local AWS with several accounts: moto gives every account id its own IAM; the recorder writes a
call signed by a key of account B into B's trail and log group, delivers it to B's subscription filter
and B's EventBridge rules, and runs B's functions in-process as the root user of B."""

from __future__ import annotations

import io
import json
import textwrap
import zipfile

import boto3
import pytest

from tools.local_aws import eventbridge
from tools.local_aws.server import LocalAWS

HOME = "123456789012"
OTHER = "111111111111"
TRAIL = "org-audit-trail"
FUNCTION = "audit-event-forwarder"
ROLE = "canarykeys-deployer"

# What the function saw: the account its own credentials act in, that account's IAM users, its settings.
PROBE = textwrap.dedent('''\
    import os

    import boto3


    def handler(event, context):
        return {"account": boto3.client("sts").get_caller_identity()["Account"],
                "users": sorted(user["UserName"] for user in boto3.client("iam").list_users()["Users"]),
                "name": os.environ.get("CANARY_ACCOUNT_NAME"), "function": context.invoked_function_arn,
                "event": sorted(event)}
''')


def probe_package(directory):
    """A Lambda source directory holding the probe only (every function of these tests runs it)."""
    (directory / "probe.py").write_text(PROBE, encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    with LocalAWS(record=True, delivery_interval=3600, lambda_dir=probe_package(tmp_path_factory.mktemp("lambda"))) as local_aws:
        yield local_aws


@pytest.fixture
def aws(recording):  # pylint: disable=redefined-outer-name
    """The local AWS with no resource and no record in any account."""
    recording.reset()
    return recording


def deployer(aws, account):  # pylint: disable=redefined-outer-name
    """A session of the role a controller assumes in ``account`` (made there by its root user, as an
    account's administrator would), through the proxy."""
    iam = aws.client("iam", account_id=account)
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{HOME}:root"}, "Action": "sts:AssumeRole"}]}))
    iam.put_role_policy(RoleName=ROLE, PolicyName="administer", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    credentials = aws.client("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/{ROLE}", RoleSessionName="canarykeys")["Credentials"]
    return boto3.Session(aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                         aws_session_token=credentials["SessionToken"], region_name="us-east-1")


def deploy(aws, session, account, name):  # pylint: disable=redefined-outer-name
    """The trail -> log group -> subscription -> function path of the detection role, in ``account``."""
    def client(service):
        return session.client(service, endpoint_url=aws.endpoint_url)

    client("logs").create_log_group(logGroupName=TRAIL)
    client("s3").create_bucket(Bucket=f"{TRAIL}-{account}")
    trail = client("cloudtrail")
    trail.create_trail(Name=TRAIL, S3BucketName=f"{TRAIL}-{account}", IsMultiRegionTrail=True, IncludeGlobalServiceEvents=True,
                       CloudWatchLogsLogGroupArn=f"arn:aws:logs:us-east-1:{account}:log-group:{TRAIL}:*",
                       CloudWatchLogsRoleArn=f"arn:aws:iam::{account}:role/{TRAIL}-delivery")
    trail.start_logging(Name=TRAIL)
    role = client("iam").create_role(RoleName=FUNCTION, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("probe.py", "def handler(event, context):\n    return None\n")
    function_arn = client("lambda").create_function(
        FunctionName=FUNCTION, Runtime="python3.12", Role=role["Role"]["Arn"], Handler="probe.handler",
        Code={"ZipFile": package.getvalue()}, Environment={"Variables": {"CANARY_ACCOUNT_NAME": name}})["FunctionArn"]
    client("logs").put_subscription_filter(logGroupName=TRAIL, filterName="iam-user-activity",
                                           filterPattern='{ $.userIdentity.type = "IAMUser" }', destinationArn=function_arn)
    rule_arn = client("events").put_rule(Name="iam-user-changes", EventPattern=json.dumps({"source": ["aws.health"]}))["RuleArn"]
    schedule_arn = client("events").put_rule(Name="audit-key-last-used-schedule", ScheduleExpression="rate(15 minutes)")["RuleArn"]
    for rule, arn in (("iam-user-changes", rule_arn), ("audit-key-last-used-schedule", schedule_arn)):
        client("events").put_targets(Rule=rule, Targets=[{"Id": "probe", "Arn": function_arn}])
        client("lambda").add_permission(FunctionName=FUNCTION, StatementId=rule, Action="lambda:InvokeFunction",
                                        Principal="events.amazonaws.com", SourceArn=arn, SourceAccount=account)
    return function_arn


def test_each_account_has_its_own_iam_and_its_operator_is_its_root(aws):  # pylint: disable=redefined-outer-name
    aws.client("iam", account_id=OTHER).create_user(UserName="only-in-other")

    assert aws.client("sts", account_id=OTHER).get_caller_identity()["Arn"] == f"arn:aws:iam::{OTHER}:root"
    assert aws.client("sts").get_caller_identity()["Arn"] == f"arn:aws:iam::{HOME}:root"
    assert [user["UserName"] for user in aws.client("iam", account_id=OTHER).list_users()["Users"]] == ["only-in-other"]
    assert aws.client("iam").list_users()["Users"] == []
    assert aws.operator_account(aws.operator_key(OTHER)) == OTHER and aws.operator_account("AKIAIOSFODNN7EXAMPLE") is None


def test_a_key_of_another_account_is_recorded_delivered_and_read_there(aws):  # pylint: disable=redefined-outer-name
    home_function = deploy(aws, deployer(aws, HOME), HOME, "canary-home")
    session = deployer(aws, OTHER)
    other_function = deploy(aws, session, OTHER, "canary-other")
    iam = session.client("iam", endpoint_url=aws.endpoint_url)
    iam.create_user(UserName="web01-backup", Tags=[{"Key": "canarykeys:managed", "Value": "true"}])
    key = iam.create_access_key(UserName="web01-backup")["AccessKey"]
    canary = boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], region_name="us-east-1")
    aws.recorder.flush()
    assert aws.recorder.accounts() == [HOME, OTHER]

    assert canary.client("sts", endpoint_url=aws.endpoint_url).get_caller_identity()["Account"] == OTHER
    assert aws.recorder.flush() == 1

    [record] = aws.recorder.records()
    assert (record["recipientAccountId"], record["userIdentity"]["accountId"], record["userIdentity"]["userName"]) == (
        OTHER, OTHER, "web01-backup")
    [written] = aws.recorder.written()
    assert (written["owner"], written["logStream"]) == (OTHER, f"{OTHER}_CloudTrail_us-east-1")
    other_logs = session.client("logs", endpoint_url=aws.endpoint_url).filter_log_events(logGroupName=TRAIL)["events"]
    assert [json.loads(event["message"])["eventID"] for event in other_logs] == [record["eventID"]]
    assert aws.client("logs").filter_log_events(logGroupName=TRAIL)["events"] == []
    [delivery] = aws.recorder.deliveries()
    assert delivery["error"] is None and delivery["destination"] == other_function
    # The function ran with its own account's credentials: B's users, B's name.
    assert delivery["result"] == {"account": OTHER, "users": ["web01-backup"], "name": "canary-other", "function": other_function,
                                  "event": ["awslogs"]}
    assert home_function != other_function


def test_rules_and_schedules_run_the_functions_of_their_own_account(aws):  # pylint: disable=redefined-outer-name
    deploy(aws, deployer(aws, HOME), HOME, "canary-home")
    other_function = deploy(aws, deployer(aws, OTHER), OTHER, "canary-other")

    [routed] = aws.recorder.put_events(eventbridge.health_event(OTHER, "AKIAIOSFODNN7EXAMPLE"))
    assert routed["error"] is None and routed["destination"] == other_function
    assert (routed["result"]["account"], routed["result"]["name"]) == (OTHER, "canary-other")

    fired = aws.fire_schedules(["us-east-1"])
    assert sorted((entry["rule_arn"].split(":")[4], entry["error"], entry["result"]["account"], entry["result"]["name"])
                  for entry in fired) == [(OTHER, None, OTHER, "canary-other"), (HOME, None, HOME, "canary-home")]
    assert {entry["event"]["account"] for entry in fired} == {HOME, OTHER}
    assert aws.fire_schedules(["us-east-1"], accounts=[OTHER])[0]["result"]["account"] == OTHER
