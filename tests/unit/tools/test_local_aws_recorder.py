# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local CloudTrail, end to end: a canary key used through the proxy, records in the trail's
log group, and the subscription's handler called with the payload CloudWatch Logs would send."""

from __future__ import annotations

import io
import json
import re
import textwrap
import uuid
import zipfile

import boto3
import botocore.exceptions
import pytest

from tools.local_aws import cloudtrail
from tools.local_aws.recorder import decode_payload, explicitly_denied, parse_error, subscription_payload, _LogEvent
from tools.local_aws.server import LocalAWS

ACCOUNT = "123456789012"
TRAIL = "org-audit-trail"
FILTER = "iam-user-activity"
DETECTION_PATTERN = '{ $.userIdentity.type = "IAMUser" }'
FUNCTION = "audit-event-forwarder"
DENY_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]})
REQUIRED_FIELDS = ("eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion", "sourceIPAddress",
                   "userAgent", "requestID", "eventID", "eventType", "recipientAccountId")


class HandlerStub:
    def __init__(self):
        self.calls = []

    def __call__(self, event, context):
        self.calls.append((event, context))
        return {"received": len(decode_payload(event)["logEvents"])}

    def payloads(self):
        return [decode_payload(event) for event, _context in self.calls]


@pytest.fixture(scope="module")
def stub():
    return HandlerStub()


@pytest.fixture(scope="module")
def recording(stub):  # pylint: disable=redefined-outer-name
    # No background deliveries: each test flushes when it wants to look.
    with LocalAWS(record=True, handler=stub, delivery_interval=3600) as aws:
        yield aws


@pytest.fixture
def aws(recording, stub):  # pylint: disable=redefined-outer-name
    recording.reset()
    stub.calls.clear()
    return recording


def deploy_detection(aws, pattern=DETECTION_PATTERN):  # pylint: disable=redefined-outer-name
    """What the detection role builds, made directly: trail -> log group -> subscription filter -> Lambda."""
    logs, iam = aws.client("logs"), aws.client("iam")
    logs.create_log_group(logGroupName=TRAIL)
    aws.client("s3").create_bucket(Bucket=f"{TRAIL}-{ACCOUNT}")
    trail = aws.client("cloudtrail")
    trail.create_trail(Name=TRAIL, S3BucketName=f"{TRAIL}-{ACCOUNT}", IsMultiRegionTrail=True, IncludeGlobalServiceEvents=True,
                       CloudWatchLogsLogGroupArn=f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{TRAIL}:*",
                       CloudWatchLogsRoleArn=f"arn:aws:iam::{ACCOUNT}:role/{TRAIL}-delivery")
    trail.start_logging(Name=TRAIL)
    role = iam.create_role(RoleName=FUNCTION, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("alert_handler.py", "def handler(event, context):\n    return None\n")
    aws.client("lambda").create_function(FunctionName=FUNCTION, Runtime="python3.12", Role=role["Role"]["Arn"],
                                         Handler="alert_handler.handler", Code={"ZipFile": package.getvalue()},
                                         Environment={"Variables": {"CANARY_WEBHOOK_FORMAT": "generic"}})
    logs.put_subscription_filter(logGroupName=TRAIL, filterName=FILTER, filterPattern=pattern,
                                 destinationArn=f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{FUNCTION}")


def iam_user(aws, name, deny_all=True):  # pylint: disable=redefined-outer-name
    iam = aws.client("iam")
    iam.create_user(UserName=name)
    if deny_all:
        iam.put_user_policy(UserName=name, PolicyName="deny-all", PolicyDocument=DENY_ALL)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return iam.get_user(UserName=name)["User"], key


def as_key(aws, service, key, region="eu-west-1"):  # pylint: disable=redefined-outer-name
    return boto3.client(service, endpoint_url=aws.endpoint_url, region_name=region,
                        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])


def denied(call, **params):
    with pytest.raises(botocore.exceptions.ClientError) as error:
        call(**params)
    return error.value.response


def log_group_records(aws):  # pylint: disable=redefined-outer-name
    events = aws.client("logs").filter_log_events(logGroupName=TRAIL)["events"]
    return [(event["logStreamName"], json.loads(event["message"])) for event in events]


def test_canary_key_calls_land_in_the_log_group_and_reach_the_handler(aws, stub):  # pylint: disable=redefined-outer-name
    deploy_detection(aws)
    user, key = iam_user(aws, "web03-backup")
    arn = f"arn:aws:iam::{ACCOUNT}:user/web03-backup"

    assert as_key(aws, "sts", key).get_caller_identity()["Arn"] == arn
    response = denied(as_key(aws, "s3", key).list_buckets)
    message = (f"User: {arn} is not authorized to perform: s3:ListAllMyBuckets with an explicit deny in an "
               "identity-based policy")
    # The caller sees AWS's denial, not moto's bare "Access Denied".
    assert response["Error"] == {"Code": "AccessDenied", "Message": message}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403

    assert aws.recorder.flush() == 1
    records = aws.recorder.records()
    assert [(r["eventSource"], r["eventName"], r.get("errorCode")) for r in records] == [
        ("sts.amazonaws.com", "GetCallerIdentity", None), ("s3.amazonaws.com", "ListBuckets", "AccessDenied")]
    identity = {"type": "IAMUser", "principalId": user["UserId"], "arn": arn, "accountId": ACCOUNT,
                "accessKeyId": key["AccessKeyId"], "userName": "web03-backup"}
    for record in records:
        assert set(REQUIRED_FIELDS) <= set(record)
        assert record["userIdentity"] == identity
        assert record["eventType"] == "AwsApiCall" and record["recipientAccountId"] == ACCOUNT
        assert record["awsRegion"] == "eu-west-1" and record["sourceIPAddress"] == "127.0.0.1"
        assert record["userAgent"].startswith("Boto3/")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["eventTime"])
        assert uuid.UUID(record["eventID"]) and record["requestID"]
        assert record["managementEvent"] is True and record["eventCategory"] == "Management" and record["readOnly"] is True
    assert "errorMessage" not in records[0] and records[0]["requestParameters"] is None
    assert records[1]["errorMessage"] == message

    stream = f"{ACCOUNT}_CloudTrail_eu-west-1"
    assert log_group_records(aws) == [(stream, records[0]), (stream, records[1])]

    [(event, context)] = stub.calls
    assert set(event) == {"awslogs"} and set(event["awslogs"]) == {"data"}
    payload = decode_payload(event)
    assert {key: value for key, value in payload.items() if key != "logEvents"} == {
        "messageType": "DATA_MESSAGE", "owner": ACCOUNT, "logGroup": TRAIL, "logStream": stream, "subscriptionFilters": [FILTER]}
    assert [json.loads(item["message"]) for item in payload["logEvents"]] == records
    for item in payload["logEvents"]:
        assert set(item) == {"id", "timestamp", "message"} and re.fullmatch(r"\d{56}", item["id"])
        assert isinstance(item["timestamp"], int)
    assert context.invoked_function_arn == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{FUNCTION}"
    assert aws.recorder.deliveries()[0]["result"] == {"received": 2}


