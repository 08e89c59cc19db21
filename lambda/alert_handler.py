# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The alert Lambda's entry point: CloudTrail records and AWS Health events in, alerts out.

Entry point ``handler(event, context)``.  It accepts what the detection stack delivers:

* a CloudWatch Logs subscription payload (``{"awslogs": {"data": base64(gzip(json))}}``), whose
  ``logEvents[].message`` are CloudTrail records (the trail's log group, filter on IAM users);
* an EventBridge event ``AWS API Call via CloudTrail`` (the fast path, and the IAM changes of the
  tamper rule), the record in ``detail``: a change to a canary user by anyone but the collection's
  own runs is a ``tamper`` alert (``tamper_detector.py``), any other call a use of a key;
* an EventBridge ``AWS Health Event`` ``AWS_RISK_CREDENTIALS_EXPOSED``: an ``exposed`` alert per
  canary key AWS found published (``exposed_key_detector.py``).

Calls made by a principal of ``CANARY_TRUSTED_PRINCIPALS`` (the collection's own runs) never alert.

Only calls made by an IAM user, or with session credentials derived from one (GetSessionToken,
GetFederationToken: ``ASIA...`` keys that still name the user), are of interest.  They are grouped
per key; each user's mapping tags are read once per invocation (``iam:ListUserTags``) and decide
whether the key is a canary.  A user who is no canary is reported too ("unknown IAM user activity in
the canary account"), never dropped.  See docs/alerts.md for the payload and the channels.

Ships in the Lambda package next to ``canary_mapping.py`` (plugins/module_utils/_lambda_shared, the one tag
schema), ``alert_payload.py`` and ``alert_channels.py``.  Standard library + boto3 only.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import os
import time
import zlib

import alert_channels
import alert_payload
import canary_mapping
import exposed_key_detector
import tamper_detector

DETECTOR = "cloudtrail"
EVENTBRIDGE_DETAIL_TYPE = "AWS API Call via CloudTrail"
# Calls that turn a user's key into session credentials whose later calls name the same user.
SESSION_CALLS = frozenset(("GetSessionToken", "GetFederationToken"))

LOGGER = alert_payload.logger()

# The mapping of a user changes only when the seed rotates or retires its key; a minute of caching
# across warm invocations saves IAM calls during a burst without hiding those changes for long.
DEFAULT_CACHE_SECONDS = 60.0
CACHE_MAX_USERS = 1024
# The last mapping read of each canary, kept for a day by a warm function: the tamper detector needs
# it once the tags can no longer be read (the user deleted, its mapping tags removed).
REMEMBER_SECONDS = 86400.0


class MalformedRecord(ValueError):
    """A record that is not a CloudTrail record of the expected shape."""


class AlertDeliveryFailed(RuntimeError):
    """No channel took at least one alert: the invocation fails so that Lambda retries it and,
    once its retries are spent, keeps the event in the dead-letter queue."""


# ---------------------------------------------------------------- the payloads the stack delivers


def decode_awslogs(data: str) -> dict:
    """The JSON document inside a CloudWatch Logs subscription payload."""
    return json.loads(gzip.decompress(base64.b64decode(data, validate=True)))


def extract_records(event, unwrap: bool = True) -> tuple:
    """``(source, items, envelope_account)``: items are ``(raw record, fallback time)`` pairs.

    ``source`` is ``cloudwatch-logs``, ``cloudwatch-logs-control``, ``eventbridge``, ``health`` (the
    item is the whole AWS Health event) or ``unrecognised``; control and unrecognised without records.  A record of Lambda's on-failure destination
    (the dead-letter queue's message body) is replayed as the event it carries.
    """
    if not isinstance(event, dict):
        return "unrecognised", [], None
    if unwrap and isinstance(event.get("requestContext"), dict) and "requestPayload" in event:
        return extract_records(event["requestPayload"], unwrap=False)
    awslogs = event.get("awslogs")
    if isinstance(awslogs, dict) and "data" in awslogs:
        try:
            document = decode_awslogs(awslogs["data"])
        except (binascii.Error, OSError, EOFError, zlib.error, ValueError, TypeError) as error:
            LOGGER.error("cannot decode the CloudWatch Logs payload: %s", error)
            return "unrecognised", [], None
        if not isinstance(document, dict):
            return "unrecognised", [], None
        if document.get("messageType") == "CONTROL_MESSAGE":
            # CloudWatch Logs checks that the destination is reachable; there is nothing to alert on.
            return "cloudwatch-logs-control", [], None
        if document.get("messageType") != "DATA_MESSAGE" or not isinstance(document.get("logEvents"), list):
            return "unrecognised", [], None
        items = []
        for log_event in document["logEvents"]:
            if isinstance(log_event, dict):
                items.append((log_event.get("message"), _millis_to_iso(log_event.get("timestamp"))))
            else:
                items.append((log_event, None))
        return "cloudwatch-logs", items, document.get("owner")
    if event.get("detail-type") == EVENTBRIDGE_DETAIL_TYPE and "detail" in event:
        return "eventbridge", [(event["detail"], event.get("time"))], event.get("account")
    if exposed_key_detector.is_health_event(event):
        return "health", [(event, event.get("time"))], event.get("account")
    return "unrecognised", [], None


def _millis_to_iso(value):
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value / 1000.0))


def parse_record(raw) -> dict:
    if isinstance(raw, (str, bytes, bytearray)):
        try:
            raw = json.loads(raw)
        except ValueError as error:
            raise MalformedRecord(f"not JSON ({error})") from None
    if not isinstance(raw, dict):
        raise MalformedRecord(f"a {type(raw).__name__}, not a JSON object")
    return raw


# ---------------------------------------------------------------- who made the call


def _text(mapping: dict, key: str, where: str):
    value = mapping.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedRecord(f"{where}.{key} is a {type(value).__name__}, not a string")
    return value


def user_actor(record: dict):
    """``(account_id, user_name, user_arn, access_key_id)`` of the IAM user behind the call, or None.

    None for every principal that is not an IAM user nor a session of one (services, roots, roles,
    Identity Center users).  Sessions from GetFederationToken appear as ``FederatedUser`` with the
    user as ``sessionIssuer``; those from GetSessionToken keep ``type: IAMUser``.
    """
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        raise MalformedRecord("no userIdentity object")
    kind = _text(identity, "type", "userIdentity")
    if kind is None:
        raise MalformedRecord("userIdentity has no type")
    key_id = _text(identity, "accessKeyId", "userIdentity")
    if kind == "IAMUser":
        name = _text(identity, "userName", "userIdentity")
        arn = _text(identity, "arn", "userIdentity")
        account = _text(identity, "accountId", "userIdentity")
    else:
        context = identity.get("sessionContext")
        issuer = context.get("sessionIssuer") if isinstance(context, dict) else None
        if not isinstance(issuer, dict) or issuer.get("type") != "IAMUser":
            return None
        name = _text(issuer, "userName", "sessionIssuer")
        arn = _text(issuer, "arn", "sessionIssuer")
        account = _text(issuer, "accountId", "sessionIssuer") or _text(identity, "accountId", "userIdentity")
    if name is None and arn is not None and ":user/" in arn:
        name = arn.rsplit("/", 1)[-1]
    if name is None:
        raise MalformedRecord(f"a {kind} record that names no user")
    return account, name, arn, key_id


def session_parent(record: dict, caller_key):
    """``(session key, parent key)`` when the record is a user minting session credentials."""
    name = record.get("eventName")
    if not isinstance(name, str) or name not in SESSION_CALLS or not caller_key or record.get("errorCode"):
        return None
    response = record.get("responseElements")
    credentials = response.get("credentials") if isinstance(response, dict) else None
    session_key = credentials.get("accessKeyId") if isinstance(credentials, dict) else None
    if isinstance(session_key, str) and session_key and session_key != caller_key:
        return session_key, caller_key
    return None


def is_session_key(key_id) -> bool:
    # AKIA: a long-term user key; ASIA: temporary credentials from STS.
    return bool(key_id) and key_id.startswith("ASIA")


# ---------------------------------------------------------------- the mapping record of a user


class MappingCache:
    """Mappings kept across warm invocations: a short TTL and a bounded number of users."""

    def __init__(self, max_users: int = CACHE_MAX_USERS, clock=time.monotonic):
        self.max_users = max_users
        self.clock = clock
        self._entries = {}

    def get(self, key, ttl: float):
        entry = self._entries.get(key)
        if entry is None or ttl <= 0 or self.clock() - entry[0] > ttl:
            return None
        return entry[1]

    def put(self, key, value, ttl: float) -> None:
        if ttl <= 0 or self.max_users <= 0:
            return
        self._entries.pop(key, None)
        if len(self._entries) >= self.max_users:
            now = self.clock()
            for stale in [k for k, (stamp, _value) in self._entries.items() if now - stamp > ttl]:
                del self._entries[stale]
            while len(self._entries) >= self.max_users:
                # Dicts keep insertion order: the oldest entry goes first.
                del self._entries[next(iter(self._entries))]
        self._entries[key] = (self.clock(), value)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self):
        return len(self._entries)


