# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The estate inventory: every canary IAM user with its mapping, its keys and, on request, their last use.

No Ansible here: ``inventory(client, ...)`` takes any botocore IAM client (the module passes
AnsibleAWSModule's retrying client with ``aws_retry=True``; tests and the benchmark pass a plain
boto3 client).

Why these calls (docs/canary_key_info.md has the full story):

* ``ListUsers`` does not return tags and a canary is recognised only by its tags, so users come from
  ``GetAccountAuthorizationDetails`` with ``Filter=["User"]``: every user *with its tags*, up to 1,000
  per page.  Its cost grows with pages, not users.
* No bulk IAM read returns access key ids.  ``ListAccessKeys`` (one call per user) is the only
  listing of ids and is always current: that is ``key_source="list_access_keys"``.
* The credential report (``GenerateCredentialReport`` + ``GetCredentialReport``) gives every user's
  key 1/2 active flag, creation date and last use in one download, but no key ids, and IAM regenerates
  it at most every 4 hours.  ``canary_key`` records the key it hands out on the user
  (``canarykeys:access-key-id`` and ``-created``, which GetAccountAuthorizationDetails returns with the
  other tags), so a report slot created at that very second is that key: that is
  ``key_source="credential_report"``, the default.  A canary the report and its tags do not account for
  exactly (no tags, a second key, a key made or deleted after the report) is listed with
  ``ListAccessKeys`` instead, so a rotation in progress or an orphan is always seen with its ids.

IAM calls (U = users in the account, canaries or not; S = canaries the filters select; K = their keys;
F = selected canaries the credential report does not cover; P = max(1, ceil(U / page_size)), more only
if IAM returns short pages)::

    list_access_keys    P GetAccountAuthorizationDetails + S ListAccessKeys       [+ K GetAccessKeyLastUsed]
    credential_report   P GetAccountAuthorizationDetails + G GenerateCredentialReport (1 + polls, usually 1)
                        + 1 GetCredentialReport + F ListAccessKeys                 [+ K GetAccessKeyLastUsed]

The bracketed term is paid only with ``last_used=True``: the report has a last-used column, but it may
be hours old, and a used canary is the one fact this inventory must not report late.
"""

from __future__ import annotations

import collections
import csv
import datetime
import io
import math
import threading
import time

try:
    from botocore.exceptions import ClientError
except ImportError:  # the module reports the missing SDK; this only keeps the import working
    ClientError = Exception


from ansible_collections.canarykeys.aws.plugins.module_utils import canary_mapping
from ansible_collections.canarykeys.aws.plugins.module_utils.concurrency import MAX_CONCURRENCY, parallel_map

LIST_ACCESS_KEYS = "list_access_keys"
CREDENTIAL_REPORT = "credential_report"
KEY_SOURCES = (CREDENTIAL_REPORT, LIST_ACCESS_KEYS)
KEY_STATUSES = ("Active", "Inactive")
# GetAccountAuthorizationDetails accepts MaxItems 1..1000 (botocore's IAM model).
MAX_PAGE_SIZE = 1000
DEFAULT_CONCURRENCY = 4
_MAX_POLL_INTERVAL = 10.0

ORPHAN_NO_KEY = "no_key"
ORPHAN_NOT_NEWEST = "not_newest"
# Results are sorted by placement, so a report reads host by host.
_PLACEMENT_ORDER = ("host", "path", "profile")

# Values IAM (and moto) put in date/region/service fields that mean "nothing here".
_NO_VALUE = frozenset(("", "N/A", "n/a", "not_supported", "no_information"))


class InventoryError(Exception):
    """The inventory could not be completed for a reason other than an AWS error."""


def _action_name(method: str) -> str:
    return "".join(part.capitalize() for part in method.split("_"))


def _error_code(error) -> str:
    return (getattr(error, "response", None) or {}).get("Error", {}).get("Code", "")


class IAMReader:
    """Calls IAM through a client and counts each call by action (retries inside the client are not counted)."""

    def __init__(self, client, aws_retry: bool = False):
        self.client = client
        self._extra = {"aws_retry": True} if aws_retry else {}
        self.calls = collections.Counter()
        self._lock = threading.Lock()

    def call(self, method: str, **params):
        with self._lock:
            self.calls[_action_name(method)] += 1
        return getattr(self.client, method)(**self._extra, **params)


# ---------------------------------------------------------------- times


utc = canary_mapping.utc


def iso(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.replace(microsecond=0).isoformat()


def age_days(created: datetime.datetime | None, now: datetime.datetime) -> int | None:
    if created is None:
        return None
    return max(0, math.floor((now - created).total_seconds() / 86400))


def _plain(value) -> str | None:
    text = "" if value is None else str(value).strip()
    return None if text in _NO_VALUE else text


def last_use(date, service, region) -> dict:
    """One key's last use in the module's shape; a key never used has ``used: false`` and nulls."""
    when = utc(date)
    if when is None:
        return {"used": False, "date": None, "service_name": None, "region": None}
    return {"used": True, "date": iso(when), "service_name": _plain(service), "region": _plain(region)}


# ---------------------------------------------------------------- IAM reads


def canary_users(reader: IAMReader, page_size: int = MAX_PAGE_SIZE):
    """Yield (user detail, mapping) for every user tagged as ours, one GetAccountAuthorizationDetails page at a time."""
    params = {"Filter": ["User"], "MaxItems": page_size}
    while True:
        page = reader.call("get_account_authorization_details", **params)
        for user in page.get("UserDetailList", []):
            mapping = canary_mapping.mapping_from_tags(user.get("Tags", []))
            if mapping is not None:
                yield user, mapping
        # IAM may return fewer than MaxItems and still have more: only IsTruncated ends the listing.
        if not page.get("IsTruncated"):
            return
        params["Marker"] = page["Marker"]


def listed_keys(reader: IAMReader, user_name: str) -> list[dict] | None:
    """The user's keys from ListAccessKeys (at most 2, so never a second page); None if the user is gone."""
    try:
        response = reader.call("list_access_keys", UserName=user_name)
    except ClientError as error:
        if _error_code(error) == "NoSuchEntity":
            return None
        raise
    return [
        {"access_key_id": key["AccessKeyId"], "status": key["Status"], "created": utc(key.get("CreateDate"))}
        for key in response.get("AccessKeyMetadata", [])
    ]


