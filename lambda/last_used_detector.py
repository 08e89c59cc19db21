# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The last-used detector: a scheduled scan of the canary keys' "last used" records in IAM.

Entry point ``handler(event, context)``; the event (an EventBridge ``Scheduled Event``, or anything
from a manual invoke) is not read.

IAM keeps, per access key, the time, service and region of its latest call, whatever the service
and whether or not CloudTrail logs that call.  This detector compares that time with the newest use
it has already reported, which it remembers on the canary user itself (tag
``canarykeys:last-used-reported``, canary_mapping.TAG_LAST_USED_REPORTED; no database), and raises a
``"detector": "last-used"`` alert through the same payload and channels as the CloudTrail detector
(alert_payload.py, alert_channels.py) for any newer use.

The tag is written only after a channel took the alert: when none did, the invocation fails, and the
canary is checked again first by the next run.  A key never used is never reported.

IAM's request budget is the account's, so a run holds itself to ``CANARY_IAM_CALLS_PER_RUN`` reads
paced at ``CANARY_IAM_CALLS_PER_SECOND``.  The key ids come in bulk: the users with their tags
(GetAccountAuthorizationDetails, 1,000 a page), whose key-id tags (``canarykeys:access-key-id`` and
``-created``) name the planted key, confirmed by the credential report (one download: every user's key
slots) where it holds exactly that one key; a canary it does not confirm (a second key, a key the tags
do not name: a crashed rotation, a hand-made key) is listed with ListAccessKeys.  GetAccessKeyLastUsed
is the only per-key call.  When the estate does not fit one run's budget, each run checks the next
slice of a ring of the canaries (scan_cursor.py: the position is kept as a tag on a canary user) and
the summary says in how many runs every key is reached (``cycle_runs``).

IAM calls per run (U users in the account; the slice: S canaries the report confirms, L the others,
K_L their keys): ceil(U / 1000) GetAccountAuthorizationDetails + 1..6 GenerateCredentialReport + 1
GetCredentialReport + S GetAccessKeyLastUsed + L ListAccessKeys + K_L GetAccessKeyLastUsed [+ 1 TagUser
for the cursor], within the budget; plus one TagUser per alert delivered, never held back.  See
docs/alerts.md, "The last-used detector".

Ships in the Lambda package next to ``canary_mapping.py``, ``iam_reads.py``, ``credential_report.py``,
``scan_cursor.py``, ``alert_payload.py`` and ``alert_channels.py``.  Standard library + boto3 only.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import math
import os
import time
import uuid

import alert_channels
import alert_payload
import canary_mapping
import credential_report
import iam_reads
import scan_cursor

DETECTOR = alert_payload.DETECTOR_LAST_USED

LOGGER = alert_payload.logger()

# Key reads run in a few threads: each is one IAM round trip.
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 16
# The budget: IAM reads (and the cursor's one write) a run, and their pace.  1,000 a run every 15
# minutes is about 1.1 calls a second on average, 5 a second at most: IAM's per-account request budget
# stays with the seed, the console and everything else in the account.
DEFAULT_CALLS_PER_RUN = 1000
MIN_CALLS_PER_RUN = 50
DEFAULT_CALLS_PER_SECOND = 5.0
# A canary the credential report does not confirm: ListAccessKeys and a key read for each of at most 2 keys.
LISTED_COST = 3
# Waiting for IAM to build a new credential report (every 4 hours): beyond this, the run lists keys instead.
REPORT_WAIT_SECONDS = 20.0
REPORT_POLL_SECONDS = 1.0
# No canary is started when less time than this is left: one alert may need three webhook attempts.
DEADLINE_MARGIN_SECONDS = 20.0
# eventID of the pseudo-event: the same use always gets the same id (a retried scan, a tag that could
# not be written), so a receiver that deduplicates on events[].eventID sees one alert.
EVENT_ID_NAMESPACE = uuid.UUID("4f0d7f7e-6a55-4b8e-9d5c-2f1c3a7b9e10")
# AWS answers AccessDenied, moto NoSuchEntity, for a deleted key of the caller's account.
KEY_GONE = ("NoSuchEntity", "AccessDenied")


class AlertDeliveryFailed(RuntimeError):
    """No channel took at least one alert; its use stays unreported and the next run checks it first."""


