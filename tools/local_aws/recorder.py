# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local CloudTrail: records IAM users' calls, writes them to the trail's log group, delivers them.

The proxy hands every request to ``submit``; a thread (and ``flush()``, for tests) turns them into
CloudTrail records and does what AWS would do next:

1. Calls signed with a key that belongs to an IAM user are recorded: the owner comes from moto's
   IAM (``GetAccessKeyLastUsed`` + ``GetUser``, asked directly with the operator's key, so the
   lookups are neither counted nor recorded).  Calls that fail authentication (unknown or inactive
   key, bad signature) are not recorded: AWS has no identity to log them under.  The operator's
   own calls are recorded, as the root user's, only when they change a canary user (an IAM write
   naming a user tagged ``canarykeys:managed = true``, or one the recorder saw tagged so): what a
   detection stack needs to tell the collection's own changes from tampering.
2. Each record goes to every logging trail that covers its region (multi-region trails, or trails
   of that region; global services only to trails that include them) and whose event selectors
   select it, into the trail's CloudWatch Logs group, stream ``<account>_CloudTrail_<region>``,
   through moto's ``PutLogEvents``.
3. For each subscription filter of that log group, the records its pattern matches (evaluated here:
   moto does not) are sent, batched per log stream as CloudWatch Logs does, gzip+base64 under
   ``{"awslogs": {"data": ...}}``, to the ``handler`` given to LocalAWS or to the filter's Lambda,
   imported from this collection's ``lambda/`` directory and run in-process with the function's
   environment variables from moto.  Events that clients put into a log group through the proxy
   are delivered the same way, so tests can feed hand-made CloudTrail records.

4. Every record also goes to EventBridge as ``AWS API Call via CloudTrail`` when a logging trail
   covers it (AWS needs one): each rule of the default bus in the record's region whose pattern
   matches (moto's matcher; read-only calls only for rules in state
   ``ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS``) runs its Lambda targets, as the schedules
   below do.  ``put_events()`` puts any other event (an AWS Health event) on the default bus.
5. ``fire_schedules()`` does what EventBridge does when a schedule comes due, which moto never does:
   every ENABLED rule with a ScheduleExpression runs its Lambda targets once, with EventBridge's
   ``Scheduled Event`` payload, through the same in-process Lambda as the deliveries, provided the
   function's resource-based policy lets ``events.amazonaws.com`` invoke it for that rule.

The recorder decides nothing about alerts: it delivers what matches the filter and reports what the
handler returned or raised (``deliveries()``, ``fired()``).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import fnmatch
import gzip
import itertools
import json
import logging
import pathlib
import re
import threading
import urllib.parse
from dataclasses import dataclass

from tools.local_aws import cloudtrail, eventbridge
from tools.local_aws.filter_pattern import FilterPattern, PatternSyntaxError, UnsupportedPattern
from tools.local_aws.lambda_runtime import LAMBDA_DIR, LambdaContext, LambdaRuntime, function_account

LOGGER = logging.getLogger("canarykeys.local_aws")
# Errors of authentication, not authorisation: AWS logs no identity for them, so CloudTrail has no record.
AUTHENTICATION_ERRORS = frozenset((
    "InvalidClientTokenId", "SignatureDoesNotMatch", "InvalidAccessKeyId", "AuthFailure", "IncompleteSignature",
    "MissingAuthenticationToken", "InvalidToken", "ExpiredToken", "UnrecognizedClientException", "InvalidSignatureException",
))
DENIED_ERRORS = frozenset(("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Client.UnauthorizedOperation"))
# CloudWatch Logs keeps a subscription batch well under Lambda's asynchronous payload limit (256 KB).
_MAX_BATCH_BYTES = 900 * 1024
_MAX_BATCH_EVENTS = 10000
# canary_mapping.TAG_MANAGED and MANAGED_VALUE: what makes an IAM user a canary.
CANARY_TAG = ("canarykeys:managed", "true")


@dataclass
class _LogEvent:
    id: str
    timestamp: int
    message: str