_MAPPING_CACHE = MappingCache()
_REMEMBERED = MappingCache()
_IAM_CLIENT = []


def iam_client():
    if not _IAM_CLIENT:
        import boto3  # pylint: disable=import-outside-toplevel  # keeps the pure parts importable without it

        _IAM_CLIENT.append(boto3.client("iam"))
    return _IAM_CLIENT[0]


def reset_state() -> None:
    """Forget every client and cached mapping (tests; a new account)."""
    _MAPPING_CACHE.clear()
    _REMEMBERED.clear()
    del _IAM_CLIENT[:]
    alert_channels._SNS_CLIENTS.clear()  # pylint: disable=protected-access


class UserDirectory:
    """What IAM says about the users of one invocation: each user is read at most once."""

    def __init__(self, iam, cache: MappingCache = _MAPPING_CACHE, ttl: float = DEFAULT_CACHE_SECONDS,
                 memory: MappingCache = _REMEMBERED):
        self._iam = iam
        self.cache = cache
        self.ttl = ttl
        self.memory = memory
        self.lookups = 0
        self.errors = 0
        self._mappings = {}
        self._keys = {}
        self._gone = set()
        self._owners = {}

    @property
    def iam(self):
        # Created on the first read: a batch with nothing to look up opens no client.
        if self._iam is None:
            self._iam = iam_client()
        return self._iam

    def remembered(self, user_name: str):
        """The mapping last read for this user by this warm function (within a day), or None."""
        entry = self.memory.get(user_name, REMEMBER_SECONDS)
        return entry[0] if entry is not None else None

    def gone(self, user_name: str) -> bool:
        """Whether IAM said, in this invocation, that the user does not exist."""
        return user_name in self._gone

    def _read_once(self, memo: dict, name: str, read, what: str):
        """``read()`` once per invocation and ``name``; None (logged) when IAM refuses it."""
        if name in memo:
            return memo[name]
        from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel

        self.lookups += 1
        value = None
        try:
            value = read()
        except (ClientError, BotoCoreError) as error:
            LOGGER.warning("cannot read %s %s: %s", what, name, error)
        memo[name] = value
        return value

    def owner_of_key(self, key_id: str):
        """The user name of an access key of this account (``iam:GetAccessKeyLastUsed``), or None:
        a key deleted since, or of another account (the alert says what the event says)."""
        return self._read_once(self._owners, key_id, lambda: self.iam.get_access_key_last_used(AccessKeyId=key_id).get("UserName") or None,
                               "the owner of access key")

    def mapping(self, user_name: str):
        """The user's mapping, or None: not a canary, gone, or unreadable (logged)."""
        if user_name in self._mappings:
            return self._mappings[user_name]
        cached = self.cache.get(user_name, self.ttl)
        if cached is not None:
            self._mappings[user_name] = cached[0]
            return cached[0]
        from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel

        self.lookups += 1
        mapping = None
        try:
            tags = self._all_tags(user_name)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "NoSuchEntity":
                # Retired (or never ours) between the call and now: alert with what the record says.
                LOGGER.warning("IAM user %s no longer exists; alerting with the record's facts", user_name)
                self._gone.add(user_name)
                self.cache.put(user_name, (None,), self.ttl)
            else:
                self.errors += 1
                LOGGER.error("cannot read the tags of IAM user %s (%s); alerting without its mapping", user_name, code)
        except BotoCoreError as error:
            self.errors += 1
            LOGGER.error("cannot read the tags of IAM user %s (%s); alerting without its mapping", user_name, error)
        else:
            mapping = canary_mapping.mapping_from_tags(tags)
            self.cache.put(user_name, (mapping,), self.ttl)
            if mapping is not None:
                self.memory.put(user_name, (mapping,), REMEMBER_SECONDS)
        self._mappings[user_name] = mapping
        return mapping

    def _all_tags(self, user_name: str) -> list:
        # At most 50 tags per user fit one page; the loop is for a future raise of that quota.
        tags, marker = [], None
        while True:
            page = self.iam.list_user_tags(UserName=user_name, **({"Marker": marker} if marker else {}))
            tags.extend(page.get("Tags", []))
            if not page.get("IsTruncated"):
                return tags
            marker = page.get("Marker")

    def only_active_key(self, user_name: str):
        """The user's access key id when it has exactly one active key (a canary has one), else None."""

        def read():
            metadata = self.iam.list_access_keys(UserName=user_name).get("AccessKeyMetadata", [])
            active = [item["AccessKeyId"] for item in metadata if item.get("Status") == "Active"]
            return active[0] if len(active) == 1 else None

        return self._read_once(self._keys, user_name, read, "the access keys of IAM user")