class IncompleteScan(RuntimeError):
    """Some canaries could not be checked (IAM error, no time left) or some state not recorded."""


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
    """A managed IAM user: its mapping, the newest use already reported, the key its tags name, its ring position."""

    __slots__ = ("user_name", "account_id", "mapping", "reported", "reported_raw", "planted", "position", "cursor_raw", "confirmed")

    def __init__(self, user_name, account_id, mapping, reported_raw, planted=None, cursor_raw=None):
        self.user_name = user_name
        self.account_id = account_id
        self.mapping = mapping
        self.reported_raw = reported_raw or ""
        self.reported = utc(reported_raw) if reported_raw else None
        self.planted = planted
        self.position = scan_cursor.ring_position(user_name)
        self.cursor_raw = cursor_raw
        # The planted key's report slot (status), when the credential report holds exactly that key.
        self.confirmed = None


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
    Any other user is not a canary: the CloudTrail detector reports their calls; this one never touches it.
    """
    listed, users = iam_reads.list_canaries(call, iam_path)
    canaries = []
    for user, tags, mapping in listed:
        arn = user.get("Arn") or ""
        parts = arn.split(":")
        canary = Canary(user["UserName"], parts[4] if len(parts) > 4 and parts[4] else None, mapping,
                        tags.get(canary_mapping.TAG_LAST_USED_REPORTED), canary_mapping.planted_key_from_tags(user.get("Tags")),
                        tags.get(scan_cursor.TAG_LAST_USED_CURSOR))
        if canary.reported_raw and canary.reported is None:
            # Unreadable state must not silence the detector: every use counts as unreported.
            LOGGER.warning("IAM user %s: tag %s=%r is not an ISO 8601 time; treating every use as unreported",
                           canary.user_name, canary_mapping.TAG_LAST_USED_REPORTED, canary.reported_raw)
        canaries.append(canary)
    return canaries, users


def read_report(call: IamCalls, wait: float):
    """The credential report, or None (logged) when IAM cannot give it now: the run then lists keys."""
    from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel

    try:
        return credential_report.fetch(call, poll_interval=REPORT_POLL_SECONDS, timeout=max(0.0, wait))
    except (ClientError, BotoCoreError, credential_report.ReportNotReady) as error:
        LOGGER.warning("no credential report (%s): this run lists the keys of every canary it checks",
                       iam_reads.error_code(error) or error)
        return None


def confirm_keys(canaries: list, report) -> None:
    """Mark each canary whose planted key (its tags) is the one key the report holds for it."""
    for canary in canaries:
        if report is not None and report.covers(canary.user_name, canary.planted):
            (slot,) = report.keys(canary.user_name, canary.planted)
            canary.confirmed = slot


def read_key_uses(call: IamCalls, canary: Canary, listed: bool):
    """The canary's keys with their last use; None when the user (or its planted key) went away meanwhile.

    ``listed=False``: the one key the tags name and the report confirms, read directly.
    """
    if not listed:
        record = iam_reads.access_key_last_used(call, canary.planted[0], gone=KEY_GONE)
        if record is None:
            return None  # rotated or retired since the report: the next run lists this user
        return [KeyUse(canary.planted[0], canary.confirmed["status"], record["date"], record["service"], record["region"])]
    keys = iam_reads.list_access_keys(call, canary.user_name)
    if keys is None:
        return None  # retired between the listing and now
    uses = []
    for key in keys:
        # Inactive keys too: a key deactivated after a use (rotation) may hold a use nobody reported.
        record = iam_reads.access_key_last_used(call, key["AccessKeyId"])
        if record is None:
            continue  # deleted between the two calls
        uses.append(KeyUse(key["AccessKeyId"], key.get("Status"), record["date"], record["service"], record["region"]))
    return uses


# ---------------------------------------------------------------- which canaries this run


def cost(canary: Canary, retried: bool = False) -> int:
    """The most IAM calls checking this canary takes: 1 for a confirmed key, else a listing and 2 keys."""
    return 1 if canary.confirmed is not None and not retried else LISTED_COST


class Plan:
    """This run's slice of the ring: ``checks`` [(canary, listed)], where the next run resumes, and the cycle.

    First the canaries the previous run left to check again (with a listing), then the ring from the
    cursor on, as far as ``available`` calls go, each canary counted at its most (``cost``).
    """

    def __init__(self, canaries: list, cursor, available: int):
        self.ring = sorted(canaries, key=lambda canary: (canary.position, canary.user_name))
        by_position = {canary.position: canary for canary in self.ring}
        self.start = 0
        if cursor is not None:
            self.start = next((index for index, canary in enumerate(self.ring) if canary.position >= cursor.next), 0)
        # Checked again first, within the budget too; those it cannot take wait for the run after.
        self.retries, self.retries_left, spent = [], [], 0
        for position in (cursor.retry if cursor else ()):
            if position in by_position:
                fits = spent + cost(by_position[position], True) <= available
                (self.retries if fits else self.retries_left).append(by_position[position])
                spent += cost(by_position[position], True) if fits else 0
        self.walk = []  # (ring index, canary), in ring order from the cursor
        self.resume = self.start
        for step in range(len(self.ring)):
            index = (self.start + step) % len(self.ring)
            canary = self.ring[index]
            if canary not in self.retries:
                if spent + cost(canary) > available:
                    break
                self.walk.append((index, canary))
                spent += cost(canary)
            self.resume = (index + 1) % len(self.ring)
        self.checks = [(canary, True) for canary in self.retries] + [(canary, canary.confirmed is None) for _i, canary in self.walk]
        self.deferred = len(self.ring) - len(self.checks)
        # Runs to reach every key at this run's capacity: a use just after its key was read waits that long.
        # A run stops where the next canary does not fit, so it may leave up to LISTED_COST - 1 calls unused.
        whole = sum(cost(canary) for canary in self.ring)
        filled = available - (LISTED_COST - 1 if any(cost(canary) > 1 for canary in self.ring) else 0)
        self.cycle_runs = max(1, math.ceil(whole / filled)) if filled > 0 else None

    def next_position(self, stopped_at=None) -> str:
        """Where the next run resumes: after this slice, or at the first canary of the walk left for lack of time.

        ``stopped_at``: the index in ``checks`` of the first canary not checked.
        """
        if stopped_at is None:
            return self.ring[self.resume].position
        walked = stopped_at - len(self.retries)
        return self.ring[self.walk[walked][0] if walked >= 0 else self.start].position


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


def build_alert(canary: Canary, use: KeyUse, account: str = "") -> dict:
    """The alert of one unreported use; ``account`` is the function's account name (``alert_payload.account_name``)."""
    group = alert_payload.EventGroup(1)
    group.add(pseudo_event(use))
    return alert_payload.build_alert(DETECTOR, canary.account_id, canary.user_name, use.access_key_id, canary.mapping, group, account)


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


