# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""canarykeys.aws.logs_subscription_filter against the local AWS's CloudWatch Logs and Lambda.

The module runs in-process (its real ``main()``, real botocore) against the local AWS (a moto server); the pure
decisions of ``module_utils/_detection/logs_subscription.py`` are tested on their own first.
"""

from __future__ import annotations

import pytest

from ansible_collections.canarykeys.aws.plugins.module_utils._detection import logs_subscription
from ansible_collections.canarykeys.aws.plugins.modules import logs_subscription_filter

GROUP = "org-audit-trail"
PATTERN = '{ $.userIdentity.type = "IAMUser" }'


# ---------------------------------------------------------------- pure logic


def test_request_leaves_out_unset_options():
    params = {"filter_pattern": PATTERN, "destination_arn": "arn:fn", "role_arn": None, "distribution": None}
    assert logs_subscription.build_request(GROUP, "f", params) == {
        "logGroupName": GROUP,
        "filterName": "f",
        "filterPattern": PATTERN,
        "destinationArn": "arn:fn",
    }


def test_fields_aws_defaults_do_not_count_when_unset():
    current = {"filterName": "f", "filterPattern": PATTERN, "destinationArn": "arn:fn", "distribution": "ByLogStream",
               "applyOnTransformedLogs": False}
    request = {"logGroupName": GROUP, "filterName": "f", "filterPattern": PATTERN, "destinationArn": "arn:fn"}
    assert logs_subscription.differences(current, request) == []
    assert logs_subscription.differences(current, dict(request, distribution="Random")) == ["distribution"]


def test_a_role_left_out_is_a_role_removed():
    current = {"filterPattern": PATTERN, "destinationArn": "arn:fn", "roleArn": "arn:role"}
    request = {"logGroupName": GROUP, "filterName": "f", "filterPattern": PATTERN, "destinationArn": "arn:fn"}
    assert logs_subscription.differences(current, request) == ["roleArn"]
    assert "roleArn" not in logs_subscription.expected_after(current, request)


def test_pick_wants_the_exact_name():
    filters = [{"filterName": "alerts-old"}, {"filterName": "alerts"}]
    assert logs_subscription.pick(filters, "alerts") == {"filterName": "alerts"}
    assert logs_subscription.pick(filters, "alert") is None


def test_pattern_longer_than_the_quota_is_refused():
    assert logs_subscription.validate({"filter_pattern": "x" * 1024}) == []
    assert "1025" in logs_subscription.validate({"filter_pattern": "x" * 1025})[0]


# ---------------------------------------------------------------- the module against the local AWS


@pytest.fixture
def stack(operator_credentials, make_function):
    """The trail's log group and two functions that a filter can send to."""
    operator_credentials.client("logs").create_log_group(logGroupName=GROUP)
    return {"logs": operator_credentials.client("logs"), "fn": make_function("forwarder"), "other_fn": make_function("other")}


def filters_of(stack, group=GROUP):
    return stack["logs"].describe_subscription_filters(logGroupName=group)["subscriptionFilters"]


def present(stack, **extra):
    args = {"log_group_name": GROUP, "filter_name": "iam-user-activity", "filter_pattern": PATTERN, "destination_arn": stack["fn"]}
    args.update(extra)
    return args


def test_create_then_nothing_to_do(stack, run_module):
    first = run_module(logs_subscription_filter, **present(stack))
    assert first["changed"] is True
    assert first["subscription_filter"]["filter_pattern"] == PATTERN
    assert first["subscription_filter"]["destination_arn"] == stack["fn"]
    assert first["subscription_filter"]["creation_time"]
    [stored] = filters_of(stack)
    assert (stored["filterName"], stored["filterPattern"], stored["destinationArn"]) == ("iam-user-activity", PATTERN, stack["fn"])

    second = run_module(logs_subscription_filter, **present(stack))
    assert second["changed"] is False
    assert second["changed_fields"] == []
    assert second["subscription_filter"] == first["subscription_filter"]


def test_check_mode_predicts_and_writes_nothing(stack, run_module):
    result = run_module(logs_subscription_filter, check_mode=True, diff=True, **present(stack))
    assert result["changed"] is True
    assert result["subscription_filter"]["destination_arn"] == stack["fn"]
    assert result["diff"]["before"] == {}
    assert filters_of(stack) == []

    run_module(logs_subscription_filter, **present(stack))
    result = run_module(logs_subscription_filter, check_mode=True, state="absent", log_group_name=GROUP, filter_name="iam-user-activity")
    assert result["changed"] is True
    assert len(filters_of(stack)) == 1


def test_update_in_place_reports_the_fields(stack, run_module):
    run_module(logs_subscription_filter, **present(stack))
    result = run_module(logs_subscription_filter, diff=True, **present(stack, filter_pattern="", destination_arn=stack["other_fn"]))
    assert result["changed"] is True
    assert result["changed_fields"] == ["destinationArn", "filterPattern"]
    assert result["diff"]["before"]["destination_arn"] == stack["fn"]
    assert result["diff"]["after"]["destination_arn"] == stack["other_fn"]
    [stored] = filters_of(stack)
    assert (stored["filterPattern"], stored["destinationArn"]) == ("", stack["other_fn"])


def test_absent_deletes_only_its_filter(stack, run_module):
    run_module(logs_subscription_filter, **present(stack))
    run_module(logs_subscription_filter, **present(stack, filter_name="keep-me"))
    result = run_module(logs_subscription_filter, state="absent", log_group_name=GROUP, filter_name="iam-user-activity")
    assert result["changed"] is True
    assert result["subscription_filter"] == {}
    assert [f["filterName"] for f in filters_of(stack)] == ["keep-me"]
    again = run_module(logs_subscription_filter, state="absent", log_group_name=GROUP, filter_name="iam-user-activity")
    assert again["changed"] is False


def test_absent_with_no_log_group_is_not_an_error(stack, run_module):
    result = run_module(logs_subscription_filter, state="absent", log_group_name="no-such-group", filter_name="x")
    assert result["changed"] is False
    assert not result.get("failed")


def test_present_needs_the_log_group(stack, run_module):
    result = run_module(logs_subscription_filter, **present(stack, log_group_name="no-such-group"))
    assert result["failed"] is True
    assert "does not exist" in result["msg"]


def test_a_third_filter_fails_with_a_clear_message(stack, run_module):
    for name in ("one", "two"):
        assert run_module(logs_subscription_filter, **present(stack, filter_name=name))["changed"] is True
    result = run_module(logs_subscription_filter, **present(stack, filter_name="three"))
    assert result["failed"] is True
    assert "maximum of two" in result["msg"]


def test_present_requires_pattern_and_destination(stack, run_module):
    result = run_module(logs_subscription_filter, log_group_name=GROUP, filter_name="f")
    assert result["failed"] is True
    assert "filter_pattern" in result["msg"] and "destination_arn" in result["msg"]


def test_pattern_over_quota_fails_before_any_call(stack, run_module):
    result = run_module(logs_subscription_filter, **present(stack, filter_pattern="x" * 1025))
    assert result["failed"] is True
    assert filters_of(stack) == []