# ---------------------------------------------------------------- the invocation


def _account_of_function(context):
    arn = getattr(context, "invoked_function_arn", None)
    parts = arn.split(":") if isinstance(arn, str) else []
    return parts[4] if len(parts) > 4 and parts[4] else None


def _remaining_seconds(context):
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(getter):
        return None
    return lambda: getter() / 1000.0


def _cache_seconds(environ) -> float:
    raw = environ.get("CANARY_MAPPING_CACHE_SECONDS", "")
    try:
        return max(0.0, float(raw)) if raw != "" else DEFAULT_CACHE_SECONDS
    except ValueError:
        LOGGER.error("CANARY_MAPPING_CACHE_SECONDS=%r is not a number; using %s", raw, DEFAULT_CACHE_SECONDS)
        return DEFAULT_CACHE_SECONDS


def _max_events(environ) -> int:
    raw = environ.get("CANARY_MAX_EVENTS", "")
    return int(raw) if raw.isdigit() else alert_payload.DEFAULT_MAX_EVENTS


class _UserCalls:
    """The calls of one IAM user in the batch, per access key as the records name it."""

    __slots__ = ("account_id", "by_key", "foreign", "trusted")

    def __init__(self, account_id, foreign):
        self.account_id = account_id
        self.foreign = foreign
        # A principal of CANARY_TRUSTED_PRINCIPALS: its calls alert only if it turns out to be a canary.
        self.trusted = False
        self.by_key = {}