def subscription_payload(owner: str, log_group: str, log_stream: str, filter_name: str, events: list) -> dict:
    """The event CloudWatch Logs gives a subscription's Lambda."""
    data = {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": [filter_name],
        "logEvents": [{"id": event.id, "timestamp": event.timestamp, "message": event.message} for event in events],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(data).encode("utf-8"))).decode("ascii")}}


def decode_payload(event: dict) -> dict:
    """The inverse of subscription_payload (for tests and for reading deliveries)."""
    return json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))


def batches(events: list) -> list:
    """Events in batches of at most _MAX_BATCH_EVENTS and about _MAX_BATCH_BYTES of messages."""
    result, current, size = [], [], 0
    for event in events:
        length = len(event.message) + 100
        if current and (size + length > _MAX_BATCH_BYTES or len(current) >= _MAX_BATCH_EVENTS):
            result.append(current)
            current, size = [], 0
        current.append(event)
        size += length
    if current:
        result.append(current)
    return result


def parse_error(status: int, headers: dict, body: bytes) -> tuple[str | None, str | None]:
    """(code, message) of an AWS error response in any protocol (XML, JSON, or only a header)."""
    text = body.decode("utf-8", "replace") if body else ""
    code = message = None
    if text.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            document = json.loads(text)
            code = document.get("__type") or document.get("code") or document.get("Code")
            message = document.get("message") or document.get("Message")
    else:
        match = re.search(r"<Code>([^<]*)</Code>", text)
        code = match.group(1) if match else None
        match = re.search(r"<Message>([^<]*)</Message>", text, re.DOTALL)
        message = match.group(1) if match else None
    if not code:
        code = next((value for name, value in headers.items() if name.lower() == "x-amzn-errortype"), None)
    if code:
        code = code.split("#")[-1].split(":")[0]
    if code is None and status >= 400:
        code = str(status)
    return code, message


