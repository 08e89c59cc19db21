# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""EventBridge rules with an event pattern and their targets: what to send, what differs, what to return.

Pure logic with no Ansible and no AWS calls, so that the decisions of the ``eventbridge_rule``
module are testable as plain Python. The module does the API calls.
"""

from __future__ import annotations

import json

from ansible_collections.canarykeys.aws.plugins.module_utils._detection.compare import changed_fields

# EventBridge delivers read-only CloudTrail management events (List*, Get*, Describe*) only to a rule
# in the third state; amazon.aws.cloudwatchevent_rule knows the first two only.
RULE_STATES = ("ENABLED", "DISABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")

# PutRule fields compared with DescribeRule's answer. EventPattern is compared parsed (see below).
RULE_FIELDS = ("EventPattern", "State", "Description")

# Module target suboption -> PutTargets / ListTargetsByRule field.
TARGET_FIELDS = (("id", "Id"), ("arn", "Arn"), ("input", "Input"), ("role_arn", "RoleArn"))


def canonical_pattern(pattern):
    """The event pattern as a parsed object: AWS may hand back the JSON text spaced or ordered otherwise."""
    if pattern is None:
        return None
    return json.loads(pattern) if isinstance(pattern, str) else pattern


def build_rule_request(name, params) -> dict:
    """The PutRule request for the desired rule (unset options left out)."""
    request = {
        "Name": name,
        "EventPattern": json.dumps(canonical_pattern(params["event_pattern"]), sort_keys=True, separators=(",", ":")),
        "State": params["rule_state"],
    }
    if params.get("description") is not None:
        request["Description"] = params["description"]
    if params.get("event_bus_name"):
        request["EventBusName"] = params["event_bus_name"]
    return request


def _parsed(rule) -> dict:
    return dict(rule, EventPattern=canonical_pattern(rule.get("EventPattern")))


def rule_differences(current, request) -> list:
    """Names of the rule fields that differ, sorted; every field the request sets when there is no rule."""
    if not current:
        return changed_fields(None, request, RULE_FIELDS)
    return changed_fields(_parsed(current), _parsed(request), RULE_FIELDS)


def build_targets(targets) -> list:
    """PutTargets entries for the module's ``targets`` option (unset suboptions left out)."""
    return [{field: target[option] for option, field in TARGET_FIELDS if target.get(option) is not None}
            for target in targets or []]


def target_changes(current, desired, purge) -> tuple:
    """``(to_put, to_remove)``: desired targets missing or different, and target ids to remove.

    A target is identified by its id. Without ``purge`` the rule's other targets stay.
    """
    by_id = {target["Id"]: target for target in current or []}
    fields = [field for _option, field in TARGET_FIELDS]
    to_put = [target for target in desired if changed_fields(by_id.get(target["Id"]), target, fields)]
    wanted = {target["Id"] for target in desired}
    to_remove = sorted(target_id for target_id in by_id if purge and target_id not in wanted)
    return to_put, to_remove


def expected_targets(current, to_put, to_remove) -> list:
    """The rule's targets once the changes are applied (for check mode and diffs), by id."""
    by_id = {target["Id"]: target for target in current or [] if target["Id"] not in to_remove}
    by_id.update({target["Id"]: target for target in to_put})
    return [by_id[target_id] for target_id in sorted(by_id)]


def expected_rule(current, request) -> dict:
    """What DescribeRule will answer once PutRule is applied (for check mode and diffs)."""
    after = {key: value for key, value in (current or {}).items() if key not in RULE_FIELDS}
    after.update(request)
    return after


def to_result(rule, targets) -> dict:
    """The module's return value for one rule: snake_case keys, the pattern parsed; empty for none."""
    if not rule:
        return {}
    return {
        "name": rule.get("Name"),
        "arn": rule.get("Arn"),
        "event_bus_name": rule.get("EventBusName"),
        "event_pattern": canonical_pattern(rule.get("EventPattern")),
        "state": rule.get("State"),
        "description": rule.get("Description"),
        "targets": [{option: target.get(field) for option, field in TARGET_FIELDS} for target in targets or []],
    }