def collect(items, home_account, max_events: int, trusted: tuple = ()) -> tuple:
    """Sort the records of a batch out: ``(users, session parents, counters)``.

    ``users`` maps ``(account id, user name)`` to its ``_UserCalls``; malformed records are logged
    and counted, never raised: one bad record must not cost the alert for the others.
    """
    users, parents = {}, {}
    counters = {"records": 0, "ignored": 0, "skipped": 0, "trusted": 0}
    for position, (raw, fallback_time) in enumerate(items):
        counters["records"] += 1
        record = None
        try:
            record = parse_record(raw)
            actor = user_actor(record)
            if actor is None:
                counters["ignored"] += 1
                continue
            summary = alert_payload.event_summary(record, fallback_time)
        except MalformedRecord as error:
            counters["skipped"] += 1
            event_id = record.get("eventID") if isinstance(record, dict) else None
            LOGGER.warning("skipping malformed record %d%s: %s", position, f" (eventID {event_id})" if event_id else "", error)
            continue
        except Exception:  # pylint: disable=broad-exception-caught
            # A shape nobody foresaw is still one record: the others keep their alert.
            counters["skipped"] += 1
            LOGGER.exception("skipping record %d: unexpected shape", position)
            continue
        account, name, _arn, key_id = actor
        recipient = record.get("recipientAccountId") if isinstance(record.get("recipientAccountId"), str) else None
        home = home_account or recipient
        account = account or home
        calls = users.get((account, name))
        if calls is None:
            # A user of another account (an organisation trail, a cross-account call) is not in our
            # IAM: looking its name up here could even find a namesake.
            calls = users[(account, name)] = _UserCalls(account, bool(account and home and account != home))
            calls.trusted = tamper_detector.is_trusted(tamper_detector.principal(record), trusted)
        group = calls.by_key.get(key_id)
        if group is None:
            group = calls.by_key[key_id] = alert_payload.EventGroup(max_events)
        group.add(summary)
        parent = session_parent(record, key_id)
        if parent is not None:
            parents[parent[0]] = parent[1]
    return users, parents, counters