def key_last_use(reader: IAMReader, access_key_id: str) -> dict | None:
    """GetAccessKeyLastUsed for one key; None if the key was deleted meanwhile."""
    try:
        response = reader.call("get_access_key_last_used", AccessKeyId=access_key_id)
    except ClientError as error:
        if _error_code(error) in ("NoSuchEntity", "AccessDenied"):
            # AWS answers AccessDenied, moto NoSuchEntity, for a key that no longer exists.
            return None
        raise
    info = response.get("AccessKeyLastUsed", {})
    return last_use(info.get("LastUsedDate"), info.get("ServiceName"), info.get("Region"))


class CredentialReport:
    """The parsed credential report: key slots per user name, and how new the report is."""

    def __init__(self, text: str, generated=None):
        self.rows = {row["user"]: row for row in csv.DictReader(io.StringIO(text)) if row.get("user")}
        # IAM's GeneratedTime is the truth on AWS; moto builds the report live but answers a fixed
        # 2015 date.  A report cannot list anything that did not exist yet, so it is at least as
        # new as every time it contains.
        times = [utc(generated)]
        for row in self.rows.values():
            times.append(utc(row.get("user_creation_time")))
            for slot in (1, 2):
                times.append(utc(row.get(f"access_key_{slot}_last_rotated")))
                times.append(utc(row.get(f"access_key_{slot}_last_used_date")))
        known = [when for when in times if when is not None]
        self.as_of = max(known) if known else None

    def covers(self, user_name: str, planted_key) -> bool:
        """Whether the report names every key of this canary: it holds exactly one, created when the tags say.

        ``planted_key`` is ``canary_mapping.planted_key_from_tags()`` of the user.  Anything else (no tags,
        no key or two keys in the report, a key of another second) is a state the report cannot name the
        keys of, or that changed after it was made: the caller lists that user with ListAccessKeys.
        """
        if planted_key is None or user_name not in self.rows:
            return False
        slots = self._slots(self.rows[user_name])
        return len(slots) == 1 and slots[0][1] == planted_key[1]

    @staticmethod
    def _slots(row: dict) -> list[tuple[int, datetime.datetime]]:
        slots = [(slot, utc(row.get(f"access_key_{slot}_last_rotated"))) for slot in (1, 2)]
        return [(slot, created) for slot, created in slots if created is not None]

    def keys(self, user_name: str, planted_key=None) -> list[dict]:
        """The user's keys in the report; the one created when ``planted_key`` says gets its id."""
        row = self.rows[user_name]
        keys = []
        for slot, created in self._slots(row):
            keys.append({
                "access_key_id": planted_key[0] if planted_key and planted_key[1] == created else None,
                "slot": slot,
                "status": "Active" if row.get(f"access_key_{slot}_active", "").lower() == "true" else "Inactive",
                "created": created,
                "report_last_use": last_use(
                    row.get(f"access_key_{slot}_last_used_date"),
                    row.get(f"access_key_{slot}_last_used_service"),
                    row.get(f"access_key_{slot}_last_used_region"),
                ),
            })
        return keys


