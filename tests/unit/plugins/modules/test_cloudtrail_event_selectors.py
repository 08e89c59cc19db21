# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""canarykeys.aws.cloudtrail_event_selectors: its pure decisions, then the module against the local AWS."""

from __future__ import annotations

from ansible_collections.canarykeys.aws.plugins.module_utils._detection import event_selectors
from ansible_collections.canarykeys.aws.plugins.modules import cloudtrail_event_selectors as module

MANAGEMENT = {"Name": "Management events", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}
CANARY_DATA = {
    "Name": "Data events of the canary users: AWS::S3::Object",
    "FieldSelectors": [
        {"Field": "eventCategory", "Equals": ["Data"]},
        {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
        {"Field": "userIdentity.arn", "StartsWith": ["arn:aws:iam::123456789012:user/"]},
    ],
}
WANTED = [MANAGEMENT, CANARY_DATA]


# ---------------------------------------------------------------- pure logic


def test_order_and_empty_operators_do_not_count():
    reordered = [dict(CANARY_DATA, FieldSelectors=list(reversed(CANARY_DATA["FieldSelectors"]))),
                 {"Name": "Management events", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"],
                                                                  "NotEquals": []}]}]
    assert not event_selectors.differ(reordered, WANTED)
    assert event_selectors.differ([MANAGEMENT], WANTED)
    assert event_selectors.differ([], [MANAGEMENT])


def test_a_selector_without_fields_or_operators_is_refused():
    assert event_selectors.validate(WANTED) == []
    assert "no FieldSelectors" in event_selectors.validate([{"Name": "x"}])[0]
    assert "without Field or operator" in event_selectors.validate([{"Name": "x", "FieldSelectors": [{"Field": "f"}]}])[0]


# ---------------------------------------------------------------- the module against the local AWS


def test_set_then_nothing_to_do(aws, run_module, trail):
    first = run_module(module, diff=True, trail_name=trail, advanced_event_selectors=WANTED)
    assert first["changed"] is True
    assert first["diff"]["before"] == {"advanced_event_selectors": []}
    assert aws.client("cloudtrail").get_event_selectors(TrailName=trail)["AdvancedEventSelectors"] == WANTED
    writes = aws.count(writes_only=True)
    second = run_module(module, trail_name=trail, advanced_event_selectors=WANTED)
    assert second["changed"] is False
    assert second["advanced_event_selectors"] == WANTED
    assert aws.count(writes_only=True) == writes


def test_a_change_is_written_and_check_mode_writes_nothing(aws, run_module, trail):
    run_module(module, trail_name=trail, advanced_event_selectors=WANTED)
    writes = aws.count(writes_only=True)
    check = run_module(module, check_mode=True, trail_name=trail, advanced_event_selectors=[MANAGEMENT])
    assert (check["changed"], check["advanced_event_selectors"]) == (True, [MANAGEMENT])
    assert aws.count(writes_only=True) == writes
    result = run_module(module, trail_name=trail, advanced_event_selectors=[MANAGEMENT])
    assert result["changed"] is True
    assert aws.client("cloudtrail").get_event_selectors(TrailName=trail)["AdvancedEventSelectors"] == [MANAGEMENT]


def test_a_missing_trail_fails_except_in_check_mode(aws, run_module):
    result = run_module(module, trail_name="no-such-trail", advanced_event_selectors=WANTED)
    assert result["failed"] is True and "does not exist" in result["msg"]
    check = run_module(module, check_mode=True, trail_name="no-such-trail", advanced_event_selectors=WANTED)
    assert check["changed"] is True and not check.get("failed")


def test_a_bad_selector_fails_before_any_call(aws, run_module, trail):
    calls = len(aws.calls())
    result = run_module(module, trail_name=trail, advanced_event_selectors=[{"Name": "x"}])
    assert result["failed"] is True and "no FieldSelectors" in result["msg"]
    assert len(aws.calls()) == calls
