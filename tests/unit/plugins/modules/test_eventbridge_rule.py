# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""canarykeys.aws.eventbridge_rule: its pure decisions, then the module against the local AWS."""

from __future__ import annotations

import json

from ansible_collections.canarykeys.aws.plugins.module_utils._detection import eventbridge_rule
from ansible_collections.canarykeys.aws.plugins.modules import eventbridge_rule as module

PATTERN = {"detail-type": ["AWS API Call via CloudTrail"], "detail": {"userIdentity": {"type": ["IAMUser"]}}}
ALL_EVENTS = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"


# ---------------------------------------------------------------- pure logic


def params(**extra):
    return dict({"event_pattern": json.dumps(PATTERN), "rule_state": ALL_EVENTS, "description": "d",
                 "event_bus_name": None}, **extra)


def test_a_pattern_spelt_otherwise_is_no_change():
    request = eventbridge_rule.build_rule_request("r", params())
    current = {"Name": "r", "Arn": "arn", "State": ALL_EVENTS, "Description": "d",
               "EventPattern": '{ "detail": {"userIdentity": {"type": ["IAMUser"]}},\n "detail-type": ["AWS API Call via CloudTrail"] }'}
    assert eventbridge_rule.rule_differences(current, request) == []
    assert eventbridge_rule.rule_differences(dict(current, State="ENABLED"), request) == ["State"]


def test_a_description_left_out_is_removed_and_nothing_existing_means_everything():
    request = eventbridge_rule.build_rule_request("r", params(description=None))
    current = {"Name": "r", "State": ALL_EVENTS, "Description": "d", "EventPattern": json.dumps(PATTERN)}
    assert eventbridge_rule.rule_differences(current, request) == ["Description"]
    assert eventbridge_rule.rule_differences(None, request) == ["EventPattern", "State"]


def test_targets_by_id_with_and_without_purge():
    current = [{"Id": "a", "Arn": "arn:1"}, {"Id": "keep", "Arn": "arn:2"}]
    desired = eventbridge_rule.build_targets([{"id": "a", "arn": "arn:1", "input": None, "role_arn": None},
                                              {"id": "b", "arn": "arn:3", "input": None, "role_arn": None}])
    assert eventbridge_rule.target_changes(current, desired, purge=True) == ([{"Id": "b", "Arn": "arn:3"}], ["keep"])
    assert eventbridge_rule.target_changes(current, desired, purge=False) == ([{"Id": "b", "Arn": "arn:3"}], [])
    moved = [{"Id": "a", "Arn": "arn:9"}]
    assert eventbridge_rule.target_changes(current, moved, purge=False) == (moved, [])
    assert eventbridge_rule.expected_targets(current, moved, ["keep"]) == moved


# ---------------------------------------------------------------- the module against the local AWS


def present(function_arn, **extra):
    args = {"name": "iam-user-api-calls", "event_pattern": PATTERN, "rule_state": ALL_EVENTS,
            "description": "IAM user API calls", "targets": [{"id": "alert-forwarder", "arn": function_arn}]}
    return dict(args, **extra)


def stored(aws, name="iam-user-api-calls"):
    events = aws.client("events")
    rule = events.describe_rule(Name=name)
    return rule, [(t["Id"], t["Arn"]) for t in events.list_targets_by_rule(Rule=name)["Targets"]]


def test_create_with_all_management_events_then_nothing_to_do(aws, run_module, alert_function):
    first = run_module(module, **present(alert_function))
    assert first["changed"] is True
    assert first["changed_fields"] == ["Description", "EventPattern", "State", "Targets"]
    rule, targets = stored(aws)
    assert rule["State"] == ALL_EVENTS
    assert json.loads(rule["EventPattern"]) == PATTERN
    assert targets == [("alert-forwarder", alert_function)]
    assert first["rule"]["arn"] == rule["Arn"] and first["rule"]["event_pattern"] == PATTERN

    writes = aws.count(writes_only=True)
    second = run_module(module, **present(alert_function))
    assert (second["changed"], second["changed_fields"]) == (False, [])
    assert aws.count(writes_only=True) == writes
    assert second["rule"] == first["rule"]


def test_check_mode_predicts_and_writes_nothing(aws, run_module, alert_function):
    writes = aws.count(writes_only=True)
    result = run_module(module, check_mode=True, diff=True, **present(alert_function))
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    assert result["rule"]["state"] == ALL_EVENTS and result["rule"]["targets"][0]["arn"] == alert_function
    assert aws.count(writes_only=True) == writes
    assert aws.client("events").list_rules()["Rules"] == []


def test_a_state_reset_elsewhere_is_restored(aws, run_module, alert_function):
    run_module(module, **present(alert_function))
    aws.client("events").put_rule(Name="iam-user-api-calls", EventPattern=json.dumps(PATTERN), State="ENABLED",
                                  Description="IAM user API calls")
    result = run_module(module, diff=True, **present(alert_function))
    assert result["changed_fields"] == ["State"]
    assert (result["diff"]["before"]["state"], result["diff"]["after"]["state"]) == ("ENABLED", ALL_EVENTS)
    assert stored(aws)[0]["State"] == ALL_EVENTS


def test_targets_are_replaced_and_purged(aws, run_module, alert_function):
    run_module(module, **present(alert_function))
    aws.client("events").put_targets(Rule="iam-user-api-calls", Targets=[{"Id": "stray", "Arn": alert_function}])
    result = run_module(module, **present(alert_function, targets=[{"id": "other", "arn": alert_function}]))
    assert result["changed_fields"] == ["Targets"]
    assert stored(aws)[1] == [("other", alert_function)]
    kept = run_module(module, **present(alert_function, targets=[{"id": "more", "arn": alert_function}], purge_targets=False))
    assert sorted(stored(aws)[1]) == [("more", alert_function), ("other", alert_function)]
    assert kept["changed"] is True


def test_absent_removes_targets_and_rule_only_its_own(aws, run_module, alert_function):
    run_module(module, **present(alert_function))
    run_module(module, **present(alert_function, name="keep-me"))
    check = run_module(module, check_mode=True, name="iam-user-api-calls", state="absent")
    assert check["changed"] is True
    assert len(aws.client("events").list_rules()["Rules"]) == 2
    result = run_module(module, name="iam-user-api-calls", state="absent")
    assert result["changed"] is True and result["rule"] == {}
    assert [r["Name"] for r in aws.client("events").list_rules()["Rules"]] == ["keep-me"]
    again = run_module(module, name="iam-user-api-calls", state="absent")
    assert again["changed"] is False


def test_present_needs_a_pattern(aws, run_module):
    result = run_module(module, name="r")
    assert result["failed"] is True and "event_pattern" in result["msg"]