def _header(headers: dict, name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


def _request_id(exchange) -> str:
    if exchange.request_id is None:
        headers = exchange.response_headers
        exchange.request_id = (_header(headers, "x-amzn-requestid") or _header(headers, "x-amz-request-id")
                               or cloudtrail.new_request_id(exchange.operation.service))
    return exchange.request_id


def _pattern_matches(pattern, value: str) -> bool:
    patterns = pattern if isinstance(pattern, list) else [pattern]
    return any(fnmatch.fnmatchcase(value.lower(), item.lower()) for item in patterns)


def explicitly_denied(policies: list, action: str) -> bool:
    """Whether an identity policy has a Deny statement for the action on any resource (``*``).

    Only which of AWS's two messages to write depends on it; moto has already decided the denial.
    Statements with conditions or specific resources are not evaluated (treated as not applying).
    """
    for document in policies:
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            if statement.get("Effect") != "Deny" or statement.get("Condition") or "NotResource" in statement:
                continue
            if "Action" in statement:
                applies = _pattern_matches(statement["Action"], action)
            else:
                applies = not _pattern_matches(statement.get("NotAction", []), action)
            resources = statement.get("Resource", [])
            if applies and "*" in (resources if isinstance(resources, list) else [resources]):
                return True
    return False


class Recorder:  # pylint: disable=too-many-instance-attributes
    """See the module docstring.  ``aws`` is the LocalAWS whose proxy submits the exchanges."""

    def __init__(self, aws, handler=None, interval: float = 1.0, lambda_dir: pathlib.Path = LAMBDA_DIR):
        self._aws = aws
        self._handler = handler
        self._interval = interval
        self._runtime = LambdaRuntime(aws, self._client, pathlib.Path(lambda_dir))
        self._pending = collections.deque()
        self._lock = threading.RLock()
        # Owner and policy look-ups happen in proxy threads (denied_response) and in flush.
        self._lookup_lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = None
        self._clients = {}
        self._session = None
        self._owners = {}
        self._patterns = {}
        # Every account seen (an operator key of it, a role of it assumed): where schedules and rules are looked for.
        self._accounts = {aws.account_id}
        self._sequence = itertools.count()
        self._records = []
        self._deliveries = []
        self._fired = []
        self._routed = []
        self._canaries = set()
        self._unmodelled = []
        self._problems = []

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._loop, name="local-aws-cloudtrail", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        self._runtime.close()

    def _loop(self):
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # pylint: disable=broad-exception-caught
                # The loop must outlive any one bad batch; the failure is in the log and problems().
                LOGGER.exception("local CloudTrail delivery failed")
                self._problems.append("delivery loop: see the log")

    def submit(self, exchange):
        self._note_account(exchange)
        self._pending.append(exchange)

    def _note_account(self, exchange):
        """Remember the account an exchange shows: the operator acting in it, or a role of it assumed."""
        operation = exchange.operation
        if operation is None or not operation.access_key_id:
            return
        account = self._aws.operator_account(operation.access_key_id)
        if account:
            self._accounts.add(account)
        if operation.service == "sts" and operation.action == "AssumeRole" and exchange.status < 400:
            form = urllib.parse.parse_qs(exchange.body.decode("utf-8", "replace")) if exchange.body else {}
            parts = (form.get("RoleArn") or [""])[0].split(":")
            if len(parts) > 4 and parts[4].isdigit():
                self._accounts.add(parts[4])

    def accounts(self) -> list[str]:
        """The accounts the local AWS has seen in use (this one first): each has its own IAM, trails, rules, functions."""
        with self._lock:
            return [self._aws.account_id] + sorted(self._accounts - {self._aws.account_id})

    def reset(self):
        with self._lock:
            self._pending.clear()
            self._owners.clear()
            self._records.clear()
            self._deliveries.clear()
            self._fired.clear()
            self._routed.clear()
            self._canaries.clear()
            self._accounts = {self._aws.account_id}
            self._unmodelled.clear()
            self._problems.clear()

    # -- what happened -----------------------------------------------------------------------------

    def records(self) -> list[dict]:
        """Every CloudTrail record made since the last reset, delivered to a log group or not."""
        with self._lock:
            return [item["record"] for item in self._records]

    def written(self) -> list[dict]:
        """(trail, logGroup, logStream, record) of every record written to a trail's log group."""
        with self._lock:
            return [dict(destination, record=item["record"]) for item in self._records for destination in item["written"]]

    def deliveries(self) -> list[dict]:
        """Every handler invocation: filter, destination, event (the payload), result or error."""
        with self._lock:
            return list(self._deliveries)

    def fired(self) -> list[dict]:
        """Every scheduled target ``fire_schedules()`` ran or refused: rule, destination, event, result or error."""
        with self._lock:
            return list(self._fired)

    def routed(self) -> list[dict]:
        """Every event EventBridge delivered to an event-pattern rule's target (CloudTrail records and
        ``put_events``): rule, destination, event, result or error."""
        with self._lock:
            return list(self._routed)

    def unmodelled(self) -> list[tuple]:
        """(service, operation) of recorded calls whose fields come from the generic derivation."""
        with self._lock:
            return list(self._unmodelled)

    def problems(self) -> list[str]:
        with self._lock:
            return list(self._problems)

    # -- moto, directly ----------------------------------------------------------------------------

    def _client(self, service: str, region: str = "us-east-1", account: str | None = None):
        """moto, directly, as the root user of ``account`` (default: the local AWS's own)."""
        account = account or self._aws.account_id
        key = (service, region, account)
        with self._lookup_lock:
            if key not in self._clients:
                import boto3  # pylint: disable=import-outside-toplevel

                # A session of its own: boto3's default session is not safe to share with the test's threads.
                if self._session is None:
                    self._session = boto3.session.Session()
                env = self._aws.operator_env(account)
                self._clients[key] = self._session.client(service, endpoint_url=self._aws.moto_url, region_name=region,
                                                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
            return self._clients[key]

    def _owner(self, access_key_id: str) -> dict | None:
        import botocore.exceptions  # pylint: disable=import-outside-toplevel

        if access_key_id in self._owners:
            return self._owners[access_key_id]
        owner = None
        try:
            # moto finds an IAM user's key in any account (and answers its own account for any other key).
            account = self._client("sts").get_access_key_info(AccessKeyId=access_key_id)["Account"]
            iam = self._client("iam", account=account)
            user_name = iam.get_access_key_last_used(AccessKeyId=access_key_id)["UserName"]
            user = iam.get_user(UserName=user_name)["User"]
            owner = {"UserName": user["UserName"], "UserId": user["UserId"], "Arn": user["Arn"],
                     "AccountId": user["Arn"].split(":")[4]}
        except botocore.exceptions.ClientError:
            owner = None
        self._owners[access_key_id] = owner
        return owner

    def _policies(self, owner: dict, cache: dict) -> list:
        user_name, key = owner["UserName"], (owner["AccountId"], owner["UserName"])
        if key in cache:
            return cache[key]
        iam = self._client("iam", account=owner["AccountId"])
        documents = [iam.get_user_policy(UserName=user_name, PolicyName=name)["PolicyDocument"]
                     for name in iam.list_user_policies(UserName=user_name)["PolicyNames"]]
        attached = iam.list_attached_user_policies(UserName=user_name)["AttachedPolicies"]
        for group in iam.list_groups_for_user(UserName=user_name)["Groups"]:
            documents += [iam.get_group_policy(GroupName=group["GroupName"], PolicyName=name)["PolicyDocument"]
                          for name in iam.list_group_policies(GroupName=group["GroupName"])["PolicyNames"]]
            attached += iam.list_attached_group_policies(GroupName=group["GroupName"])["AttachedPolicies"]
        for policy in attached:
            version = iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]["DefaultVersionId"]
            documents.append(iam.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"])
        cache[key] = [json.loads(doc) if isinstance(doc, str) else doc for doc in documents]
        return cache[key]

    # -- records -----------------------------------------------------------------------------------

    def _is_operator(self, operation) -> bool:
        return self._aws.operator_account(operation.access_key_id) is not None

    def _denial(self, exchange, owner: dict, policy_cache: dict) -> tuple[str, str]:
        operation = exchange.operation
        if exchange.denial is None:
            action = cloudtrail.iam_action(operation.service, operation.action)
            with self._lookup_lock:
                explicit = explicitly_denied(self._policies(owner, policy_cache), action)
            resource = cloudtrail.denied_resource(operation, owner["AccountId"], exchange.target)
            exchange.denial = cloudtrail.access_denied(operation, owner["Arn"], explicit, resource)
        return exchange.denial

    def denied_response(self, exchange) -> tuple[list, bytes] | None:
        """AWS's response to a call IAM denied to an IAM user's key (moto's is in the wrong shape and words)."""
        operation = exchange.operation
        if operation is None or not operation.action or not operation.access_key_id or self._is_operator(operation):
            return None
        code = parse_error(exchange.status, exchange.response_headers, exchange.error_body)[0]
        if code not in DENIED_ERRORS:
            return None
        with self._lookup_lock:
            owner = self._owner(operation.access_key_id)
        if owner is None:
            return None
        error = self._denial(exchange, owner, {})
        request_id = _request_id(exchange)
        return cloudtrail.error_response(operation, error, request_id)

    def _changed_canary(self, exchange, account: str) -> str | None:
        """The canary user a successful IAM write in ``account`` names, or None."""
        operation = exchange.operation
        if (operation.service != "iam" or not operation.action or cloudtrail.is_read_only(operation.action)
                or exchange.status >= 400):
            return None
        params = cloudtrail.request_parameters(operation, exchange.method, exchange.target, exchange.headers, exchange.body) or {}
        name = params.get("userName")
        if not isinstance(name, str) or not name:
            return None
        if any(isinstance(tag, dict) and (tag.get("key"), tag.get("value")) == CANARY_TAG for tag in params.get("tags") or []):
            self._canaries.add((account, name))
        if (account, name) not in self._canaries:
            import botocore.exceptions  # pylint: disable=import-outside-toplevel

            try:
                tags = self._client("iam", account=account).list_user_tags(UserName=name).get("Tags", [])
            except botocore.exceptions.ClientError:
                tags = []  # gone (DeleteUser): a canary only if it was seen as one
            if any((tag["Key"], tag["Value"]) == CANARY_TAG for tag in tags):
                self._canaries.add((account, name))
        return name if (account, name) in self._canaries else None

    def _operator_record(self, exchange) -> dict | None:
        """The root user's change to a canary user (the operator's other calls are not recorded)."""
        account = self._aws.operator_account(exchange.operation.access_key_id)
        if self._changed_canary(exchange, account) is None:
            return None
        return cloudtrail.build_record(exchange.operation, {"AccountId": account}, method=exchange.method, target=exchange.target,
                                       headers=exchange.headers, body=exchange.body, started=exchange.started,
                                       source_ip=exchange.client_ip, request_id=_request_id(exchange),
                                       identity=cloudtrail.root_identity(account, exchange.operation.access_key_id))

    def _record(self, exchange, policy_cache: dict) -> dict | None:
        operation = exchange.operation
        if operation is None or not operation.access_key_id:
            return None
        if self._is_operator(operation):
            return self._operator_record(exchange)
        error = code = message = None
        if exchange.status >= 400:
            code, message = parse_error(exchange.status, exchange.response_headers, exchange.error_body)
            if code in AUTHENTICATION_ERRORS:
                return None
        with self._lookup_lock:
            owner = self._owner(operation.access_key_id)
        if owner is None:
            return None
        self._changed_canary(exchange, owner["AccountId"])  # an IAM user making a user a canary: remember it too
        if not operation.action:
            self._problems.append(f"a call of {operation.service} by {owner['UserName']} was not identified: "
                                  f"{exchange.method} {exchange.target.split('?', 1)[0]}")
            return None
        if exchange.denial is not None or (code in DENIED_ERRORS and exchange.status == 403):
            error = self._denial(exchange, owner, policy_cache)
        elif exchange.status >= 400:
            error = (code, message or "")
        if not cloudtrail.is_modelled(operation.service):
            self._unmodelled.append((operation.service, operation.action))
        return cloudtrail.build_record(operation, owner, method=exchange.method, target=exchange.target, headers=exchange.headers,
                                       body=exchange.body, started=exchange.started, source_ip=exchange.client_ip,
                                       request_id=_request_id(exchange), error=error)

    def _trails(self, account: str, region: str, cache: dict) -> list[dict]:
        """Logging trails of ``account`` that see events of ``region``, with their selectors (moto ignores name filters)."""
        if (account, region) in cache:
            return cache[account, region]
        client = self._client("cloudtrail", region, account)
        trails = []
        for trail in client.describe_trails(includeShadowTrails=True).get("trailList", []):
            # moto answers these for a trail only in its home region.
            home = self._client("cloudtrail", trail.get("HomeRegion") or region, account)
            if not home.get_trail_status(Name=trail["TrailARN"]).get("IsLogging"):
                continue
            selectors = home.get_event_selectors(TrailName=trail["TrailARN"])
            trails.append(dict(trail, EventSelectors=selectors.get("EventSelectors") or [],
                               AdvancedEventSelectors=selectors.get("AdvancedEventSelectors") or []))
        cache[account, region] = trails
        return trails

    def _logging_trails(self, record: dict, trail_cache: dict) -> list[dict]:
        """The logging trails that log this record (with or without a log group): its account's own."""
        global_event = record["eventSource"].split(".", 1)[0] in cloudtrail.GLOBAL_SERVICES
        return [trail for trail in self._trails(record["recipientAccountId"], record["awsRegion"], trail_cache)
                if not (global_event and not trail.get("IncludeGlobalServiceEvents", True))
                and cloudtrail.trail_logs(record, trail["EventSelectors"], trail["AdvancedEventSelectors"])]

    def _destinations(self, record: dict, trail_cache: dict) -> list[dict]:
        destinations = []
        for trail in self._logging_trails(record, trail_cache):
            if not trail.get("CloudWatchLogsLogGroupArn"):
                continue
            # arn:aws:logs:REGION:ACCOUNT:log-group:NAME:*
            parts = trail["CloudWatchLogsLogGroupArn"].split(":")
            destinations.append({"trail": trail["TrailARN"], "region": parts[3], "logGroup": parts[6],
                                 "logStream": f"{record['recipientAccountId']}_CloudTrail_{record['awsRegion']}",
                                 "owner": parts[4]})
        return destinations

    def _event_id(self, timestamp: int) -> str:
        # CloudWatch Logs event ids are 56-digit numbers that grow with time.
        return f"{timestamp:013d}{next(self._sequence):043d}"

    def _write(self, account: str, region: str, group: str, stream: str, events: list) -> bool:  # pylint: disable=too-many-arguments
        import botocore.exceptions  # pylint: disable=import-outside-toplevel

        logs = self._client("logs", region, account)
        with contextlib.suppress(botocore.exceptions.ClientError):
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        try:
            logs.put_log_events(logGroupName=group, logStreamName=stream,
                                logEvents=[{"timestamp": event.timestamp, "message": event.message} for event in events])
        except botocore.exceptions.ClientError as exc:
            self._problems.append(f"writing to log group {group} ({account}, {region}): {exc}")
            return False
        return True

    # -- delivery ----------------------------------------------------------------------------------

    def flush(self) -> int:
        """Record, write and deliver everything submitted so far; returns the number of handler invocations."""
        with self._lock:
            exchanges = []
            while self._pending:
                exchanges.append(self._pending.popleft())
            policy_cache, trail_cache, rule_cache = {}, {}, {}
            # (account, region, group, stream) -> events: what the recorder writes, and what gets delivered (clients'
            # own PutLogEvents included).
            to_write = collections.defaultdict(list)
            to_deliver = collections.defaultdict(list)
            for exchange in exchanges:
                self._collect_put_log_events(exchange, to_deliver)
                record = self._record(exchange, policy_cache)
                if record is None:
                    continue
                entry = {"record": record, "written": []}
                self._records.append(entry)
                timestamp = int(exchange.started * 1000)
                message = json.dumps(record, separators=(",", ":"))
                for destination in self._destinations(record, trail_cache):
                    key = (destination["owner"], destination["region"], destination["logGroup"], destination["logStream"])
                    event = _LogEvent(self._event_id(timestamp), timestamp, message)
                    to_write[key].append(event)
                    to_deliver[key].append(event)
                    entry["written"].append(destination)
                if self._logging_trails(record, trail_cache):
                    # EventBridge gets CloudTrail's events only from an account with a logging trail.
                    self._route(eventbridge.cloudtrail_event(record), rule_cache)
            invocations = 0
            for key, events in to_deliver.items():
                if key in to_write and not self._write(*key, sorted(to_write[key], key=lambda event: event.timestamp)):
                    continue
                invocations += self._deliver(*key, sorted(events, key=lambda event: event.timestamp))
            return invocations

    def _collect_put_log_events(self, exchange, to_deliver):
        """Events a client put into a log group through the proxy: CloudWatch Logs delivers those too."""
        operation = exchange.operation
        if operation is None or operation.service != "logs" or operation.action != "PutLogEvents" or exchange.status != 200:
            return
        try:
            body = json.loads(exchange.body)
            account = self._aws.operator_account(operation.access_key_id) or self._aws.account_id
            key = (account, operation.region or "us-east-1", body["logGroupName"], body["logStreamName"])
            events = [_LogEvent(self._event_id(int(item["timestamp"])), int(item["timestamp"]), item["message"])
                      for item in body["logEvents"]]
        except (ValueError, KeyError, TypeError):
            return
        to_deliver[key].extend(events)

    def _pattern(self, text: str):
        if text not in self._patterns:
            try:
                self._patterns[text] = FilterPattern(text)
            except (UnsupportedPattern, PatternSyntaxError) as exc:
                self._patterns[text] = exc
        return self._patterns[text]

    def _deliver(self, owner: str, region: str, group: str, stream: str, events: list) -> int:  # pylint: disable=too-many-arguments
        """Each subscription filter of ``owner``'s log group gets the events its pattern matches."""
        invocations = 0
        filters = self._client("logs", region, owner).describe_subscription_filters(logGroupName=group).get("subscriptionFilters", [])
        for subscription in filters:
            pattern = self._pattern(subscription.get("filterPattern", ""))
            if isinstance(pattern, Exception):
                self._problems.append(f"subscription filter {subscription['filterName']} of {group}: {pattern}")
                continue
            matching = [event for event in events if pattern.matches(event.message)]
            for batch in batches(matching):
                payload = subscription_payload(owner, group, stream, subscription["filterName"], batch)
                self._invoke(subscription, payload, len(batch), region, owner)
                invocations += 1
        return invocations

    def _invoke(self, subscription: dict, payload: dict, count: int, region: str, owner: str):  # pylint: disable=too-many-arguments
        destination = subscription.get("destinationArn", "")
        delivery = {"filter": subscription["filterName"], "logGroup": subscription.get("logGroupName"),
                    "destination": destination, "event": payload, "events": count, "result": None, "error": None}
        try:
            if self._handler is not None:
                delivery["result"] = self._handler(payload, LambdaContext(destination if ":lambda:" in destination else
                                                                          f"arn:aws:lambda:{region}:{owner}:function:local-handler"))
            elif ":lambda:" in destination:
                delivery["result"] = self._invoke_lambda(destination, payload)
            else:
                delivery["error"] = f"destination {destination} is not a Lambda function: not modelled"
                self._problems.append(delivery["error"])
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # A failing handler is a finding for the test that reads deliveries(), not a crash of the loop.
            delivery["error"] = f"{type(exc).__name__}: {exc}"
            LOGGER.warning("handler for %s raised %s", destination, delivery["error"])
        self._deliveries.append(delivery)

    def _invoke_lambda(self, function_arn: str, payload: dict):
        return self._runtime.invoke(function_arn, payload)

    # -- schedules ---------------------------------------------------------------------------------

    @staticmethod
    def _regions() -> list[str]:
        import boto3  # pylint: disable=import-outside-toplevel

        # EventBridge's regions as botocore's endpoint data lists them (the aws partition).
        return boto3.session.Session().get_available_regions("events")

    def fire_schedules(self, regions=None, accounts=None) -> list[dict]:
        """Run every due scheduled target once, as EventBridge would; returns one entry per target.

        In each account (default: every account seen, ``accounts()``) and region (default: every region
        of EventBridge), every rule of the default bus that has a
        ScheduleExpression and is ENABLED: each Lambda target gets EventBridge's ``Scheduled Event``
        (or the target's constant ``Input``) through the same in-process Lambda as the subscription
        deliveries, but only if the function's resource-based policy lets ``events.amazonaws.com``
        invoke it for that rule; without that permission AWS's invocation fails, so the entry gets an
        error and the function does not run.  ``handler=`` of LocalAWS stands in for the subscription's
        destination only: schedules always run their target's code.
        """
        with self._lock:
            fired = []
            for account in accounts or self.accounts():
                for region in regions or self._regions():
                    events = self._client("events", region, account)
                    for page in events.get_paginator("list_rules").paginate():
                        for rule in page.get("Rules", []):
                            # ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS exists for event patterns only.
                            if not rule.get("ScheduleExpression") or rule.get("State") != "ENABLED":
                                continue
                            params = {"Rule": rule["Name"], "EventBusName": rule.get("EventBusName") or "default"}
                            for targets in events.get_paginator("list_targets_by_rule").paginate(**params):
                                for target in targets.get("Targets", []):
                                    fired.append(self._fire(region, rule, target))
            self._fired.extend(fired)
            return fired

    def put_events(self, events) -> list[dict]:
        """Put events (dicts in EventBridge's shape, e.g. ``eventbridge.health_event(...)``) on the
        default bus of their ``account`` and ``region``: every matching rule runs its Lambda targets now.  Returns one
        entry per target run or refused (also kept in ``routed()``)."""
        with self._lock:
            cache, entries = {}, []
            for event in [events] if isinstance(events, dict) else events:
                entries.extend(self._route(event, cache))
            return entries

    def _rules(self, account: str, region: str, cache: dict) -> list[tuple]:
        """(rule, targets) of the event-pattern rules of ``account``'s default bus in ``region``."""
        if (account, region) not in cache:
            events = self._client("events", region, account)
            found = []
            for page in events.get_paginator("list_rules").paginate():
                for rule in page.get("Rules", []):
                    if not rule.get("EventPattern"):
                        continue
                    params = {"Rule": rule["Name"], "EventBusName": rule.get("EventBusName") or "default"}
                    targets = [target for targets in events.get_paginator("list_targets_by_rule").paginate(**params)
                               for target in targets.get("Targets", [])]
                    found.append((rule, targets))
            cache[account, region] = found
        return cache[account, region]

    def _route(self, event: dict, cache: dict) -> list[dict]:
        entries = []
        region = event.get("region") or "us-east-1"
        for rule, targets in self._rules(event.get("account") or self._aws.account_id, region, cache):
            if eventbridge.rule_receives(rule, event):
                entries.extend(self._fire(region, rule, target, event) for target in targets)
        self._routed.extend(entries)
        return entries

    def _fire(self, region: str, rule: dict, target: dict, event: dict | None = None) -> dict:
        destination = target.get("Arn", "")
        # A rule's account is in its ARN (arn:aws:events:REGION:ACCOUNT:rule/NAME).
        account = rule["Arn"].split(":")[4]
        event = event or eventbridge.scheduled_event(account, region, rule["Arn"])
        entry = {"rule": rule["Name"], "rule_arn": rule["Arn"], "region": region, "target": target.get("Id"),
                 "destination": destination, "event": event, "result": None, "error": None}
        try:
            entry["event"] = eventbridge.target_input(target, event)
        except ValueError as exc:  # NotModelled, or an Input that is not JSON (EventBridge refuses those)
            entry["error"] = str(exc)
            self._problems.append(f"rule {rule['Name']}: {exc}")
            return entry
        if ":lambda:" not in destination:
            entry["error"] = f"target {destination} of rule {rule['Name']} is not a Lambda function: not modelled"
            self._problems.append(entry["error"])
            return entry
        try:
            policy = self._function_policy(destination)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # Unreadable is not permitted: the entry says why, and the other targets still fire.
            entry["error"] = f"reading the resource-based policy of {destination}: {type(exc).__name__}: {exc}"
            return entry
        if not eventbridge.invoke_permitted(policy, rule["Arn"], account):
            # What AWS does: the invocation fails (the rule's FailedInvocations metric), the function never runs.
            entry["error"] = (f"the resource-based policy of {destination} does not let {eventbridge.EVENTS_PRINCIPAL} "
                              f"invoke it for {rule['Arn']}: not invoked")
            LOGGER.warning("%s", entry["error"])
            return entry
        try:
            entry["result"] = self._invoke_lambda(destination, entry["event"])
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # As for deliveries: a failing function is a finding for the caller, not a crash of the fire.
            entry["error"] = f"{type(exc).__name__}: {exc}"
            LOGGER.warning("scheduled target %s raised %s", destination, entry["error"])
        return entry

    def _function_policy(self, function_arn: str) -> str | None:
        """The function's resource-based policy (JSON), or None when it has none."""
        import botocore.exceptions  # pylint: disable=import-outside-toplevel

        try:
            return self._client("lambda", function_arn.split(":")[3], function_account(function_arn)).get_policy(
                FunctionName=function_arn)["Policy"]
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None
            raise
