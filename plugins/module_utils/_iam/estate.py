# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The estate: canary_key_info's listing of every canary IAM user with its mapping, its keys and, on request, their last use.

No Ansible here: ``list_estate(client, ...)`` takes any botocore IAM client (the module passes
AnsibleAWSModule's retrying client with ``aws_retry=True``; tests and the benchmark pass a plain
boto3 client).

Why these calls (docs/canary_key_info.md has the full story):

* Users with their tags come in bulk from ``GetAccountAuthorizationDetails`` (module_utils/_lambda_shared/
  iam_reads.py, which the last-used detector Lambda shares).
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
be hours old, and a used canary is the one fact this listing must not report late.
"""

from __future__ import annotations

import datetime
import math

from ansible_collections.canarykeys.aws.plugins.module_utils._iam.batch import MAX_CONCURRENCY, parallel_map
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.calls import recent_recorded_key, until_consistent
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.credential_report import CredentialReport, credential_report
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.errors import EstateError
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping, iam_reads
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared.canary_mapping import utc
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared.iam_reads import MAX_PAGE_SIZE

LIST_ACCESS_KEYS = "list_access_keys"
CREDENTIAL_REPORT = "credential_report"
KEY_SOURCES = (CREDENTIAL_REPORT, LIST_ACCESS_KEYS)
KEY_STATUSES = ("Active", "Inactive")
DEFAULT_CONCURRENCY = 4

ORPHAN_NO_KEY = "no_key"
ORPHAN_NOT_NEWEST = "not_newest"
# Results are sorted by placement, so a report reads host by host.
_PLACEMENT_ORDER = ("host", "path", "profile")


def iso(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.replace(microsecond=0).isoformat()


def age_days(created: datetime.datetime | None, now: datetime.datetime) -> int | None:
    if created is None:
        return None
    return max(0, math.floor((now - created).total_seconds() / 86400))


def last_use(date, service, region) -> dict:
    """One key's last use in the module's shape; a key never used has ``used: false`` and nulls."""
    when = utc(date)
    if when is None:
        return {"used": False, "date": None, "service_name": None, "region": None}
    return {"used": True, "date": iso(when), "service_name": iam_reads.plain(service), "region": iam_reads.plain(region)}


def listed_keys(call, user_name: str, expected=()) -> list[dict] | None:
    """The user's keys from ListAccessKeys; None if the user is gone.

    ``expected``: key ids recorded on the user seconds ago, read again until listed (IAM's eventual consistency):
    a retirement must see the key a rotation or seed just handed out, or it keeps the profile that holds it.
    """
    listed = until_consistent(
        lambda: iam_reads.list_access_keys(call, user_name),
        lambda keys: keys is None or all(key_id in {key["AccessKeyId"] for key in keys} for key_id in expected),
    )
    if listed is None:
        return None
    return [{"access_key_id": key["AccessKeyId"], "status": key["Status"], "created": utc(key.get("CreateDate"))} for key in listed]


def key_last_use(call, access_key_id: str) -> dict | None:
    """GetAccessKeyLastUsed for one key; None if the key was deleted meanwhile."""
    # AWS answers AccessDenied, moto NoSuchEntity, for a key that no longer exists.
    use = iam_reads.access_key_last_used(call, access_key_id, gone=("NoSuchEntity", "AccessDenied"))
    return None if use is None else last_use(use["date"], use["service"], use["region"])


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
        "dead": canary["dead"],
        "inline_policies": canary["inline_policies"],
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


def _read_keys(call: iam_reads.IAMCalls, selected: list, report: CredentialReport | None, concurrency: int) -> tuple[dict, dict]:
    """User name -> keys newest first, and user name -> where they came from.

    From the report where it names every key of the canary, else from ListAccessKeys.  With
    ``key_source=list_access_keys`` (no report: the listing that is always current, the retire role's), a key
    recorded seconds ago is waited for until it is listed.
    """
    planted = {user["UserName"]: canary_mapping.planted_key_from_tags(user.get("Tags", [])) for user, _mapping in selected}
    from_report = {name for name, key in planted.items() if report is not None and report.covers(name, key)}
    to_list = [user for user, _mapping in selected if user["UserName"] not in from_report]
    listed = dict(zip([user["UserName"] for user in to_list], parallel_map(
        lambda user: listed_keys(call, user["UserName"], recent_recorded_key(user.get("Tags", [])) if report is None else ()),
        to_list, concurrency)))
    keys_of, source_of = {}, {}
    for user, _mapping in selected:
        name = user["UserName"]
        keys = report.keys(name, planted[name]) if name in from_report else listed[name]
        if keys is not None:  # None: the user was deleted while we listed
            keys_of[name] = _newest_first(keys)
            source_of[name] = CREDENTIAL_REPORT if name in from_report else LIST_ACCESS_KEYS
    return keys_of, source_of


def _read_last_use(call: iam_reads.IAMCalls, keys_of: dict, concurrency: int) -> None:
    """Set each key's ``last_use``: GetAccessKeyLastUsed for keys with an id, the report's columns for the others."""
    for keys in keys_of.values():
        for key in keys:
            if "report_last_use" in key:
                key["last_use"] = last_use(*key["report_last_use"])
    with_ids = [key for keys in keys_of.values() for key in keys if key["access_key_id"]]
    for key, use in zip(with_ids, parallel_map(lambda k: key_last_use(call, k["access_key_id"]), with_ids, concurrency)):
        key["last_use"] = use
        key["gone"] = use is None


def list_estate(client, hosts=None, status=None, iam_path=None, last_used=False, key_source=CREDENTIAL_REPORT,
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
        raise EstateError(f"key_source must be one of {', '.join(KEY_SOURCES)}")
    if status is not None and status not in KEY_STATUSES:
        raise EstateError(f"status must be one of {', '.join(KEY_STATUSES)}")
    if not 1 <= int(page_size) <= MAX_PAGE_SIZE:
        raise EstateError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    if not 1 <= int(concurrency) <= MAX_CONCURRENCY:
        raise EstateError(f"concurrency must be between 1 and {MAX_CONCURRENCY}")
    now = utc(now) or datetime.datetime.now(datetime.timezone.utc)
    call = iam_reads.IAMCalls(client, aws_retry=aws_retry)
    wanted_hosts = {canary_mapping.sanitize_tag_value(host) for host in hosts} if hosts else None

    listed, _users = iam_reads.list_canaries(call, iam_path or "", int(page_size))
    selected = [(user, mapping) for user, _tags, mapping in listed if wanted_hosts is None or mapping["host"] in wanted_hosts]

    report = credential_report(call, report_poll_interval, report_timeout) if key_source == CREDENTIAL_REPORT and selected else None
    keys_of, source_of = _read_keys(call, selected, report, concurrency)
    if last_used:
        _read_last_use(call, keys_of, concurrency)

    canaries, orphans = [], []
    for user, mapping in selected:
        if user["UserName"] not in keys_of:
            continue
        keys = [key for key in keys_of[user["UserName"]] if not key.get("gone")]
        recorded = canary_mapping.planted_key_from_tags(user.get("Tags", []))
        canary = {
            "user_name": user["UserName"],
            "user_id": user.get("UserId"),
            "user_arn": user.get("Arn"),
            "iam_path": user.get("Path", "/"),
            "create_date": iso(utc(user.get("CreateDate"))),
            "mapping": mapping,
            # The same bulk read holds them: a seed tells which canaries still carry the deny-all at no cost.
            "inline_policies": sorted(policy["PolicyName"] for policy in user.get("UserPolicyList") or []),
            "key_source": source_of[user["UserName"]],
            "keys": [_key_result(key, index == 0, now, last_used) for index, key in enumerate(keys)],
            "key_history": canary_mapping.handed_key_ids(user.get("Tags", [])),
            # The key the placement was last handed is gone or inactive: its profile holds a key that raises no alert.
            "dead": recorded is not None and not any(
                key["access_key_id"] == recorded[0] and key["status"] == "Active" for key in keys),
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
        "dead": sum(1 for canary in canaries if canary["dead"]),
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
        "iam_calls": dict(sorted(call.counts.items())),
    }
