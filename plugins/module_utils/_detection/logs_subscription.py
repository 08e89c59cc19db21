# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CloudWatch Logs subscription filters: what to send, what differs, what to return.

Pure logic with no Ansible and no AWS calls, so that the decisions of the
``logs_subscription_filter`` module are testable as plain Python.  The module
does the API calls.
"""

from __future__ import annotations

from ansible_collections.canarykeys.aws.plugins.module_utils._detection.compare import changed_fields

# Module option -> PutSubscriptionFilter / SubscriptionFilter field.
FIELDS = (
    ("filter_pattern", "filterPattern"),
    ("destination_arn", "destinationArn"),
    ("role_arn", "roleArn"),
    ("distribution", "distribution"),
    ("apply_on_transformed_logs", "applyOnTransformedLogs"),
)

# Fields that AWS fills with a default when the request leaves them out: an option the user did not
# set must not count as a difference, or the second run would rewrite the filter every time.
DEFAULTED_BY_AWS = frozenset(("distribution", "applyOnTransformedLogs"))

# A filter pattern may be at most 1,024 characters (CloudWatch Logs quota).
PATTERN_MAX = 1024


def build_request(log_group_name, filter_name, params) -> dict:
    """The PutSubscriptionFilter request for the desired filter (unset options left out)."""
    request = {"logGroupName": log_group_name, "filterName": filter_name}
    for option, field in FIELDS:
        value = params.get(option)
        if value is not None:
            request[field] = value
    return request


def validate(params) -> list:
    """Problems with the desired filter that AWS would reject less clearly; empty when fine."""
    problems = []
    pattern = params.get("filter_pattern")
    if pattern is not None and len(pattern) > PATTERN_MAX:
        problems.append(f"filter_pattern is {len(pattern)} characters long; CloudWatch Logs allows at most {PATTERN_MAX}.")
    return problems


def differences(current, request) -> list:
    """Names of the fields where the existing filter differs from the request, sorted.

    ``roleArn`` counts when it is set on one side only: a PutSubscriptionFilter
    without it removes the role, which is what a request without it means.
    """
    return changed_fields(current, request, [field for _option, field in FIELDS], DEFAULTED_BY_AWS)


def pick(filters, filter_name):
    """The filter called exactly ``filter_name`` (a name prefix query also returns longer names)."""
    for candidate in filters or []:
        if candidate.get("filterName") == filter_name:
            return candidate
    return None


def to_result(subscription_filter) -> dict:
    """The module's return value for one filter: snake_case keys, empty dict for none."""
    if not subscription_filter:
        return {}
    result = {
        "filter_name": subscription_filter.get("filterName"),
        "log_group_name": subscription_filter.get("logGroupName"),
        "creation_time": subscription_filter.get("creationTime"),
    }
    for option, field in FIELDS:
        result[option] = subscription_filter.get(field)
    return result


def expected_after(current, request) -> dict:
    """What the filter will look like once the request is applied (for check mode and diffs)."""
    after = dict(current or {})
    for _option, field in FIELDS:
        if field in request:
            after[field] = request[field]
        elif field not in DEFAULTED_BY_AWS:
            after.pop(field, None)
    after["filterName"] = request["filterName"]
    after["logGroupName"] = request["logGroupName"]
    return after
