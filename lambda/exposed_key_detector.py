# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS's own exposed-key signal, turned into a host-level alert.

When AWS finds an access key published (GitHub and other public sources) it sends the account an
AWS Health event, ``AWS_RISK_CREDENTIALS_EXPOSED``, whose ``affectedEntities[].entityValue`` is the
key id, and usually quarantines the key's user.  For a canary key that means more than "rotate the
key": the credentials file left the host it was planted on and was published.  The detection role
routes the event (an EventBridge rule on ``source: aws.health``) to ``alert_handler.handler``, which
hands it here: one ``"detector": "exposed"`` alert per affected canary key, naming host, file and
profile, with AWS's own description.

The key's user comes from ``iam:GetAccessKeyLastUsed`` (it names the owner of any key of the
account), its mapping from the user's tags.  A key that is no canary (a real key of the account) is
reported too, as ``unknown-iam-user``: AWS found a published key in the canary account.

Standard library only; the IAM reads go through the handler's ``UserDirectory``.
"""

from __future__ import annotations

import alert_payload

SOURCE = "aws.health"
DETAIL_TYPE = "AWS Health Event"
# The event types of a published key: AWS_RISK_CREDENTIALS_EXPOSED, and its _SUSPECTED variant.
EVENT_TYPE_PREFIX = "AWS_RISK_CREDENTIALS_EXPOSED"
HEALTH_EVENT_SOURCE = "health.amazonaws.com"


def is_health_event(event) -> bool:
    return isinstance(event, dict) and event.get("source") == SOURCE and event.get("detail-type") == DETAIL_TYPE


def is_exposure(detail) -> bool:
    code = detail.get("eventTypeCode") if isinstance(detail, dict) else None
    return isinstance(code, str) and code.startswith(EVENT_TYPE_PREFIX)


def description(detail: dict):
    """AWS's text, English first (the event may carry several languages)."""
    entries = [item for item in detail.get("eventDescription") or [] if isinstance(item, dict)]
    entries.sort(key=lambda item: 0 if str(item.get("language", "")).lower().startswith("en") else 1)
    for item in entries:
        if isinstance(item.get("latestDescription"), str) and item["latestDescription"]:
            return item["latestDescription"]
    return None


def affected_keys(event: dict) -> list:
    """The access key ids of the event: ``affectedEntities``, else ``resources`` (both carry them)."""
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    keys = []
    for entity in detail.get("affectedEntities") or []:
        value = entity.get("entityValue") if isinstance(entity, dict) else None
        if isinstance(value, str) and value and value not in keys:
            keys.append(value)
    if not keys:
        keys = [value for value in event.get("resources") or [] if isinstance(value, str) and value.startswith(("AKIA", "ASIA"))]
    return keys


def _pseudo_event(event: dict, detail: dict) -> dict:
    """The one 'call' an exposure alert lists: AWS's notice, not an API call."""
    return {
        "eventTime": detail.get("startTime") or event.get("time"),
        "eventSource": HEALTH_EVENT_SOURCE,
        "eventName": detail.get("eventTypeCode"),
        "awsRegion": detail.get("eventRegion") or event.get("region"),
        "sourceIPAddress": None,
        "userAgent": None,
        "errorCode": None,
        "eventID": event.get("id"),
    }


def alerts(event: dict, directory, account: str = "") -> list:
    """One alert per affected key of an exposure event (none for other Health events).

    ``account``: the function's account name (``alert_payload.account_name``).
    """
    detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
    if not is_exposure(detail):
        return []
    account_id = detail.get("affectedAccount") or event.get("account")
    result = []
    for key_id in affected_keys(event):
        user_name = directory.owner_of_key(key_id)
        mapping = directory.mapping(user_name) if user_name else None
        if mapping is None and user_name:
            mapping = directory.remembered(user_name)
        group = alert_payload.EventGroup(1)
        group.add(alert_payload.event_summary(_pseudo_event(event, detail)))
        alert = alert_payload.build_alert(alert_payload.DETECTOR_EXPOSED, account_id, user_name, key_id, mapping, group, account)
        alert["exposure"] = {
            "event_type": detail.get("eventTypeCode"),
            "event_arn": detail.get("eventArn"),
            "description": description(detail),
        }
        result.append(alert)
    return result
