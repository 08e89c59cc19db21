# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The alert payload: the one contract every detector and every channel shares.

Every detector (``cloudtrail`` in ``alert_handler.py``, ``tamper``, ``exposed`` and the scheduled
``last-used`` one) builds its alerts here, and every channel (generic webhook, Slack, Teams, SNS, the log) renders this
dict and nothing else.  docs/alerts.md documents the fields; change them there and here together.

Standard library only.
"""

from __future__ import annotations

import logging
import os

KIND_CANARY = "canary"
KIND_UNKNOWN_USER = "unknown-iam-user"

# The scheduled detector that reads each key's "last used" data (last_used_detector.py).  Its alerts
# carry one pseudo-event: the time, service and region of the latest call, nothing else is known.
DETECTOR_LAST_USED = "last-used"
# A change made to a canary user by anyone but the collection's runs (tamper_detector.py); the alert
# adds a ``change`` object: the call, who made it, from where, its request parameters.
DETECTOR_TAMPER = "tamper"
# AWS's Health event on a published key (exposed_key_detector.py); the alert adds ``exposure``.
DETECTOR_EXPOSED = "exposed"

# A batch can hold thousands of calls of one key; the alert keeps the earliest ones and the true count.
DEFAULT_MAX_EVENTS = 50

# The CloudTrail fields an alert quotes for every call, in this order.
EVENT_FIELDS = (
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "errorCode",
    "eventID",
)

# The name of the canary account the function watches (an entry of the role's canary_accounts), which the
# detection role writes into each function's environment: with several canary accounts, an account id
# alone means little to a responder.  Unset (a single account) is "".
ACCOUNT_NAME_VARIABLE = "CANARY_ACCOUNT_NAME"

# The mapping fields (canary_mapping.FIELD_TAGS) an alert quotes; null for a user that is no canary.
MAPPING_FIELDS = ("host", "path", "profile", "reminder", "planted_at")


def _text_or_none(value):
    """CloudTrail values are strings; anything else (a nested object, a number) is shown as text."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def event_summary(record: dict, event_time: str | None = None) -> dict:
    """The part of one CloudTrail record an alert carries.

    ``event_time`` stands in when the record has no usable ``eventTime`` (the CloudWatch Logs
    timestamp, say), so that every summary sorts into place.
    """
    summary = {field: _text_or_none(record.get(field)) for field in EVENT_FIELDS}
    if summary["eventTime"] is None:
        summary["eventTime"] = event_time
    return summary


def _time_key(summary: dict) -> str:
    # CloudTrail writes every eventTime as YYYY-MM-DDTHH:MM:SSZ, so text order is time order.
    return summary.get("eventTime") or ""


class EventGroup:
    """The calls of one key in one batch: a true count, the time span and a bounded event list.

    Memory stays bounded however many calls arrive: beyond ``max_events`` only the earliest are
    kept (a kept list is trimmed each time it doubles, so adding stays cheap).
    """

    __slots__ = ("count", "first_seen", "last_seen", "max_events", "_events")

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS):
        self.max_events = max(0, int(max_events))
        self.count = 0
        self.first_seen = None
        self.last_seen = None
        self._events = []

    def add(self, summary: dict) -> None:
        self.count += 1
        when = summary.get("eventTime")
        if when:
            if self.first_seen is None or when < self.first_seen:
                self.first_seen = when
            if self.last_seen is None or when > self.last_seen:
                self.last_seen = when
        self._events.append(summary)
        if len(self._events) > 2 * self.max_events + 1:
            self._trim()

    def merge(self, other: "EventGroup") -> None:
        """Take in the calls of ``other`` (session credentials that turn out to be this key's)."""
        self.count += other.count
        for when in (other.first_seen, other.last_seen):
            if when:
                self.first_seen = when if self.first_seen is None or when < self.first_seen else self.first_seen
                self.last_seen = when if self.last_seen is None or when > self.last_seen else self.last_seen
        self._events.extend(other.events())
        self._trim()

    def _trim(self) -> None:
        self._events.sort(key=_time_key)
        del self._events[self.max_events:]

    def events(self) -> list:
        self._trim()
        return list(self._events)


def account_name(environ) -> str:
    """The function's canary account name (CANARY_ACCOUNT_NAME), "" when unset."""
    return (environ.get(ACCOUNT_NAME_VARIABLE) or "").strip()


def build_alert(
    detector: str,
    account_id,
    iam_user,
    access_key_id,
    mapping: dict | None,
    group: EventGroup,
    account: str = "",
) -> dict:
    """One alert, exactly the payload of docs/alerts.md.

    ``mapping`` is ``canary_mapping.mapping_from_tags()`` of the user (None: the user is not a
    canary, or no longer exists), which decides ``alert``.  ``account`` is the function's account
    name (``account_name``), "" for none.
    """
    alert = {
        "detector": detector,
        "alert": KIND_CANARY if mapping is not None else KIND_UNKNOWN_USER,
        "account": account or "",
        "account_id": _text_or_none(account_id),
        "iam_user": _text_or_none(iam_user),
        "access_key_id": _text_or_none(access_key_id),
    }
    for field in MAPPING_FIELDS:
        alert[field] = _text_or_none(mapping.get(field)) if mapping is not None else None
    alert["count"] = group.count
    alert["first_seen"] = group.first_seen
    alert["last_seen"] = group.last_seen
    alert["events"] = group.events()
    return alert


def source_addresses(alert: dict) -> list:
    """The distinct caller addresses of the quoted events, in order of appearance."""
    seen = []
    for event in alert.get("events") or []:
        address = event.get("sourceIPAddress")
        if address and address not in seen:
            seen.append(address)
    return seen


def headline(alert: dict) -> str:
    """One line that says what happened and where: the subject of every rendering.

    With several canary accounts the account's name ends the line: the first thing a responder reads.
    """
    text = _what_happened(alert)
    return f"{text} (account {alert['account']})" if alert.get("account") else text


def _what_happened(alert: dict) -> str:
    detector = alert.get("detector")
    if alert.get("alert") == KIND_CANARY:
        where = " ".join(part for part in (alert.get("host"), alert.get("path")) if part) or alert.get("iam_user") or "?"
        profile = f" [{alert['profile']}]" if alert.get("profile") else ""
        if detector == DETECTOR_TAMPER:
            if (alert.get("change") or {}).get("by_aws"):
                return f"AWS quarantined a canary AWS key: {where}{profile}"
            return f"Canary AWS user tampered with: {where}{profile}"
        if detector == DETECTOR_EXPOSED:
            return f"Canary AWS key published, AWS says: {where}{profile}"
        return f"Canary AWS key used: {where}{profile}"
    if detector == DETECTOR_TAMPER:
        return f"IAM user deleted in the canary account (mapping unknown): {alert.get('iam_user') or '?'}"
    if detector == DETECTOR_EXPOSED:
        return f"AWS found a published key in the canary account: {alert.get('access_key_id') or '?'}"
    return f"Unknown IAM user activity in the canary account: {alert.get('iam_user') or '?'}"


def logger():
    """The Lambda's logger (``canarykeys.alert``) at CANARY_LOG_LEVEL, INFO unless set.

    Lambda's Python runtime sets the root logger to WARNING; each invocation's summary is INFO.
    """
    log = logging.getLogger("canarykeys.alert")
    level = os.environ.get("CANARY_LOG_LEVEL", "INFO").upper()
    log.setLevel(level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO")
    return log