def test_only_events_matching_the_filter_pattern_are_delivered(aws, stub):  # pylint: disable=redefined-outer-name
    deploy_detection(aws)
    logs = aws.client("logs")
    logs.create_log_stream(logGroupName=TRAIL, logStreamName="hand-made")
    role_event = {"eventVersion": "1.09", "userIdentity": {"type": "AssumedRole"}, "eventName": "ListBuckets"}
    user_event = {"eventVersion": "1.09", "userIdentity": {"type": "IAMUser", "userName": "x"}, "eventName": "ListBuckets"}
    logs.put_log_events(logGroupName=TRAIL, logStreamName="hand-made", logEvents=[
        {"timestamp": 1_700_000_000_000, "message": json.dumps(role_event)},
        {"timestamp": 1_700_000_000_001, "message": json.dumps(user_event)},
        {"timestamp": 1_700_000_000_002, "message": "not JSON: IAMUser"}])
    # The operator's own calls are never recorded.
    aws.client("s3").list_buckets()
    assert aws.recorder.flush() == 1
    assert aws.recorder.records() == []
    [payload] = stub.payloads()
    assert payload["logStream"] == "hand-made"
    assert [json.loads(item["message"]) for item in payload["logEvents"]] == [user_event]
    assert payload["logEvents"][0]["timestamp"] == 1_700_000_000_001


def test_a_pattern_that_matches_nothing_delivers_nothing(aws, stub):  # pylint: disable=redefined-outer-name
    deploy_detection(aws, pattern='{ $.userIdentity.type = "Root" }')
    _user, key = iam_user(aws, "web04-backup")
    as_key(aws, "sts", key).get_caller_identity()
    assert aws.recorder.flush() == 0
    assert stub.calls == [] and len(log_group_records(aws)) == 1


