#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lambda_event_invoke_config
version_added: 0.1.0
short_description: Manage where a Lambda function's failed asynchronous invocations go
description:
  - Sets a Lambda function's asynchronous invocation configuration (the event invoke config), that is how
    often Lambda retries an event that failed, how long it keeps trying, and the destinations that
    receive a record of each failed or successful invocation.
  - M(amazon.aws.lambda) has no option for these; its O(amazon.aws.lambda#module:dead_letter_arn) is the
    classic dead-letter queue, which keeps the event but not the error.
author:
  - canarykeys maintainers (@canarykeys)
options:
  function_name:
    description:
      - Name or ARN of the function (the unqualified function; versions and aliases are not managed here).
    required: true
    type: str
  state:
    description:
      - V(present) ensures the configuration as described, V(absent) deletes it (Lambda's defaults apply
        again). A missing configuration is not an error with V(absent).
    type: str
    default: present
    choices: [present, absent]
  maximum_retry_attempts:
    description:
      - Retries after a failed asynchronous invocation, 0 to 2. Left out, Lambda's default of 2.
    type: int
  maximum_event_age_in_seconds:
    description:
      - How long Lambda keeps trying an event, 60 to 21600 seconds. Left out, Lambda's default of 21600.
    type: int
  on_failure_destination:
    description:
      - ARN of the SQS queue, SNS topic, Lambda function, EventBridge bus or S3 bucket that receives a
        record (the event and the error) of each invocation that failed for good.
      - The function's execution role needs permission to send there.
      - Left out, a configuration that has one loses it.
    type: str
  on_success_destination:
    description:
      - ARN of the destination of a record of each successful invocation. Left out, a configuration that
        has one loses it.
    type: str
notes:
  - Moto (the local AWS) keeps the first configuration written and answers with it after an update.
extends_documentation_fragment:
  - canarykeys.aws.aws_check_diff
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Keep failed alerts six hours, then send them with their error to a queue
  canarykeys.aws.lambda_event_invoke_config:
    function_name: audit-event-forwarder
    maximum_retry_attempts: 2
    maximum_event_age_in_seconds: 21600
    on_failure_destination: arn:aws:sqs:us-east-1:123456789012:audit-event-forwarder-dlq

- name: Back to Lambda's defaults
  canarykeys.aws.lambda_event_invoke_config:
    function_name: audit-event-forwarder
    state: absent
"""

RETURN = r"""
event_invoke_config:
  description: The configuration after the task (in check mode, as it would be). Empty when O(state=absent).
  returned: always
  type: dict
  contains:
    function_arn:
      description: ARN of the function; null for a configuration check mode would create.
      returned: when the configuration exists
      type: str
      sample: arn:aws:lambda:us-east-1:123456789012:function:audit-event-forwarder:$LATEST
    maximum_retry_attempts:
      description: Retries after a failed invocation.
      returned: when the configuration exists
      type: int
      sample: 2
    maximum_event_age_in_seconds:
      description: How long Lambda keeps trying an event, in seconds.
      returned: when the configuration exists
      type: int
      sample: 21600
    on_failure_destination:
      description: ARN of the on-failure destination, or null.
      returned: when the configuration exists
      type: str
      sample: arn:aws:sqs:us-east-1:123456789012:audit-event-forwarder-dlq
    on_success_destination:
      description: ARN of the on-success destination, or null.
      returned: when the configuration exists
      type: str
      sample: null
changed_fields:
  description: The settings that differed (as in the AWS API) and were or would be written.
  returned: always
  type: list
  elements: str
  sample: [OnFailure]
"""

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.canarykeys.aws.plugins.module_utils._detection import event_invoke_config
from ansible_collections.canarykeys.aws.plugins.module_utils._detection.aws_errors import AWS_ERRORS


def read_config(module, client, function_name):
    """The current configuration, or None.

    The same error names a missing configuration and a missing function: a missing function fails at
    the write (with Lambda's own message), and check mode may run before the function exists.
    """
    try:
        config = client.get_function_event_invoke_config(aws_retry=True, FunctionName=function_name)
    except is_boto3_error_code("ResourceNotFoundException"):
        return None
    except AWS_ERRORS as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to read the event invoke configuration of {function_name}")
    config.pop("ResponseMetadata", None)
    return config


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            function_name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            maximum_retry_attempts=dict(type="int"),
            maximum_event_age_in_seconds=dict(type="int"),
            on_failure_destination=dict(type="str"),
            on_success_destination=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    function_name = module.params["function_name"]
    client = module.client("lambda", retry_decorator=AWSRetry.jittered_backoff())
    current = read_config(module, client, function_name)

    if module.params["state"] == "present":
        request = event_invoke_config.build_request(function_name, module.params)
        changed_fields = event_invoke_config.differences(current, request)
        after = current
        if changed_fields:
            after = request
            if not module.check_mode:
                try:
                    after = client.put_function_event_invoke_config(aws_retry=True, **request)
                except AWS_ERRORS as e:
                    module.fail_json_aws(
                        e, msg=(f"Failed to set the event invoke configuration of {function_name}; a destination needs "
                                "the function's role to be allowed to send there")
                    )
    else:
        changed_fields = sorted(event_invoke_config.settings(current))
        after = None
        if current and not module.check_mode:
            try:
                client.delete_function_event_invoke_config(aws_retry=True, FunctionName=function_name)
            except is_boto3_error_code("ResourceNotFoundException"):
                pass
            except AWS_ERRORS as e:  # pylint: disable=duplicate-except
                module.fail_json_aws(e, msg=f"Failed to delete the event invoke configuration of {function_name}")

    result = dict(
        changed=bool(changed_fields),
        event_invoke_config=event_invoke_config.to_result(after),
        changed_fields=changed_fields,
    )
    if module._diff:
        result["diff"] = dict(before=event_invoke_config.to_result(current), after=result["event_invoke_config"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