def _setting(environ, name: str, default, convert, minimum, maximum=None):
    """A numeric setting; a value that is no number, or out of range, is logged and the default used."""
    raw = environ.get(name, "")
    if raw.strip():
        try:
            value = convert(raw)
        except ValueError:
            value = None
        if value is not None and value >= minimum:
            return min(value, maximum) if maximum is not None else value
        LOGGER.error("%s=%r is not a number of at least %s; using %s", name, raw, minimum, default)
    return default


class Settings:
    """The run's budget and pace, from the function's environment."""

    def __init__(self, environ):
        self.iam_path = normalise_path(environ.get("CANARY_IAM_PATH", "/"))
        self.concurrency = _setting(environ, "CANARY_IAM_CONCURRENCY", DEFAULT_CONCURRENCY, int, 1, MAX_CONCURRENCY)
        self.calls_per_run = _setting(environ, "CANARY_IAM_CALLS_PER_RUN", DEFAULT_CALLS_PER_RUN, int, MIN_CALLS_PER_RUN)
        self.calls_per_second = _setting(environ, "CANARY_IAM_CALLS_PER_SECOND", DEFAULT_CALLS_PER_SECOND, float, 0.1)
        self.account = alert_payload.account_name(environ)


class _Scan:
    """One invocation's counters and the alerts it sent."""

    def __init__(self):
        self.counts = {"users": 0, "canaries": 0, "checked": 0, "deferred": 0, "retried": 0, "listed": 0, "keys": 0,
                       "used_keys": 0, "alerts": 0, "undelivered": 0, "recorded": 0, "read_errors": 0, "record_errors": 0,
                       "unchecked": 0, "cursor_errors": 0}
        self.extra = {}
        self.sent = []
        self.retry = []

    def summary(self, call: IamCalls, seconds: float) -> dict:
        return dict(self.counts, **self.extra, detector=DETECTOR, iam_calls=dict(sorted(call.counts.items())),
                    seconds=round(seconds, 3), sent=self.sent)