def credential_report(reader: IAMReader, poll_interval: float = 0.5, timeout: float = 300.0,
                      sleep=time.sleep, clock=time.monotonic) -> CredentialReport:
    """Generate (or reuse, if under 4 hours old) the account's credential report and download it.

    A new report usually takes seconds, a large account's longer: the polls start fast and back off.
    """
    deadline = clock() + timeout
    while reader.call("generate_credential_report").get("State") != "COMPLETE":
        if clock() >= deadline:
            raise InventoryError(f"IAM did not finish the credential report within {timeout:.0f} seconds")
        sleep(poll_interval)
        poll_interval = min(poll_interval * 2, _MAX_POLL_INTERVAL)
    response = reader.call("get_credential_report")
    content = response.get("Content", b"")
    text = content.decode("utf-8") if isinstance(content, bytes) else str(content)
    return CredentialReport(text, response.get("GeneratedTime"))


# ---------------------------------------------------------------- assembling the result


def _newest_first(keys: list[dict]) -> list[dict]:
    oldest = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    return sorted(keys, key=lambda key: (key["created"] or oldest, key["access_key_id"] or "", key.get("slot", 0)), reverse=True)


def _key_result(key: dict, newest: bool, now: datetime.datetime, with_last_use: bool) -> dict:
    result = {
        "access_key_id": key["access_key_id"],
        "status": key["status"],
        "create_date": iso(key["created"]),
        "age_days": age_days(key["created"], now),
        "newest": newest,
    }
    if "slot" in key:
        result["report_slot"] = key["slot"]
    if with_last_use:
        result["last_used"] = key.get("last_use") or last_use(None, None, None)
    return result


def _orphans(canary: dict) -> list[dict]:
    base = {
        "user_name": canary["user_name"],
        "user_arn": canary["user_arn"],
        "placement_id": canary["mapping"]["placement_id"],
        "host": canary["mapping"]["host"],
        "path": canary["mapping"]["path"],
        "profile": canary["mapping"]["profile"],
    }
    if not canary["keys"]:
        return [dict(base, reason=ORPHAN_NO_KEY, access_key_id=None, status=None, create_date=None, age_days=None)]
    return [
        dict(base, reason=ORPHAN_NOT_NEWEST, access_key_id=key["access_key_id"], status=key["status"],
             create_date=key["create_date"], age_days=key["age_days"])
        for key in canary["keys"] if not key["newest"]
    ]


def placement_row(canary: dict, with_last_use: bool) -> dict:
    """One flat row per placement: its mapping, its user and its newest listed key; the report's unit."""
    mapping = canary["mapping"]
    key = canary["keys"][0] if canary["keys"] else {}
    row = {field: mapping[field] for field in ("host", "path", "profile", "reminder", "planted_at", "planted_by",
                                               "generation", "placement_id")}
    row.update({
        "user_name": canary["user_name"],
        "user_arn": canary["user_arn"],
        "iam_path": canary["iam_path"],
        "access_key_id": key.get("access_key_id"),
        "key_status": key.get("status"),
        "key_create_date": key.get("create_date"),
        "age_days": key.get("age_days"),
        "key_count": len(canary["keys"]),
    })
    if with_last_use:
        # A placement is burnt if ANY of its keys was used, not only the newest one.
        uses = [(k["last_used"], k["access_key_id"]) for k in canary["keys"] if k["last_used"]["used"]]
        latest, latest_key = max(uses, key=lambda use: use[0]["date"]) if uses else (last_use(None, None, None), None)
        row.update({
            "used": bool(uses),
            "last_used_date": latest["date"],
            "last_used_service": latest["service_name"],
            "last_used_region": latest["region"],
            "last_used_access_key_id": latest_key,
        })
    return row


def _read_keys(reader: IAMReader, selected: list, report: CredentialReport | None, concurrency: int) -> tuple[dict, dict]:
    """User name -> keys newest first, and user name -> where they came from.

    From the report where it names every key of the canary, else from ListAccessKeys.
    """
    planted = {user["UserName"]: canary_mapping.planted_key_from_tags(user.get("Tags", [])) for user, _mapping in selected}
    from_report = {name for name, key in planted.items() if report is not None and report.covers(name, key)}
    to_list = [user["UserName"] for user, _mapping in selected if user["UserName"] not in from_report]
    listed = dict(zip(to_list, parallel_map(lambda name: listed_keys(reader, name), to_list, concurrency)))
    keys_of, source_of = {}, {}
    for user, _mapping in selected:
        name = user["UserName"]
        keys = report.keys(name, planted[name]) if name in from_report else listed[name]
        if keys is not None:  # None: the user was deleted while we listed
            keys_of[name] = _newest_first(keys)
            source_of[name] = CREDENTIAL_REPORT if name in from_report else LIST_ACCESS_KEYS
    return keys_of, source_of


