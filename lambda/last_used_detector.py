# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The last-used detector: a scheduled scan of every canary key's "last used" record in IAM.

Entry point ``handler(event, context)``; the event (an EventBridge ``Scheduled Event``, or anything
from a manual invoke) is not read: every invocation is one full scan.

IAM keeps, per access key, the time, service and region of its latest call, whatever the service
and whether or not CloudTrail logs that call.  This detector compares that time with the newest use
it has already reported, which it remembers on the canary user itself (tag
``canarykeys:last-used-reported``, canary_mapping.TAG_LAST_USED_REPORTED; no database), and raises a
``"detector": "last-used"`` alert through the same payload and channels as the CloudTrail detector
(alert_payload.py, alert_channels.py) for any newer use.

The tag is written only after a channel took the alert: when none did, the invocation fails, Lambda
retries it, and any later scan still finds the use unreported.  A key never used is never reported.

IAM calls per scan (U users in the account, C canaries under the IAM path, K their keys, at most 2
per canary): ceil(U / 1000) GetAccountAuthorizationDetails (users with their tags, in bulk) + C
ListAccessKeys + K GetAccessKeyLastUsed, plus one TagUser per alert delivered.  The reads are
``iam_reads.py``'s, the ones canary_key_info makes (plugins/module_utils/_lambda_shared/).  No bulk read returns
key ids or per-key last use except the credential report, which IAM regenerates at most every four
hours: too stale for a 15-minute schedule.  See docs/alerts.md, "The last-used detector".

Ships in the Lambda package next to ``canary_mapping.py``, ``iam_reads.py``, ``alert_payload.py`` and
``alert_channels.py``.  Standard library + boto3 only.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import logging
import os
import random
import time
import uuid

import alert_channels
import alert_payload
import canary_mapping
import iam_reads

DETECTOR = alert_payload.DETECTOR_LAST_USED