def _report(call: IamCalls, dispatcher, canary: Canary, uses: list, scan: _Scan, account: str = "") -> None:  # pylint: disable=too-many-arguments
    """Alert on each unreported use, oldest first, recording each one once a channel took it.

    Oldest first, and stop at the first alert nobody took: the tag then never claims a use that was
    not reported (two keys during a rotation, the newer one delivered, the older lost).
    """
    from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel

    scan.counts["keys"] += len(uses)
    scan.counts["used_keys"] += sum(1 for use in uses if use.last_used is not None)
    for use in unreported(canary, uses):
        alert = build_alert(canary, use, account)
        outcome = dispatcher.deliver(alert)
        scan.counts["alerts"] += 1
        item = {"iam_user": canary.user_name, "access_key_id": use.access_key_id, "last_used": alert["last_seen"],
                "delivered": outcome["delivered"], "failed": sorted(outcome["failed"]), "recorded": False}
        scan.sent.append(item)
        if not outcome["delivered"]:
            scan.counts["undelivered"] += 1
            scan.retry.append(canary)
            return
        try:
            call("tag_user", UserName=canary.user_name,
                 Tags=[{"Key": canary_mapping.TAG_LAST_USED_REPORTED, "Value": alert["last_seen"]}])
        except (ClientError, BotoCoreError) as error:
            # The alert went out; without the tag the next visit sends it again (same eventID).
            scan.counts["record_errors"] += 1
            scan.retry.append(canary)
            LOGGER.error("alert for IAM user %s delivered, but the reported use could not be recorded (%s); "
                         "the next run will send it again", canary.user_name, iam_reads.error_code(error) or error)
            continue
        scan.counts["recorded"] += 1
        item["recorded"] = True
        canary.reported = use.last_used


def _check(call: IamCalls, dispatcher, plan: Plan, settings: Settings, remaining, scan: _Scan):
    """Read and report the slice; the index in ``plan.checks`` of the first canary left for lack of time, or None."""
    from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel

    executor = concurrent.futures.ThreadPoolExecutor(max_workers=settings.concurrency)
    try:
        futures = [executor.submit(read_key_uses, call, canary, listed) for canary, listed in plan.checks]
        for index, ((canary, listed), future) in enumerate(zip(plan.checks, futures)):
            if remaining is not None and remaining() < DEADLINE_MARGIN_SECONDS:
                scan.counts["unchecked"] = len(plan.checks) - index
                LOGGER.error("out of time: %d of %d canaries not checked in this run (raise the function's timeout); "
                             "the next run resumes with them", scan.counts["unchecked"], len(plan.checks))
                scan.retry.extend(plan.retries[index:])
                return index
            scan.counts["checked"] += 1
            scan.counts["listed"] += int(listed)
            try:
                uses = future.result()
            except (ClientError, BotoCoreError) as error:
                # One unreadable canary must not blind the detector to the others.
                scan.counts["read_errors"] += 1
                scan.retry.append(canary)
                LOGGER.error("cannot read the access keys of IAM user %s: %s", canary.user_name, error)
                continue
            except Exception:  # pylint: disable=broad-exception-caught
                # An answer of a shape nobody foresaw is still one canary: the others keep their scan.
                scan.counts["read_errors"] += 1
                scan.retry.append(canary)
                LOGGER.exception("cannot read the access keys of IAM user %s", canary.user_name)
                continue
            if uses is None:
                if not listed:
                    scan.retry.append(canary)  # the planted key went away: list this user's keys next run
                continue
            _report(call, dispatcher, canary, uses, scan, settings.account)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return None