def _read_last_use(reader: IAMReader, keys_of: dict, concurrency: int) -> None:
    """Set each key's ``last_use``: GetAccessKeyLastUsed for keys with an id, the report's columns for the others."""
    for keys in keys_of.values():
        for key in keys:
            key["last_use"] = key.get("report_last_use")
    with_ids = [key for keys in keys_of.values() for key in keys if key["access_key_id"]]
    for key, use in zip(with_ids, parallel_map(lambda k: key_last_use(reader, k["access_key_id"]), with_ids, concurrency)):
        key["last_use"] = use
        key["gone"] = use is None


def inventory(client, hosts=None, status=None, iam_path=None, last_used=False, key_source=CREDENTIAL_REPORT,
              page_size=MAX_PAGE_SIZE, concurrency=DEFAULT_CONCURRENCY, aws_retry=False, now=None,
              report_poll_interval=0.5, report_timeout=300.0) -> dict:
    """List the canaries of the account.

    hosts       only canaries whose host tag is one of these (exact match, after IAM's tag sanitising)
    status      only keys with this status (Active or Inactive); canaries left without a key are dropped
    iam_path    only users whose IAM path starts with this prefix
    last_used   add each key's last use (GetAccessKeyLastUsed, one call per listed key with an id)

    Orphans are computed over all keys of the canaries that ``hosts`` and ``iam_path`` select, whatever
    ``status`` says: a reconciliation must see every key it may have to delete.
    """
    if key_source not in KEY_SOURCES:
        raise InventoryError(f"key_source must be one of {', '.join(KEY_SOURCES)}")
    if status is not None and status not in KEY_STATUSES:
        raise InventoryError(f"status must be one of {', '.join(KEY_STATUSES)}")
    if not 1 <= int(page_size) <= MAX_PAGE_SIZE:
        raise InventoryError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    if not 1 <= int(concurrency) <= MAX_CONCURRENCY:
        raise InventoryError(f"concurrency must be between 1 and {MAX_CONCURRENCY}")
    now = utc(now) or datetime.datetime.now(datetime.timezone.utc)
    reader = IAMReader(client, aws_retry=aws_retry)
    wanted_hosts = {canary_mapping.sanitize_tag_value(host) for host in hosts} if hosts else None

    selected = [
        (user, mapping) for user, mapping in canary_users(reader, int(page_size))
        if (not iam_path or user.get("Path", "/").startswith(iam_path))
        and (wanted_hosts is None or mapping["host"] in wanted_hosts)
    ]

    report = credential_report(reader, report_poll_interval, report_timeout) if key_source == CREDENTIAL_REPORT and selected else None
    keys_of, source_of = _read_keys(reader, selected, report, concurrency)
    if last_used:
        _read_last_use(reader, keys_of, concurrency)

    canaries, orphans = [], []
    for user, mapping in selected:
        if user["UserName"] not in keys_of:
            continue
        keys = [key for key in keys_of[user["UserName"]] if not key.get("gone")]
        canary = {
            "user_name": user["UserName"],
            "user_id": user.get("UserId"),
            "user_arn": user.get("Arn"),
            "iam_path": user.get("Path", "/"),
            "create_date": iso(utc(user.get("CreateDate"))),
            "mapping": mapping,
            "key_source": source_of[user["UserName"]],
            "keys": [_key_result(key, index == 0, now, last_used) for index, key in enumerate(keys)],
        }
        orphans.extend(_orphans(canary))
        if status is not None:
            canary["keys"] = [key for key in canary["keys"] if key["status"] == status]
            if not canary["keys"]:
                continue
        canaries.append(canary)

    canaries.sort(key=lambda item: (*(item["mapping"][field] for field in _PLACEMENT_ORDER), item["user_name"]))
    orphans.sort(key=lambda item: (*(item[field] for field in _PLACEMENT_ORDER), item["user_name"], item["access_key_id"] or ""))
    placements = [placement_row(canary, last_used) for canary in canaries]
    summary = {
        "canaries": len(canaries),
        "access_keys": sum(len(canary["keys"]) for canary in canaries),
        "orphans": len(orphans),
        "hosts": len({canary["mapping"]["host"] for canary in canaries}),
    }
    if last_used:
        summary["used"] = sum(1 for row in placements if row["used"])
    return {
        "canaries": canaries,
        "placements": placements,
        "orphans": orphans,
        "summary": summary,
        "key_source": key_source,
        "credential_report_as_of": iso(report.as_of) if report is not None else None,
        "iam_calls": dict(sorted(reader.calls.items())),
    }