LOGGER = logging.getLogger("canarykeys.alert")
# Lambda's Python runtime sets the root logger to WARNING; the summary of each scan is INFO.
_LEVEL = os.environ.get("CANARY_LOG_LEVEL", "INFO").upper()
LOGGER.setLevel(_LEVEL if _LEVEL in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO")

# Key reads run in a few threads: a fleet of thousands of canaries is thousands of IAM round trips.
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 16
# No canary is started when less time than this is left: one alert may need three webhook attempts.
DEADLINE_MARGIN_SECONDS = 20.0
# eventID of the pseudo-event: the same use always gets the same id (a retried scan, a tag that could
# not be written), so a receiver that deduplicates on events[].eventID sees one alert.
EVENT_ID_NAMESPACE = uuid.UUID("4f0d7f7e-6a55-4b8e-9d5c-2f1c3a7b9e10")


class AlertDeliveryFailed(RuntimeError):
    """No channel took at least one alert; its use stays unreported and the next scan finds it again."""


class IncompleteScan(RuntimeError):
    """Some canaries could not be checked (IAM error, no time left) or a reported use not recorded."""


# ---------------------------------------------------------------- times


utc = canary_mapping.utc


def iso(when: datetime.datetime) -> str:
    """ISO 8601 in UTC, CloudTrail's form; fractions of a second only when IAM gave some."""
    when = when.astimezone(datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if when.microsecond else "%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- what IAM says


# Calls the scan makes, by action (the client's own retries are not counted).
IamCalls = iam_reads.IAMCalls


class Canary:
    """A managed IAM user: its mapping and the newest use already reported."""

    __slots__ = ("user_name", "account_id", "mapping", "reported", "reported_raw")

    def __init__(self, user_name, account_id, mapping, reported_raw):
        self.user_name = user_name
        self.account_id = account_id
        self.mapping = mapping
        self.reported_raw = reported_raw or ""
        self.reported = utc(reported_raw) if reported_raw else None


class KeyUse:
    """One access key and its last-used record."""

    __slots__ = ("access_key_id", "status", "last_used", "service", "region")

    def __init__(self, access_key_id, status, last_used, service, region):
        self.access_key_id = access_key_id
        self.status = status
        self.last_used = last_used
        self.service = service
        self.region = region


def normalise_path(iam_path: str) -> str:
    path = (iam_path or "/").strip()
    if not path.startswith("/"):
        path = "/" + path
    return path if path.endswith("/") else path + "/"


def list_canaries(call: IamCalls, iam_path: str = "/") -> tuple:
    """``(canaries, users in the account)``: managed users under ``iam_path``, with their tags, in bulk.

    Users outside the path are skipped unread: the function's role may read keys under it only.
    Any other user is not a canary: the CloudTrail detector reports its calls; this one never touches it.
    """
    listed, users = iam_reads.list_canaries(call, iam_path)
    canaries = []
    for user, tags, mapping in listed:
        arn = user.get("Arn") or ""
        parts = arn.split(":")
        canary = Canary(user["UserName"], parts[4] if len(parts) > 4 and parts[4] else None, mapping,
                        tags.get(canary_mapping.TAG_LAST_USED_REPORTED))
        if canary.reported_raw and canary.reported is None:
            # Unreadable state must not silence the detector: every use counts as unreported.
            LOGGER.warning("IAM user %s: tag %s=%r is not an ISO 8601 time; treating every use as unreported",
                           canary.user_name, canary_mapping.TAG_LAST_USED_REPORTED, canary.reported_raw)
        canaries.append(canary)
    return canaries, users


def read_key_uses(call: IamCalls, user_name: str):
    """The user's keys with their last use; None when the user went away meanwhile."""
    listed = iam_reads.list_access_keys(call, user_name)
    if listed is None:
        return None  # retired between the listing and now
    uses = []
    for key in listed:
        # Inactive keys too: a key deactivated after a use (rotation) may hold a use nobody reported.
        record = iam_reads.access_key_last_used(call, key["AccessKeyId"])
        if record is None:
            continue  # deleted between the two calls
        uses.append(KeyUse(key["AccessKeyId"], key.get("Status"), record["date"], record["service"], record["region"]))
    return uses


# ---------------------------------------------------------------- the alert


def unreported(canary: Canary, uses: list) -> list:
    """The uses newer than the newest one reported, oldest first."""
    fresh = [use for use in uses if use.last_used is not None and (canary.reported is None or use.last_used > canary.reported)]
    return sorted(fresh, key=lambda use: use.last_used)


def pseudo_event(use: KeyUse) -> dict:
    """The one "call" IAM's record describes: when, which service, which region; the rest is unknown."""
    when = iso(use.last_used)
    return alert_payload.event_summary({
        "eventTime": when,
        "eventSource": f"{use.service}.amazonaws.com" if use.service else None,
        "eventName": None,
        "awsRegion": use.region,
        "sourceIPAddress": None,
        "userAgent": None,
        "errorCode": None,
        "eventID": str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{use.access_key_id}/{when}")),
    })


def build_alert(canary: Canary, use: KeyUse) -> dict:
    group = alert_payload.EventGroup(1)
    group.add(pseudo_event(use))
    return alert_payload.build_alert(DETECTOR, canary.account_id, canary.user_name, use.access_key_id, canary.mapping, group)


# ---------------------------------------------------------------- the scan


_IAM_CLIENT = []


def iam_client():
    if not _IAM_CLIENT:
        import boto3  # pylint: disable=import-outside-toplevel
        from botocore.config import Config  # pylint: disable=import-outside-toplevel

        # IAM throttles bursts of reads; the standard mode backs off and retries them.
        _IAM_CLIENT.append(boto3.client("iam", config=Config(retries={"mode": "standard", "max_attempts": 10})))
    return _IAM_CLIENT[0]


def reset_state() -> None:
    """Forget every client (tests; a new account)."""
    del _IAM_CLIENT[:]
    alert_channels._SNS_CLIENTS.clear()  # pylint: disable=protected-access


def _remaining_seconds(context):
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(getter):
        return None
    return lambda: getter() / 1000.0


def _concurrency(environ) -> int:
    raw = environ.get("CANARY_IAM_CONCURRENCY", "")
    if raw.isdigit() and int(raw) > 0:
        return min(int(raw), MAX_CONCURRENCY)
    return DEFAULT_CONCURRENCY


class _Scan:
    """One invocation's counters and the alerts it sent."""

    def __init__(self):
        self.counts = {"users": 0, "canaries": 0, "keys": 0, "used_keys": 0, "alerts": 0, "undelivered": 0,
                       "recorded": 0, "read_errors": 0, "record_errors": 0, "unchecked": 0}
        self.sent = []

    def summary(self, call: IamCalls, seconds: float) -> dict:
        return dict(self.counts, detector=DETECTOR, iam_calls=dict(sorted(call.counts.items())), seconds=round(seconds, 3), sent=self.sent)


def _report(call: IamCalls, dispatcher, canary: Canary, uses: list, scan: _Scan) -> None:
    """Alert on each unreported use, oldest first, recording each one once a channel took it.

    Oldest first, and stop at the first alert nobody took: the tag then never claims a use that was
    not reported (two keys during a rotation, the newer one delivered, the older lost).
    """
    from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel

    scan.counts["keys"] += len(uses)
    scan.counts["used_keys"] += sum(1 for use in uses if use.last_used is not None)
    for use in unreported(canary, uses):
        alert = build_alert(canary, use)
        outcome = dispatcher.deliver(alert)
        scan.counts["alerts"] += 1
        item = {"iam_user": canary.user_name, "access_key_id": use.access_key_id, "last_used": alert["last_seen"],
                "delivered": outcome["delivered"], "failed": sorted(outcome["failed"]), "recorded": False}
        scan.sent.append(item)
        if not outcome["delivered"]:
            scan.counts["undelivered"] += 1
            return
        try:
            call("tag_user", UserName=canary.user_name,
                 Tags=[{"Key": canary_mapping.TAG_LAST_USED_REPORTED, "Value": alert["last_seen"]}])
        except (ClientError, BotoCoreError) as error:
            # The alert went out; without the tag the next scan sends it again (same eventID).
            scan.counts["record_errors"] += 1
            LOGGER.error("alert for IAM user %s delivered, but the reported use could not be recorded (%s); "
                         "the next scan will send it again", canary.user_name, iam_reads.error_code(error) or error)
            continue
        scan.counts["recorded"] += 1
        item["recorded"] = True
        canary.reported = use.last_used


def process(event=None, context=None, environ=None, iam=None, dispatcher=None) -> dict:
    """The whole scan; ``handler`` with its collaborators open to tests and benchmarks."""
    del event  # a schedule carries nothing to read: every invocation is a full scan
    from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel

    started = time.monotonic()
    environ = os.environ if environ is None else environ
    remaining = _remaining_seconds(context)
    call = IamCalls(iam if iam is not None else iam_client())
    if dispatcher is None:
        dispatcher = alert_channels.Dispatcher.from_settings(alert_channels.ChannelSettings.from_environ(environ), remaining)
    scan = _Scan()

    # Without the listing there is nothing to scan: let the invocation fail (errors alarm, retries).
    canaries, scan.counts["users"] = list_canaries(call, normalise_path(environ.get("CANARY_IAM_PATH", "/")))
    scan.counts["canaries"] = len(canaries)
    # Should a scan run out of time, the next one starts elsewhere: over a few scans every canary is read.
    random.shuffle(canaries)

    executor = concurrent.futures.ThreadPoolExecutor(max_workers=_concurrency(environ))
    try:
        futures = [executor.submit(read_key_uses, call, canary.user_name) for canary in canaries]
        for index, (canary, future) in enumerate(zip(canaries, futures)):
            if remaining is not None and remaining() < DEADLINE_MARGIN_SECONDS:
                scan.counts["unchecked"] = len(canaries) - index
                LOGGER.error("out of time: %d of %d canaries not checked in this scan (raise the function's timeout)",
                             scan.counts["unchecked"], len(canaries))
                break
            try:
                uses = future.result()
            except (ClientError, BotoCoreError) as error:
                # One unreadable canary must not blind the detector to the others.
                scan.counts["read_errors"] += 1
                LOGGER.error("cannot read the access keys of IAM user %s: %s", canary.user_name, error)
                continue
            except Exception:  # pylint: disable=broad-exception-caught
                # An answer of a shape nobody foresaw is still one canary: the others keep their scan.
                scan.counts["read_errors"] += 1
                LOGGER.exception("cannot read the access keys of IAM user %s", canary.user_name)
                continue
            if uses is not None:
                _report(call, dispatcher, canary, uses, scan)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)

    summary = scan.summary(call, time.monotonic() - started)
    LOGGER.info("%s", json.dumps(summary, separators=(",", ":")))
    counts = scan.counts
    if counts["undelivered"]:
        raise AlertDeliveryFailed(f"{counts['undelivered']} of {counts['alerts']} alert(s) reached no channel; "
                                  "their uses stay unreported until a scan delivers them")
    if counts["read_errors"] or counts["unchecked"] or counts["record_errors"]:
        raise IncompleteScan(f"{counts['read_errors']} canaries unreadable, {counts['unchecked']} unchecked for lack of time, "
                             f"{counts['record_errors']} delivered use(s) not recorded; see the log above")
    return summary


def handler(event, context):
    """Lambda entry point."""
    return process(event, context)