def _save_cursor(call: IamCalls, plan: Plan, previous, stopped_at, scan: _Scan) -> None:
    """Write where the next run resumes on a canary user, when it moved (never for an estate one run covers)."""
    from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel

    if not plan.ring:
        return
    retry = list(dict.fromkeys(canary.position for canary in scan.retry + plan.retries_left))
    if len(retry) > scan_cursor.MAX_RETRIES:
        LOGGER.warning("%d canaries to check again; the first %d next run, the others in their turn",
                       len(retry), scan_cursor.MAX_RETRIES)
    cursor = scan_cursor.Cursor(datetime.datetime.now(datetime.timezone.utc), plan.next_position(stopped_at), retry)
    if cursor.same_place(previous) or (previous is None and cursor.next == plan.ring[0].position and not cursor.retry):
        return
    # The canary holding the newest cursor keeps it; else the first on the ring (an older copy elsewhere loses).
    holders = [canary for canary in plan.ring if previous is not None and canary.cursor_raw
               and getattr(scan_cursor.Cursor.parse(canary.cursor_raw), "written", None) == previous.written]
    holder = holders[0] if holders else plan.ring[0]
    try:
        call("tag_user", UserName=holder.user_name, Tags=[{"Key": scan_cursor.TAG_LAST_USED_CURSOR, "Value": cursor.value()}])
    except (ClientError, BotoCoreError) as error:
        # The next run then repeats this slice: slower, nothing skipped.
        scan.counts["cursor_errors"] += 1
        LOGGER.error("cannot record where the next run resumes on IAM user %s (%s)", holder.user_name,
                     iam_reads.error_code(error) or error)


def process(event=None, context=None, environ=None, iam=None, dispatcher=None) -> dict:
    """One run; ``handler`` with its collaborators open to tests and benchmarks."""
    del event  # a schedule carries nothing to read
    started = time.monotonic()
    settings = Settings(os.environ if environ is None else environ)
    remaining = _remaining_seconds(context)
    call = IamCalls(iam if iam is not None else iam_client(), rate=settings.calls_per_second)
    if dispatcher is None:
        dispatcher = alert_channels.Dispatcher.from_settings(
            alert_channels.ChannelSettings.from_environ(os.environ if environ is None else environ), remaining)
    scan = _Scan()

    # Without the listing there is nothing to scan: let the invocation fail (errors alarm, retries).
    canaries, scan.counts["users"] = list_canaries(call, settings.iam_path)
    scan.counts["canaries"] = len(canaries)
    previous = scan_cursor.newest(canary.cursor_raw for canary in canaries)
    report = None
    if canaries:
        # At most half the time the run has: the keys still need the rest.
        wait = REPORT_WAIT_SECONDS if remaining is None else min(REPORT_WAIT_SECONDS, (remaining() - DEADLINE_MARGIN_SECONDS) / 2)
        report = read_report(call, wait)
    confirm_keys(canaries, report)

    # What is left of the budget, less the cursor's write; and no more than the time left allows at the pace.
    available = settings.calls_per_run - call.total - 1
    if remaining is not None:
        available = min(available, int((remaining() - DEADLINE_MARGIN_SECONDS) * settings.calls_per_second))
    plan = Plan(canaries, previous, available)
    scan.counts["deferred"] = plan.deferred
    scan.counts["retried"] = len(plan.retries)
    scan.extra = {"budget": settings.calls_per_run, "calls_per_second": settings.calls_per_second, "cycle_runs": plan.cycle_runs,
                  "confirmed_by_report": sum(1 for canary in canaries if canary.confirmed is not None),
                  "report_as_of": iso(report.as_of) if report is not None and report.as_of else None}
    if canaries and not plan.checks:
        LOGGER.error("CANARY_IAM_CALLS_PER_RUN=%d leaves no call for the keys after %d for the listing and the report",
                     settings.calls_per_run, call.total)

    stopped_at = _check(call, dispatcher, plan, settings, remaining, scan)
    _save_cursor(call, plan, previous, stopped_at, scan)

    summary = scan.summary(call, time.monotonic() - started)
    LOGGER.info("%s", json.dumps(summary, separators=(",", ":")))
    counts = scan.counts
    if counts["undelivered"]:
        raise AlertDeliveryFailed(f"{counts['undelivered']} of {counts['alerts']} alert(s) reached no channel; "
                                  "their uses stay unreported and the next run checks them first")
    if counts["read_errors"] or counts["unchecked"] or counts["record_errors"] or counts["cursor_errors"] or (canaries and not plan.checks):
        raise IncompleteScan(f"{counts['read_errors']} canaries unreadable, {counts['unchecked']} unchecked for lack of time, "
                             f"{counts['record_errors']} delivered use(s) not recorded, {counts['cursor_errors']} cursor write(s) "
                             "failed; see the log above")
    return summary


def handler(event, context):
    """Lambda entry point."""
    return process(event, context)
