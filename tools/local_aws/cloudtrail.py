# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CloudTrail records of API calls, as AWS writes them (pure functions; the recorder does the I/O).

Scope (also in docs/local_aws.md, which users read):

MODELLED_SERVICES  every operation of STS, IAM, S3, EC2, Lambda, Secrets Manager and SQS: eventSource,
                   eventName (Lambda's dated names such as ``ListFunctions20150331``), management or
                   data event, readOnly, and for denied calls AWS's errorCode and errorMessage.
other services     recorded with the generic derivation (``<signing name>.amazonaws.com``, the API
                   operation as eventName), flagged as unmodelled by the recorder, never checked
                   against AWS.

Fields AWS writes that are not modelled: ``responseElements`` is always null (right for denied calls
and for GetCallerIdentity, which is all a canary key can do; wrong for other successful calls);
``requestParameters`` is the request's parameters in lower camel case for query and JSON calls and
the bucket/key/Host for S3, which is AWS's shape for flat parameters but not for EC2's nested
``...Set`` structures; ``additionalEventData``, ``tlsDetails`` and ``sessionCredentialFromConsole``
are left out; the resource clause of access-denied messages is given only where listed below.
"""

from __future__ import annotations

import datetime
import json
import re
import urllib.parse
import uuid

from tools.local_aws.operations import Operation, form_parameters, service_model

EVENT_VERSION = "1.09"
MODELLED_SERVICES = frozenset(("sts", "iam", "s3", "ec2", "lambda", "secretsmanager", "sqs"))
# Global services: CloudTrail writes their events in us-east-1, and only trails that include global
# service events receive them.
GLOBAL_SERVICES = frozenset(("iam", "cloudfront", "route53", "organizations"))

# Operations whose IAM action has another name (the action the error message quotes).
_IAM_ACTION = {
    ("s3", "ListBuckets"): "ListAllMyBuckets",
    ("s3", "HeadBucket"): "ListBucket",
    ("s3", "ListObjects"): "ListBucket",
    ("s3", "ListObjectsV2"): "ListBucket",
    ("s3", "ListObjectVersions"): "ListBucketVersions",
    ("s3", "ListMultipartUploads"): "ListBucketMultipartUploads",
    ("s3", "ListParts"): "ListMultipartUploadParts",
    ("s3", "HeadObject"): "GetObject",
    ("s3", "GetObjectAttributes"): "GetObject",
    ("s3", "CopyObject"): "PutObject",
    ("s3", "CreateMultipartUpload"): "PutObject",
    ("s3", "UploadPart"): "PutObject",
    ("s3", "UploadPartCopy"): "PutObject",
    ("s3", "CompleteMultipartUpload"): "PutObject",
    ("s3", "DeleteObjects"): "DeleteObject",
    ("s3", "GetBucketCors"): "GetBucketCORS",
    ("s3", "PutBucketCors"): "PutBucketCORS",
    ("s3", "GetBucketEncryption"): "GetEncryptionConfiguration",
    ("s3", "PutBucketEncryption"): "PutEncryptionConfiguration",
    ("s3", "GetBucketLifecycleConfiguration"): "GetLifecycleConfiguration",
    ("s3", "PutBucketLifecycleConfiguration"): "PutLifecycleConfiguration",
    ("s3", "GetBucketReplication"): "GetReplicationConfiguration",
    ("s3", "GetBucketNotificationConfiguration"): "GetBucketNotification",
    ("s3", "GetPublicAccessBlock"): "GetBucketPublicAccessBlock",
    ("s3", "PutPublicAccessBlock"): "PutBucketPublicAccessBlock",
    ("s3", "GetObjectLockConfiguration"): "GetBucketObjectLockConfiguration",
    ("lambda", "Invoke"): "InvokeFunction",
}
_IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}

# S3 object-level operations are data events (logged only when a trail selects them), as is Lambda Invoke.
_DATA_EVENTS = {
    "s3": frozenset((
        "GetObject", "HeadObject", "PutObject", "CopyObject", "DeleteObject", "DeleteObjects", "ListObjects",
        "ListObjectsV2", "ListObjectVersions", "GetObjectAcl", "PutObjectAcl", "GetObjectTagging", "PutObjectTagging",
        "DeleteObjectTagging", "GetObjectAttributes", "CreateMultipartUpload", "UploadPart", "UploadPartCopy",
        "CompleteMultipartUpload", "AbortMultipartUpload", "ListParts", "ListMultipartUploads", "RestoreObject",
        "SelectObjectContent", "GetObjectRetention", "PutObjectRetention", "GetObjectLegalHold", "PutObjectLegalHold")),
    "lambda": frozenset(("Invoke",)),
}
_DATA_RESOURCE_TYPE = {"s3": "AWS::S3::Object", "lambda": "AWS::Lambda::Function"}
# Lambda operations whose CloudTrail name ends in "v2" after the API date.
_LAMBDA_V2 = frozenset(("GetFunction", "GetFunctionConfiguration", "UpdateFunctionCode", "UpdateFunctionConfiguration",
                        "AddPermission", "RemovePermission", "GetPolicy"))
_READ_ONLY_PREFIXES = ("Get", "List", "Describe", "Head", "Lookup", "Search", "BatchGet", "Query", "Scan", "Select")
# IAM list operations whose denial names the path prefix they list.
_IAM_LIST_RESOURCE = {"ListUsers": "user", "ListRoles": "role", "ListGroups": "group"}


def event_source(signing_name: str) -> str:
    return f"{signing_name}.amazonaws.com"


def _lambda_api_date(action: str) -> str | None:
    model = service_model("lambda")
    if model is None or action not in model.operation_names:
        return None
    match = re.match(r"^/(\d{4})-(\d{2})-(\d{2})/", model.operation_model(action).http.get("requestUri", ""))
    return "".join(match.groups()) if match else None


def event_name(service: str, action: str) -> str:
    """CloudTrail's eventName: the API operation, except Lambda's dated management operations."""
    if service == "lambda" and action not in _DATA_EVENTS["lambda"]:
        date = _lambda_api_date(action)
        if date:
            return action + date + ("v2" if action in _LAMBDA_V2 else "")
    return action


def is_data_event(service: str, action: str) -> bool:
    return action in _DATA_EVENTS.get(service, ())


def is_read_only(action: str) -> bool:
    return action.startswith(_READ_ONLY_PREFIXES)


def is_modelled(service: str | None) -> bool:
    return service in MODELLED_SERVICES


def iam_action(service: str, action: str) -> str:
    return f"{_IAM_PREFIX.get(service, service)}:{_IAM_ACTION.get((service, action), action)}"


def s3_location(path: str) -> tuple[str | None, str | None]:
    """(bucket, key) of a path-style S3 request path."""
    parts = urllib.parse.unquote(path.split("?", 1)[0]).lstrip("/").split("/", 1)
    bucket = parts[0] or None
    key = parts[1] if len(parts) > 1 and parts[1] else None
    return bucket, key


def denied_resource(operation: Operation, account_id: str, path: str, partition: str = "aws") -> str | None:
    """The resource AWS names in an access-denied message, where it is modelled (else None: no clause)."""
    if operation.service == "iam" and operation.action in _IAM_LIST_RESOURCE:
        return f"arn:{partition}:iam::{account_id}:{_IAM_LIST_RESOURCE[operation.action]}/"
    if operation.service == "s3" and operation.action != "ListBuckets":
        bucket, key = s3_location(path)
        if bucket:
            # S3 quotes its resource; object operations name the object, bucket operations the bucket.
            name = f"{bucket}/{key}" if key and operation.action not in ("ListObjects", "ListObjectsV2") else bucket
            return f'"arn:{partition}:s3:::{name}"'
    return None


def access_denied(operation: Operation, user_arn: str, explicit: bool, resource: str | None = None) -> tuple[str, str]:
    """(errorCode, errorMessage) of a call that IAM denied, in AWS's wording."""
    action = iam_action(operation.service, operation.action)
    on_resource = f" on resource: {resource}" if resource else ""
    if explicit:
        reason = "with an explicit deny in an identity-based policy"
    else:
        reason = f"because no identity-based policy allows the {action} action"
    message = f"User: {user_arn} is not authorized to perform: {action}{on_resource} {reason}"
    if operation.service == "ec2":
        return "Client.UnauthorizedOperation", "You are not authorized to perform this operation. " + message
    return "AccessDenied", message


def event_time(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _camel_tree(value):
    if isinstance(value, dict):
        return {_lower_camel(key): _camel_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_camel_tree(item) for item in value]
    return value


_MEMBER_RE = re.compile(r"^(?P<name>[^.]+)\.member\.(?P<index>\d+)(?:\.(?P<field>.+))?$")
# Parameters CloudTrail never writes (IAM's passwords): a record must not hold what AWS's does not.
_UNLOGGED_PARAMETERS = frozenset(("Password", "NewPassword", "OldPassword"))


def _query_parameters(flat: dict) -> dict:
    """Query-protocol parameters in CloudTrail's shape: ``Tags.member.1.Key`` becomes
    ``tags: [{"key": ...}]``, ``TagKeys.member.1`` becomes ``tagKeys: [...]``."""
    params, lists = {}, {}
    for name, value in flat.items():
        if name in ("Action", "Version") or name.startswith("X-Amz-") or name in _UNLOGGED_PARAMETERS:
            continue
        match = _MEMBER_RE.match(name)
        if match is None:
            params[_lower_camel(name)] = value
            continue
        items = lists.setdefault(_lower_camel(match["name"]), {})
        index = int(match["index"])
        if match["field"]:
            items.setdefault(index, {})[_lower_camel(match["field"])] = value
        else:
            items[index] = value
    for name, items in lists.items():
        params[name] = [items[index] for index in sorted(items)]
    return params


def request_parameters(operation: Operation, method: str, target: str, headers, body: bytes):
    """requestParameters as CloudTrail writes them for flat parameters and member lists; None when
    there are none."""
    path, _sep, raw_query = target.partition("?")
    query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
    if operation.service == "s3":
        bucket, key = s3_location(path)
        params = {"Host": headers.get("Host", "")}
        if bucket:
            params["bucketName"] = bucket
        if key:
            params["key"] = key
        for name, values in query.items():
            if not name.lower().startswith("x-amz-") and name != "x-id":
                params[name] = values[0]
        return params
    if operation.protocol == "query":
        return _query_parameters(form_parameters(headers, query, body)) or None
    if operation.protocol == "json" and body:
        try:
            document = json.loads(body)
        except ValueError:
            return None
        return _camel_tree(document) or None
    return None


def user_identity(owner: dict, access_key_id: str) -> dict:
    """``owner``: UserName, UserId, Arn of the IAM user (iam:GetUser), plus the account id."""
    return {
        "type": "IAMUser",
        "principalId": owner["UserId"],
        "arn": owner["Arn"],
        "accountId": owner["AccountId"],
        "accessKeyId": access_key_id,
        "userName": owner["UserName"],
    }


def root_identity(account_id: str, access_key_id: str) -> dict:
    """The root user's userIdentity (the local AWS's operator acts as the root user)."""
    return {
        "type": "Root",
        "principalId": account_id,
        "arn": f"arn:aws:iam::{account_id}:root",
        "accountId": account_id,
        "accessKeyId": access_key_id,
    }


def new_request_id(service: str) -> str:
    if service == "s3":
        return uuid.uuid4().hex[:16].upper()
    return str(uuid.uuid4())


def build_record(operation: Operation, owner: dict, *, method: str, target: str, headers, body: bytes, started: float,
                 source_ip: str, request_id: str, error: tuple[str, str] | None = None, identity: dict | None = None) -> dict:
    """One CloudTrail record (an ``AwsApiCall``) in the key order AWS writes.

    ``owner`` is the IAM user who signed the call; ``identity`` replaces its userIdentity for
    another principal (the root user), ``owner`` then only giving the ``AccountId``.
    """
    service, action = operation.service, operation.action
    account_id = owner["AccountId"]
    data_event = is_data_event(service, action)
    region = "us-east-1" if service in GLOBAL_SERVICES else (operation.region or "us-east-1")
    record = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": identity or user_identity(owner, operation.access_key_id),
        "eventTime": event_time(started),
        "eventSource": event_source(operation.service),
        "eventName": event_name(service, action),
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": headers.get("User-Agent", ""),
    }
    if error:
        record["errorCode"], record["errorMessage"] = error
    record["requestParameters"] = request_parameters(operation, method, target, headers, body)
    record["responseElements"] = None
    record["requestID"] = request_id
    record["eventID"] = str(uuid.uuid4())
    record["readOnly"] = is_read_only(action)
    if data_event:
        record["resources"] = data_resources(operation, account_id, target)
    record["eventType"] = "AwsApiCall"
    record["managementEvent"] = not data_event
    record["recipientAccountId"] = account_id
    record["eventCategory"] = "Data" if data_event else "Management"
    return record


def data_resources(operation: Operation, account_id: str, target: str, partition: str = "aws") -> list[dict]:
    if operation.service == "s3":
        bucket, key = s3_location(target)
        resources = []
        if key:
            resources.append({"type": "AWS::S3::Object", "ARN": f"arn:{partition}:s3:::{bucket}/{key}"})
        resources.append({"accountId": account_id, "type": "AWS::S3::Bucket", "ARN": f"arn:{partition}:s3:::{bucket}"})
        return resources
    name = urllib.parse.unquote(target.split("?", 1)[0]).rstrip("/").split("/")[-2]
    if not name.startswith("arn:"):
        name = f"arn:{partition}:lambda:{operation.region}:{account_id}:function:{name}"
    return [{"accountId": account_id, "type": "AWS::Lambda::Function", "ARN": name}]


def resource_types(record: dict) -> list[str]:
    if record.get("eventCategory") == "Data":
        return [_DATA_RESOURCE_TYPE.get(record["eventSource"].split(".", 1)[0], "")]
    return []


# -- trail event selectors ------------------------------------------------------------------------

def _field_values(record: dict, field: str) -> list:
    if field == "resources.type":
        return resource_types(record) or [None]
    if field == "resources.ARN":
        arns = [resource["ARN"] for resource in record.get("resources", ()) if resource.get("type") in resource_types(record)]
        return arns or [None]
    if field == "readOnly":
        return [str(record.get("readOnly")).lower()]
    value = record
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return [value]


def _field_selector_matches(record: dict, selector: dict) -> bool:
    values = _field_values(record, selector["Field"])

    def any_value(test):
        return any(isinstance(value, str) and test(value) for value in values)

    checks = []
    if selector.get("Equals"):
        checks.append(any_value(lambda value: value in selector["Equals"]))
    if selector.get("StartsWith"):
        checks.append(any_value(lambda value: value.startswith(tuple(selector["StartsWith"]))))
    if selector.get("EndsWith"):
        checks.append(any_value(lambda value: value.endswith(tuple(selector["EndsWith"]))))
    if selector.get("NotEquals"):
        checks.append(not any_value(lambda value: value in selector["NotEquals"]))
    if selector.get("NotStartsWith"):
        checks.append(not any_value(lambda value: value.startswith(tuple(selector["NotStartsWith"]))))
    if selector.get("NotEndsWith"):
        checks.append(not any_value(lambda value: value.endswith(tuple(selector["NotEndsWith"]))))
    return all(checks)


def trail_logs(record: dict, event_selectors: list, advanced_event_selectors: list) -> bool:
    """Whether a trail with these selectors logs the record (no selectors: all management events)."""
    if advanced_event_selectors:
        return any(all(_field_selector_matches(record, field) for field in selector.get("FieldSelectors", ()))
                   for selector in advanced_event_selectors)
    selectors = event_selectors or [{"ReadWriteType": "All", "IncludeManagementEvents": True, "DataResources": []}]
    for selector in selectors:
        read_write = selector.get("ReadWriteType", "All")
        if read_write != "All" and (read_write == "ReadOnly") != bool(record.get("readOnly")):
            continue
        if record.get("eventCategory") == "Management":
            if selector.get("IncludeManagementEvents", True):
                return True
            continue
        for resource in selector.get("DataResources", ()):
            if resource.get("Type") not in resource_types(record):
                continue
            arns = [item["ARN"] for item in record.get("resources", ())]
            if any(arn.startswith(prefix.rstrip("*")) or prefix in ("arn:aws:s3", "arn:aws:lambda")
                   for prefix in resource.get("Values", ()) for arn in arns):
                return True
    return False


# -- the denial as the caller sees it ---------------------------------------------------------------

def error_response(operation: Operation, error: tuple[str, str], request_id: str) -> tuple[list, bytes] | None:
    """(headers, body) of an access-denied response in the protocol of the operation, as AWS sends it.

    moto answers every denial in one XML shape (even to JSON services, whose SDKs then cannot read
    it); a canary key's caller must see what AWS would send.
    """
    message = error[1]
    escaped = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    protocol = operation.protocol
    if operation.service == "ec2":
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>UnauthorizedOperation</Code>"
                f"<Message>{escaped}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>")
        return [("Content-Type", "text/xml;charset=UTF-8")], body.encode("utf-8")
    if protocol == "rest-xml":
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>{escaped}</Message>"
                f"<RequestId>{request_id}</RequestId></Error>")
        return [("Content-Type", "application/xml")], body.encode("utf-8")
    if protocol == "query":
        body = (f"<ErrorResponse xmlns=\"https://{operation.service}.amazonaws.com/doc/\"><Error><Type>Sender</Type>"
                f"<Code>AccessDenied</Code><Message>{escaped}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>")
        return [("Content-Type", "text/xml")], body.encode("utf-8")
    if protocol == "rest-json":
        return ([("Content-Type", "application/json"), ("x-amzn-ErrorType", "AccessDeniedException")],
                json.dumps({"Type": "User", "message": message}).encode("utf-8"))
    if protocol == "json":
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", "AccessDeniedException")]
        if operation.service == "sqs":
            # SQS's JSON protocol still reports its query-protocol code alongside.
            headers.append(("x-amzn-query-error", "AccessDenied;Sender"))
        return headers, json.dumps({"__type": "AccessDeniedException", "message": message}).encode("utf-8")
    return None
