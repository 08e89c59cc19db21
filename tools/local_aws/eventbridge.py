# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What EventBridge does with schedules and events, as far as the local AWS models it.

moto stores rules, targets and Lambda permissions but never fires a schedule, and cannot deliver an
event to a Lambda target; ``Recorder.fire_schedules`` and ``Recorder.put_events`` do, with the pieces
here: the event a scheduled rule sends (``scheduled_event``), the event CloudTrail sends for an API
call (``cloudtrail_event``), an AWS Health event (``health_event``), whether a rule receives an event
(``rule_receives``, moto's own pattern matcher), the input a target gets (``target_input``) and
whether the function's resource-based policy lets EventBridge invoke it for that rule
(``invoke_permitted``).  Pure functions, no AWS calls.
"""

from __future__ import annotations

import fnmatch
import json
import operator
import time
import uuid

EVENTS_PRINCIPAL = "events.amazonaws.com"
INVOKE_ACTION = "lambda:InvokeFunction"


class NotModelled(ValueError):
    """A target setting the local AWS does not reproduce (InputPath, InputTransformer)."""


def scheduled_event(account: str, region: str, rule_arn: str, when: float | None = None) -> dict:
    """The event EventBridge sends a scheduled rule's target (AWS documents exactly these fields)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
# A rule in this state also receives CloudTrail's read-only management events (Get*, List*, ...).
ALL_MANAGEMENT_EVENTS = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
HEALTH_DETAIL_TYPE = "AWS Health Event"
EXPOSED_EVENT_TYPE = "AWS_RISK_CREDENTIALS_EXPOSED"
# AWS's wording of the notice, with the key id and the user in place (AWS adds the URL it found).
EXPOSED_DESCRIPTION = ("We have become aware that the AWS Access Key {key}, belonging to IAM User {user}, along with "
                       "the corresponding Secret Key is publicly available online at {url}. Your security is important to "
                       "us and this exposure of your account's IAM credentials poses a security risk to your AWS account, "
                       "could lead to excessive charges from unauthorized activity, and violates the AWS Customer "
                       "Agreement or other agreement with us governing your use of our Services.")


def cloudtrail_event(record: dict) -> dict:
    """The EventBridge event of one CloudTrail record: source ``aws.<service>``, the record in ``detail``."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": CLOUDTRAIL_DETAIL_TYPE,
        "source": "aws." + record["eventSource"].split(".", 1)[0],
        "account": record["recipientAccountId"],
        "time": record["eventTime"],
        "region": record["awsRegion"],
        "resources": [],
        "detail": record,
    }


def health_event(account: str, key_ids, user_name: str = "", url: str = "https://github.com/example/leak",
                 event_type: str = EXPOSED_EVENT_TYPE, when: float | None = None) -> dict:
    """An AWS Health event on published access keys, in the shape of AWS Health's EventBridge schema."""
    keys = [key_ids] if isinstance(key_ids, str) else list(key_ids)
    stamp = time.gmtime(when)
    suffix = uuid.uuid4().hex[:12]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": HEALTH_DETAIL_TYPE,
        "source": "aws.health",
        "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp),
        "region": "us-east-1",
        "resources": keys,
        "detail": {
            "eventArn": f"arn:aws:health:global::event/RISK/{event_type}/{event_type}_{suffix}",
            "service": "RISK",
            "eventScopeCode": "ACCOUNT_SPECIFIC",
            "communicationId": uuid.uuid4().hex,
            "lastUpdatedTime": time.strftime("%a, %d %b %Y %H:%M:%S GMT", stamp),
            "eventRegion": "global",
            "eventTypeCode": event_type,
            "eventTypeCategory": "issue",
            "startTime": time.strftime("%a, %d %b %Y %H:%M:%S GMT", stamp),
            "eventDescription": [{"language": "en_US", "latestDescription": EXPOSED_DESCRIPTION.format(
                key=", ".join(keys), user=user_name or "(unknown)", url=url)}],
            "affectedEntities": [{"entityValue": key} for key in keys],
            "affectedAccount": account,
        },
    }


def rule_receives(rule: dict, event: dict) -> bool:
    """Whether an event-pattern rule gets the event: its state, then its pattern (moto's matcher)."""
    from moto.events.models import EventPattern  # pylint: disable=import-outside-toplevel

    state = rule.get("State")
    if not rule.get("EventPattern") or state not in ("ENABLED", ALL_MANAGEMENT_EVENTS):
        return False
    if (event.get("detail-type") == CLOUDTRAIL_DETAIL_TYPE and (event.get("detail") or {}).get("readOnly")
            and state != ALL_MANAGEMENT_EVENTS):
        # EventBridge drops read-only CloudTrail management events unless the rule asks for them.
        return False
    return EventPattern.load(rule["EventPattern"]).matches_event(event)


def target_input(target: dict, event: dict):
    """What the target receives: the event, or the target's constant ``Input`` (JSON) instead."""
    if target.get("Input") is not None:
        return json.loads(target["Input"])
    for setting in ("InputPath", "InputTransformer"):
        if target.get(setting):
            raise NotModelled(f"target {target.get('Id')}: {setting} is not modelled by the local AWS")
    return event


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _principal_matches(principal, service: str) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return service in _as_list(principal.get("Service", [])) or "*" in _as_list(principal.get("AWS", []))
    return False


def _action_matches(actions, action: str) -> bool:
    # IAM compares action names case-insensitively, with * and ? wildcards.
    return any(fnmatch.fnmatchcase(action.lower(), str(pattern).lower()) for pattern in _as_list(actions))


# Condition operators and keys a Lambda permission for EventBridge uses (lambda add-permission
# --source-arn / --source-account).  Anything else is not evaluated, and the statement does not count:
# a grant the local AWS cannot check must not make a missing permission look present.
_OPERATORS = {
    "arnlike": fnmatch.fnmatchcase,
    "stringlike": fnmatch.fnmatchcase,
    "arnequals": operator.eq,
    "stringequals": operator.eq,
}


def _conditions_hold(conditions: dict, context: dict) -> bool:
    for name, clauses in (conditions or {}).items():
        compare = _OPERATORS.get(name.lower())
        if compare is None or not isinstance(clauses, dict):
            return False
        for key, patterns in clauses.items():
            value = context.get(key.lower())
            if value is None or not any(compare(value, str(pattern)) for pattern in _as_list(patterns)):
                return False
    return True


def invoke_permitted(policy, source_arn: str, account: str, service: str = EVENTS_PRINCIPAL) -> bool:
    """Whether a function's resource-based policy (a JSON string or document; None: the function has
    none) lets ``service`` invoke it on behalf of ``source_arn`` in ``account``.

    Lambda permissions are Allow statements only.  A statement counts when its principal is the
    service (or ``*``), its action covers ``lambda:InvokeFunction`` and every condition is one of
    ArnLike/ArnEquals/StringLike/StringEquals on ``aws:SourceArn``/``aws:SourceAccount`` and holds.
    """
    if not policy:
        return False
    document = json.loads(policy) if isinstance(policy, str) else policy
    context = {"aws:sourcearn": source_arn, "aws:sourceaccount": account}
    for statement in _as_list(document.get("Statement", [])):
        if (statement.get("Effect") == "Allow" and _principal_matches(statement.get("Principal"), service)
                and _action_matches(statement.get("Action", []), INVOKE_ACTION)
                and _conditions_hold(statement.get("Condition"), context)):
            return True
    return False