def build_alerts(users: dict, parents: dict, directory: UserDirectory, counters: dict | None = None, account: str = "") -> list:
    """One alert per key: session credentials count as the user's key when it can be told.

    ``account``: the function's account name (``alert_payload.account_name``).
    """
    alerts = []
    for (_account, name), calls in users.items():
        mapping = None if calls.foreign else directory.mapping(name)
        if calls.trusted and mapping is None:
            # The collection's own runs.  A pattern broad enough to cover a canary never hides its use.
            if counters is not None:
                counters["trusted"] += sum(group.count for group in calls.by_key.values())
            continue
        by_parent = {}
        for key_id, group in calls.by_key.items():
            key = key_id
            if is_session_key(key_id):
                key = parents.get(key_id) or (directory.only_active_key(name) if mapping is not None else None) or key_id
            if key in by_parent:
                by_parent[key].merge(group)
            else:
                by_parent[key] = group
        for key, group in by_parent.items():
            alerts.append(alert_payload.build_alert(DETECTOR, calls.account_id, name, key, mapping, group, account))
    alerts.sort(key=lambda alert: (alert["first_seen"] or "", alert["iam_user"] or "", alert["access_key_id"] or ""))
    return alerts


def _tamper(items, directory: UserDirectory, trusted: tuple, counters: dict, account: str = "") -> tuple:
    """``(tamper alerts, items left for the key-use path)`` of an EventBridge CloudTrail event.

    A change to a canary user makes one tamper alert and nothing else; a change by a trusted
    principal makes none at all; any other call goes on to the key-use path.
    """
    raw, fallback_time = items[0]
    try:
        record = parse_record(raw)
    except MalformedRecord:
        return [], items
    if not tamper_detector.is_candidate(record):
        return [], items
    alert, reason = tamper_detector.examine(record, directory, trusted, fallback_time, account)
    if alert is not None:
        counters["records"] += 1
        return [alert], []
    if reason == "trusted":
        counters["records"] += 1
        counters["trusted"] += 1
        return [], []
    return [], items


def process(event, context=None, environ=None, iam=None, dispatcher=None) -> dict:
    """The whole invocation; ``handler`` with its collaborators open to tests and benchmarks."""
    environ = os.environ if environ is None else environ
    source, items, envelope_account = extract_records(event)
    if source not in ("cloudwatch-logs", "eventbridge", "health"):
        if source == "unrecognised":
            LOGGER.warning("not a CloudWatch Logs payload, an EventBridge CloudTrail event nor an AWS Health event; "
                           "ignored (keys: %s)", sorted(event)[:10] if isinstance(event, dict) else type(event).__name__)
        return {"source": source, "records": 0, "ignored": 0, "skipped": 0, "trusted": 0, "alerts": 0, "undelivered": 0,
                "iam_lookups": 0, "sent": []}

    home_account = _account_of_function(context) or envelope_account
    trusted = tamper_detector.trusted_patterns(environ)
    account = alert_payload.account_name(environ)
    directory = UserDirectory(iam, ttl=_cache_seconds(environ))
    counters = {"records": 0, "ignored": 0, "skipped": 0, "trusted": 0}
    if source == "health":
        alerts = exposed_key_detector.alerts(items[0][0], directory, account)
        counters.update(records=1, ignored=0 if alerts else 1)
    else:
        alerts = []
        if source == "eventbridge":
            alerts, items = _tamper(items, directory, trusted, counters, account)
        users, parents, found = collect(items, home_account, _max_events(environ), trusted)
        for name, value in found.items():
            counters[name] += value
        alerts += build_alerts(users, parents, directory, counters, account)

    if dispatcher is None:
        dispatcher = alert_channels.Dispatcher.from_settings(alert_channels.ChannelSettings.from_environ(environ), _remaining_seconds(context))
    sent = []
    for alert in alerts:
        outcome = dispatcher.deliver(alert)
        sent.append({"detector": alert["detector"], "alert": alert["alert"], "iam_user": alert["iam_user"],
                     "access_key_id": alert["access_key_id"], "count": alert["count"], "delivered": outcome["delivered"],
                     "failed": sorted(outcome["failed"])})
    undelivered = sum(1 for item in sent if not item["delivered"])
    summary = dict(counters, source=source, alerts=len(alerts), undelivered=undelivered, iam_lookups=directory.lookups, sent=sent)
    LOGGER.info("%s", json.dumps(summary, separators=(",", ":")))
    if undelivered:
        raise AlertDeliveryFailed(f"{undelivered} of {len(alerts)} alert(s) reached no channel; see the log above")
    return summary


def handler(event, context):
    """Lambda entry point."""
    return process(event, context)
