# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""canarykeys.aws.lambda_event_invoke_config: its pure decisions, then the module against the local AWS."""

from __future__ import annotations

from ansible_collections.canarykeys.aws.plugins.module_utils._detection import event_invoke_config
from ansible_collections.canarykeys.aws.plugins.modules import lambda_event_invoke_config as module

DLQ = "arn:aws:sqs:us-east-1:123456789012:forwarder-dlq"


# ---------------------------------------------------------------- pure logic


def test_options_left_out_mean_lambdas_defaults():
    request = event_invoke_config.build_request("fn", {"on_failure_destination": DLQ})
    assert request == {"FunctionName": "fn", "MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 21600,
                       "DestinationConfig": {"OnFailure": {"Destination": DLQ}}}
    current = {"FunctionArn": "arn:fn", "MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 21600,
               "DestinationConfig": {"OnFailure": {"Destination": DLQ}, "OnSuccess": {}}}
    assert event_invoke_config.differences(current, request) == []
    assert event_invoke_config.differences(current, dict(request, MaximumRetryAttempts=0)) == ["MaximumRetryAttempts"]
    assert event_invoke_config.differences(current, dict(request, DestinationConfig={})) == ["OnFailure"]
    assert event_invoke_config.differences(None, request) == ["MaximumEventAgeInSeconds", "MaximumRetryAttempts", "OnFailure"]


# ---------------------------------------------------------------- the module against the local AWS


def present(function_arn, **extra):
    return dict({"function_name": function_arn.rsplit(":", 1)[1], "maximum_retry_attempts": 2,
                 "maximum_event_age_in_seconds": 21600, "on_failure_destination": DLQ}, **extra)


def test_set_then_nothing_to_do(aws, run_module, alert_function):
    writes = aws.count(writes_only=True)
    check = run_module(module, check_mode=True, diff=True, **present(alert_function))
    assert check["changed"] is True and check["diff"]["before"] == {}
    assert aws.count(writes_only=True) == writes

    first = run_module(module, **present(alert_function))
    assert first["changed"] is True
    assert first["event_invoke_config"]["on_failure_destination"] == DLQ
    stored = aws.client("lambda").get_function_event_invoke_config(FunctionName="forwarder")
    assert (stored["MaximumRetryAttempts"], stored["DestinationConfig"]["OnFailure"]["Destination"]) == (2, DLQ)

    writes = aws.count(writes_only=True)
    second = run_module(module, **present(alert_function))
    assert (second["changed"], second["changed_fields"]) == (False, [])
    assert aws.count(writes_only=True) == writes


def test_a_different_setting_is_written(aws, run_module, alert_function):
    run_module(module, **present(alert_function))
    writes = aws.count(service="lambda", action="PutFunctionEventInvokeConfig")
    result = run_module(module, diff=True, **present(alert_function, maximum_retry_attempts=0))
    assert result["changed_fields"] == ["MaximumRetryAttempts"]
    assert result["diff"]["after"]["maximum_retry_attempts"] == 0
    # moto keeps answering with the first configuration written (docs: notes): count the write instead.
    assert aws.count(service="lambda", action="PutFunctionEventInvokeConfig") == writes + 1


def test_absent_deletes_then_nothing_to_do(aws, run_module, alert_function):
    run_module(module, **present(alert_function))
    result = run_module(module, function_name="forwarder", state="absent")
    assert result["changed"] is True and result["event_invoke_config"] == {}
    assert aws.client("lambda").list_function_event_invoke_configs(FunctionName="forwarder")["FunctionEventInvokeConfigs"] == []
    assert run_module(module, function_name="forwarder", state="absent")["changed"] is False


def test_a_missing_function_fails_at_the_write(aws, run_module):
    result = run_module(module, function_name="no-such-function", on_failure_destination=DLQ)
    assert result["failed"] is True