def test_denial_without_a_deny_statement_and_json_protocol(aws):  # pylint: disable=redefined-outer-name
    deploy_detection(aws)
    _user, key = iam_user(aws, "reports-reader", deny_all=False)
    arn = f"arn:aws:iam::{ACCOUNT}:user/reports-reader"
    response = denied(as_key(aws, "secretsmanager", key).list_secrets)
    message = (f"User: {arn} is not authorized to perform: secretsmanager:ListSecrets because no identity-based policy "
               "allows the secretsmanager:ListSecrets action")
    assert response["Error"]["Code"] == "AccessDeniedException" and response["Error"]["Message"] == message
    assert denied(as_key(aws, "lambda", key).list_functions)["Error"]["Code"] == "AccessDeniedException"
    assert denied(as_key(aws, "ec2", key).describe_instances)["Error"]["Code"] == "UnauthorizedOperation"
    assert denied(as_key(aws, "iam", key).list_users)["Error"]["Code"] == "AccessDenied"
    aws.recorder.flush()
    assert [(r["eventName"], r["errorCode"]) for r in aws.recorder.records()] == [
        ("ListSecrets", "AccessDenied"), ("ListFunctions20150331", "AccessDenied"),
        ("DescribeInstances", "Client.UnauthorizedOperation"), ("ListUsers", "AccessDenied")]
    assert aws.recorder.records()[0]["errorMessage"] == message
    # IAM is global: its events are written in us-east-1 whatever region the client names.
    assert aws.recorder.records()[3]["awsRegion"] == "us-east-1"
    assert {stream for stream, _record in log_group_records(aws)} == {f"{ACCOUNT}_CloudTrail_eu-west-1", f"{ACCOUNT}_CloudTrail_us-east-1"}


def test_failed_authentication_and_inactive_keys_leave_no_record(aws):  # pylint: disable=redefined-outer-name
    deploy_detection(aws)
    _user, key = iam_user(aws, "web05-backup")
    assert denied(as_key(aws, "sts", dict(key, SecretAccessKey="wrong")).get_caller_identity)["Error"]["Code"] == \
        "SignatureDoesNotMatch"
    assert denied(as_key(aws, "sts", dict(key, AccessKeyId="AKIAI44QH8DHBEXAMPLE")).get_caller_identity)["Error"]["Code"] == \
        "InvalidClientTokenId"
    aws.client("iam").update_access_key(UserName="web05-backup", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    assert denied(as_key(aws, "sts", key).get_caller_identity)["Error"]["Code"] == "InvalidClientTokenId"
    assert denied(as_key(aws, "s3", key).list_buckets)["Error"]["Code"] == "InvalidAccessKeyId"
    aws.recorder.flush()
    assert aws.recorder.records() == [] and log_group_records(aws) == []


def test_data_events_are_written_only_when_the_trail_selects_them(aws):  # pylint: disable=redefined-outer-name
    deploy_detection(aws)
    _user, key = iam_user(aws, "web06-backup")
    s3 = as_key(aws, "s3", key)
    denied(s3.get_object, Bucket=f"{TRAIL}-{ACCOUNT}", Key="AWSLogs/x.json.gz")
    aws.recorder.flush()
    [record] = aws.recorder.records()
    assert (record["eventCategory"], record["managementEvent"]) == ("Data", False)
    assert record["resources"][0] == {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{TRAIL}-{ACCOUNT}/AWSLogs/x.json.gz"}
    assert log_group_records(aws) == []

    # The detection role's selectors: all management events, S3 object events of the canary users only.
    aws.client("cloudtrail").put_event_selectors(TrailName=TRAIL, AdvancedEventSelectors=[
        {"Name": "Management events", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]},
        {"Name": "Data events of the canary users", "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]}, {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
            {"Field": "userIdentity.arn", "StartsWith": [f"arn:aws:iam::{ACCOUNT}:user/web"]}]}])
    denied(s3.get_object, Bucket=f"{TRAIL}-{ACCOUNT}", Key="AWSLogs/x.json.gz")
    as_key(aws, "sts", key).get_caller_identity()
    aws.recorder.flush()
    assert [(record["eventName"], record.get("errorCode")) for _stream, record in log_group_records(aws)] == [
        ("GetObject", "AccessDenied"), ("GetCallerIdentity", None)]


def test_a_stopped_trail_writes_nothing(aws, stub):  # pylint: disable=redefined-outer-name
    deploy_detection(aws)
    aws.client("cloudtrail").stop_logging(Name=TRAIL)
    _user, key = iam_user(aws, "web07-backup")
    as_key(aws, "sts", key).get_caller_identity()
    aws.recorder.flush()
    assert len(aws.recorder.records()) == 1 and aws.recorder.written() == [] and stub.calls == []


def test_reset_forgets_records_and_deliveries(aws):  # pylint: disable=redefined-outer-name
    deploy_detection(aws)
    _user, key = iam_user(aws, "web08-backup")
    as_key(aws, "sts", key).get_caller_identity()
    aws.recorder.flush()
    assert aws.recorder.records() and aws.recorder.deliveries()
    aws.reset()
    assert aws.recorder.records() == [] and aws.recorder.deliveries() == [] and aws.calls() == []


HANDLER_SOURCE = textwrap.dedent('''\
    import os

    import sibling


    def handler(event, context):
        return {"format": os.environ.get("CANARY_WEBHOOK_FORMAT"), "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
                "function": context.function_name, "remaining": context.get_remaining_time_in_millis() > 0,
                "sibling": sibling.NAME, "keys": sorted(event)}
''')


