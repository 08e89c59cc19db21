# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which operation a raw request calls, and CloudTrail's names for it, from requests botocore really signs.

The requests are built and signed by botocore and captured before they leave the process: the
derivation is checked against the SDK's own wire format for each protocol, not hand-written requests.
"""

from __future__ import annotations

import urllib.parse

import boto3
import pytest

from tools.local_aws import cloudtrail
from tools.local_aws.operations import Operation, identify, is_read_only, parse_credential


class _Captured(Exception):
    def __init__(self, request):
        super().__init__("captured")
        self.request = request


def _capture(request, **_kwargs):
    raise _Captured(request)


def signed_request(service, operation, region="eu-west-1", key="AKIAIOSFODNN7EXAMPLE", **params):
    client = boto3.client(service, region_name=region, endpoint_url="http://127.0.0.1:4566",
                          aws_access_key_id=key, aws_secret_access_key="not-a-secret")
    client.meta.events.register("before-send", _capture)
    with pytest.raises(_Captured) as captured:
        getattr(client, operation)(**params)
    request = captured.value.request
    url = urllib.parse.urlsplit(request.url)
    target = url.path + ("?" + url.query if url.query else "")
    headers = {name: value.decode() if isinstance(value, bytes) else value for name, value in request.headers.items()}
    headers.setdefault("Host", url.netloc)
    body = request.body or b""
    if hasattr(body, "read"):
        body = body.read()
    return request.method, target, headers, body if isinstance(body, bytes) else body.encode()


def operation_of(service, method, region="eu-west-1", **params):
    return identify(*signed_request(service, method, region=region, **params))


@pytest.mark.parametrize("service, method, params, signing_name, action, protocol", [
    ("sts", "get_caller_identity", {}, "sts", "GetCallerIdentity", "query"),
    ("sts", "get_session_token", {}, "sts", "GetSessionToken", "query"),
    ("iam", "list_users", {}, "iam", "ListUsers", "query"),
    ("iam", "create_user", {"UserName": "web03-backup"}, "iam", "CreateUser", "query"),
    ("ec2", "describe_instances", {}, "ec2", "DescribeInstances", "query"),
    ("ec2", "describe_regions", {}, "ec2", "DescribeRegions", "query"),
    ("sqs", "list_queues", {}, "sqs", "ListQueues", "json"),
    ("secretsmanager", "list_secrets", {}, "secretsmanager", "ListSecrets", "json"),
    ("secretsmanager", "get_secret_value", {"SecretId": "prod/db"}, "secretsmanager", "GetSecretValue", "json"),
    ("logs", "put_log_events", {"logGroupName": "g", "logStreamName": "s", "logEvents": [{"timestamp": 1, "message": "m"}]}, "logs", "PutLogEvents", "json"),
    ("s3", "list_buckets", {}, "s3", "ListBuckets", "rest-xml"),
    ("s3", "list_objects_v2", {"Bucket": "backups"}, "s3", "ListObjectsV2", "rest-xml"),
    ("s3", "list_objects", {"Bucket": "backups"}, "s3", "ListObjects", "rest-xml"),
    ("s3", "head_bucket", {"Bucket": "backups"}, "s3", "HeadBucket", "rest-xml"),
    ("s3", "get_bucket_policy", {"Bucket": "backups"}, "s3", "GetBucketPolicy", "rest-xml"),
    ("s3", "get_object", {"Bucket": "backups", "Key": "db/dump.sql"}, "s3", "GetObject", "rest-xml"),
    ("s3", "head_object", {"Bucket": "backups", "Key": "db/dump.sql"}, "s3", "HeadObject", "rest-xml"),
    ("s3", "put_object", {"Bucket": "backups", "Key": "a", "Body": b"x"}, "s3", "PutObject", "rest-xml"),
    ("s3", "copy_object", {"Bucket": "backups", "Key": "a", "CopySource": "other/b"}, "s3", "CopyObject", "rest-xml"),
    ("s3", "upload_part", {"Bucket": "backups", "Key": "a", "PartNumber": 1, "UploadId": "u", "Body": b"x"}, "s3",
     "UploadPart", "rest-xml"),
    ("s3", "delete_objects", {"Bucket": "backups", "Delete": {"Objects": [{"Key": "a"}]}}, "s3", "DeleteObjects", "rest-xml"),
    ("lambda", "list_functions", {}, "lambda", "ListFunctions", "rest-json"),
    ("lambda", "get_function", {"FunctionName": "audit-event-forwarder"}, "lambda", "GetFunction", "rest-json"),
    ("lambda", "get_function_configuration", {"FunctionName": "f"}, "lambda", "GetFunctionConfiguration", "rest-json"),
    ("lambda", "invoke", {"FunctionName": "f"}, "lambda", "Invoke", "rest-json"),
    ("lambda", "get_policy", {"FunctionName": "f"}, "lambda", "GetPolicy", "rest-json"),
    # botocore prefers CloudWatch's JSON protocol over rpc-v2-cbor; both name the operation.
    ("cloudwatch", "list_metrics", {}, "monitoring", "ListMetrics", "json"),
])
def test_operation_per_protocol(service, method, params, signing_name, action, protocol):
    operation = operation_of(service, method, **params)
    assert operation == Operation(signing_name, action, "AKIAIOSFODNN7EXAMPLE", "eu-west-1", protocol)


def test_rpc_v2_cbor_path_names_the_operation():
    headers = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20240101/eu-west-1/monitoring/aws4_request, "
                                "SignedHeaders=host, Signature=0", "Smithy-Protocol": "rpc-v2-cbor"}
    operation = identify("POST", "/service/GraniteServiceVersion20100801/operation/GetMetricData", headers, b"\xa0")
    assert (operation.service, operation.action, operation.protocol) == ("monitoring", "GetMetricData", "smithy-rpc-v2-cbor")


def test_unsigned_request_has_no_service_nor_key():
    assert identify("GET", "/moto-api/data.json", {"Host": "127.0.0.1"}) == Operation(None, None, None, None, None)


def test_presigned_url_names_the_key():
    query = {"X-Amz-Credential": ["AKIAEXAMPLE/20240101/us-east-1/s3/aws4_request"]}
    credential = parse_credential({}, query)
    assert (credential.access_key_id, credential.region, credential.service) == ("AKIAEXAMPLE", "us-east-1", "s3")


def test_virtual_hosted_s3_requests_are_read_path_style():
    method, target, headers, body = signed_request("s3", "get_object", Bucket="backups", Key="k")
    bucket_path = target.replace("/backups", "", 1) or "/"
    headers["Host"] = "backups.localhost:4566"
    assert identify(method, bucket_path, headers, body).action == "GetObject"


@pytest.mark.parametrize("action, read_only", [
    ("ListUsers", True), ("GetUser", True), ("DescribeInstances", True), ("GenerateCredentialReport", True),
    ("CreateUser", False), ("DeleteAccessKey", False), ("TagUser", False), ("PutUserPolicy", False), (None, False),
])
def test_counting_treats_reads_by_name(action, read_only):
    assert is_read_only(action) is read_only


@pytest.mark.parametrize("service, action, event_name", [
    ("lambda", "ListFunctions", "ListFunctions20150331"),
    ("lambda", "GetFunction", "GetFunction20150331v2"),
    ("lambda", "GetFunctionConfiguration", "GetFunctionConfiguration20150331v2"),
    ("lambda", "ListTags", "ListTags20170331"),
    ("lambda", "GetAccountSettings", "GetAccountSettings20160819"),
    ("lambda", "Invoke", "Invoke"),
    ("s3", "ListBuckets", "ListBuckets"),
    ("sts", "GetCallerIdentity", "GetCallerIdentity"),
    ("iam", "ListUsers", "ListUsers"),
])
def test_cloudtrail_event_names(service, action, event_name):
    assert cloudtrail.event_name(service, action) == event_name


@pytest.mark.parametrize("service, action, iam_action, data_event", [
    ("s3", "ListBuckets", "s3:ListAllMyBuckets", False),
    ("s3", "ListObjectsV2", "s3:ListBucket", True),
    ("s3", "HeadObject", "s3:GetObject", True),
    ("s3", "GetBucketPolicy", "s3:GetBucketPolicy", False),
    ("lambda", "Invoke", "lambda:InvokeFunction", True),
    ("lambda", "ListFunctions", "lambda:ListFunctions", False),
    ("iam", "ListUsers", "iam:ListUsers", False),
    ("secretsmanager", "GetSecretValue", "secretsmanager:GetSecretValue", False),
    ("monitoring", "ListMetrics", "cloudwatch:ListMetrics", False),
])
def test_iam_actions_and_data_events(service, action, iam_action, data_event):
    assert cloudtrail.iam_action(service, action) == iam_action
    assert cloudtrail.is_data_event(service, action) is data_event


ARN = "arn:aws:iam::123456789012:user/web03-backup"


def test_access_denied_wording_without_and_with_an_explicit_deny():
    list_buckets = Operation("s3", "ListBuckets", "AKIA", "us-east-1", "rest-xml")
    assert cloudtrail.access_denied(list_buckets, ARN, explicit=False) == (
        "AccessDenied", f"User: {ARN} is not authorized to perform: s3:ListAllMyBuckets because no identity-based policy "
                        "allows the s3:ListAllMyBuckets action")
    assert cloudtrail.access_denied(list_buckets, ARN, explicit=True) == (
        "AccessDenied", f"User: {ARN} is not authorized to perform: s3:ListAllMyBuckets with an explicit deny in an "
                        "identity-based policy")


def test_access_denied_resource_clauses():
    list_users = Operation("iam", "ListUsers", "AKIA", "us-east-1", "query")
    resource = cloudtrail.denied_resource(list_users, "123456789012", "/")
    assert cloudtrail.access_denied(list_users, ARN, False, resource)[1] == (
        f"User: {ARN} is not authorized to perform: iam:ListUsers on resource: arn:aws:iam::123456789012:user/ "
        "because no identity-based policy allows the iam:ListUsers action")
    get_object = Operation("s3", "GetObject", "AKIA", "us-east-1", "rest-xml")
    assert cloudtrail.denied_resource(get_object, "123456789012", "/backups/db/dump.sql?x-id=GetObject") == \
        '"arn:aws:s3:::backups/db/dump.sql"'
    assert cloudtrail.denied_resource(Operation("sts", "GetSessionToken", "AKIA", "us-east-1", "query"), "1", "/") is None


def test_ec2_denials_use_ec2s_code_and_preamble():
    code, message = cloudtrail.access_denied(Operation("ec2", "DescribeInstances", "AKIA", "eu-west-1", "query"), ARN, False)
    assert code == "Client.UnauthorizedOperation"
    assert message.startswith("You are not authorized to perform this operation. User: " + ARN)
