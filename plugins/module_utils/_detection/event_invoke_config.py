# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Lambda function's asynchronous invocation settings: what to send, what differs, what to return.

Pure logic with no Ansible and no AWS calls, for the ``lambda_event_invoke_config`` module.
"""

from __future__ import annotations

from ansible_collections.canarykeys.aws.plugins.module_utils._detection.compare import changed_fields

# PutFunctionEventInvokeConfig replaces the whole configuration: a setting left out takes Lambda's
# default, so an option the user leaves out means that default, and is compared as such.
DEFAULTS = {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 21600}

# Compared fields: the two limits, and each destination flattened to its ARN.
FIELDS = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "OnFailure", "OnSuccess")


def build_request(function_name, params) -> dict:
    """The PutFunctionEventInvokeConfig request (limits filled in with Lambda's defaults)."""
    request = {
        "FunctionName": function_name,
        "MaximumRetryAttempts": DEFAULTS["MaximumRetryAttempts"] if params.get("maximum_retry_attempts") is None
        else params["maximum_retry_attempts"],
        "MaximumEventAgeInSeconds": DEFAULTS["MaximumEventAgeInSeconds"] if params.get("maximum_event_age_in_seconds") is None
        else params["maximum_event_age_in_seconds"],
    }
    destinations = {}
    for option, key in (("on_failure_destination", "OnFailure"), ("on_success_destination", "OnSuccess")):
        if params.get(option):
            destinations[key] = {"Destination": params[option]}
    if destinations:
        request["DestinationConfig"] = destinations
    return request


def settings(config) -> dict:
    """The compared fields of a request or of GetFunctionEventInvokeConfig's answer."""
    if not config:
        return {}
    flat = {field: config[field] for field in DEFAULTS if field in config}
    for key in ("OnFailure", "OnSuccess"):
        destination = (config.get("DestinationConfig") or {}).get(key, {}).get("Destination")
        if destination:
            flat[key] = destination
    return flat


def differences(current, request) -> list:
    """Names of the fields that differ, sorted; every set field when there is no configuration yet."""
    return changed_fields(settings(current) or None, settings(request), FIELDS)


def to_result(config) -> dict:
    """The module's return value: snake_case keys, destination ARNs flat; empty for none."""
    if not config:
        return {}
    flat = settings(config)
    return {
        "function_arn": config.get("FunctionArn"),
        "maximum_retry_attempts": flat.get("MaximumRetryAttempts"),
        "maximum_event_age_in_seconds": flat.get("MaximumEventAgeInSeconds"),
        "on_failure_destination": flat.get("OnFailure"),
        "on_success_destination": flat.get("OnSuccess"),
    }