def test_the_subscriptions_lambda_runs_from_the_sources_with_its_environment(tmp_path):
    (tmp_path / "alert_handler.py").write_text(HANDLER_SOURCE, encoding="utf-8")
    (tmp_path / "sibling.py").write_text('NAME = "packaged flat"\n', encoding="utf-8")
    with LocalAWS(record=True, delivery_interval=3600, lambda_dir=tmp_path) as aws:  # pylint: disable=redefined-outer-name
        deploy_detection(aws)
        _user, key = iam_user(aws, "web09-backup")
        as_key(aws, "sts", key).get_caller_identity()
        assert aws.recorder.flush() == 1
        [delivery] = aws.recorder.deliveries()
        assert delivery["error"] is None
        assert delivery["result"] == {"format": "generic", "endpoint": aws.endpoint_url, "function": FUNCTION,
                                      "remaining": True, "sibling": "packaged flat", "keys": ["awslogs"]}
    assert "CANARY_WEBHOOK_FORMAT" not in __import__("os").environ


# -- pure parts -----------------------------------------------------------------------------------

def test_payload_round_trip():
    events = [_LogEvent("1" * 56, 1_700_000_000_000, '{"a":1}')]
    payload = subscription_payload(ACCOUNT, TRAIL, "s", FILTER, events)
    assert decode_payload(payload) == {"messageType": "DATA_MESSAGE", "owner": ACCOUNT, "logGroup": TRAIL, "logStream": "s",
                                       "subscriptionFilters": [FILTER],
                                       "logEvents": [{"id": "1" * 56, "timestamp": 1_700_000_000_000, "message": '{"a":1}'}]}


@pytest.mark.parametrize("body, headers, expected", [
    (b"<ErrorResponse><Error><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>", {}, ("AccessDenied", "no")),
    (b'{"__type": "com.amazon.coral.service#AccessDeniedException", "Message": "no"}', {}, ("AccessDeniedException", "no")),
    (b'{"Type": "User", "message": "no"}', {"x-amzn-ErrorType": "AccessDeniedException:http://internal"},
     ("AccessDeniedException", "no")),
    (b"", {}, ("403", None)),
])
def test_error_parsing_across_protocols(body, headers, expected):
    assert parse_error(403, headers, body) == expected


@pytest.mark.parametrize("statement, explicit", [
    ({"Effect": "Deny", "Action": "*", "Resource": "*"}, True),
    ({"Effect": "Deny", "Action": ["s3:*"], "Resource": ["*"]}, True),
    ({"Effect": "Deny", "Action": "S3:List*", "Resource": "*"}, True),
    ({"Effect": "Deny", "NotAction": "sts:GetCallerIdentity", "Resource": "*"}, True),
    ({"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}, False),
    ({"Effect": "Deny", "Action": "iam:*", "Resource": "*"}, False),
    ({"Effect": "Allow", "Action": "*", "Resource": "*"}, False),
    ({"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}, False),
])
def test_explicit_deny_detection(statement, explicit):
    assert explicitly_denied([{"Version": "2012-10-17", "Statement": [statement]}], "s3:ListAllMyBuckets") is explicit


RECORD = {"eventCategory": "Management", "readOnly": True, "eventSource": "s3.amazonaws.com",
          "userIdentity": {"arn": f"arn:aws:iam::{ACCOUNT}:user/web03-backup"}}
DATA_RECORD = dict(RECORD, eventCategory="Data", resources=[{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::b/k"}])


@pytest.mark.parametrize("basic, advanced, record, logged", [
    ([], [], RECORD, True),
    ([], [], DATA_RECORD, False),
    ([{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}], [], RECORD, False),
    ([{"ReadWriteType": "All", "IncludeManagementEvents": False}], [], RECORD, False),
    ([{"ReadWriteType": "All", "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::b/"]}]}], [], DATA_RECORD, True),
    ([{"ReadWriteType": "All", "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::other/"]}]}], [],
     DATA_RECORD, False),
    ([], [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}], DATA_RECORD, False),
    ([], [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}, {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                              {"Field": "userIdentity.arn", "StartsWith": [f"arn:aws:iam::{ACCOUNT}:user/web"]}]}], DATA_RECORD, True),
    ([], [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]},
                              {"Field": "userIdentity.arn", "NotStartsWith": [f"arn:aws:iam::{ACCOUNT}:user/web"]}]}], DATA_RECORD, False),
    ([], [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "readOnly", "Equals": ["false"]}]}],
     RECORD, False),
])
def test_trail_event_selectors(basic, advanced, record, logged):
    assert cloudtrail.trail_logs(record, basic, advanced) is logged
