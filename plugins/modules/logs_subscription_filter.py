#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: logs_subscription_filter
version_added: 0.1.0
short_description: Manage a CloudWatch Logs subscription filter
description:
  - Creates, updates or deletes one subscription filter of a CloudWatch Logs log group, which streams
    the group's matching log events to a Lambda function, a Kinesis data stream, an Amazon Data
    Firehose stream or a CloudWatch Logs destination.
  - The amazon.aws collection manages log groups and metric filters but not subscription filters.
  - A filter is identified by O(log_group_name) and O(filter_name). When a filter of that name exists
    and differs, it is replaced in place by C(PutSubscriptionFilter).
  - A log group takes at most two subscription filters. Adding a third fails with the AWS error
    C(LimitExceededException).
author:
  - canarykeys maintainers (@canarykeys)
options:
  log_group_name:
    description:
      - Name of the log group.
      - The log group must exist when O(state=present).
    required: true
    type: str
  filter_name:
    description:
      - Name of the subscription filter, unique within the log group.
    required: true
    type: str
  state:
    description:
      - V(present) ensures the filter exists as described, V(absent) deletes it.
      - With V(absent), a missing filter or a missing log group is not an error.
    type: str
    default: present
    choices: [present, absent]
  filter_pattern:
    description:
      - The CloudWatch Logs filter pattern, at most 1,024 characters. V("") matches every event.
      - Required when O(state=present).
    type: str
  destination_arn:
    description:
      - ARN of the destination (Lambda function, Kinesis stream, Firehose stream or logs destination).
      - A Lambda function needs a resource policy that lets C(logs.amazonaws.com) invoke it, see
        M(amazon.aws.lambda_policy). Without it AWS refuses the filter.
      - Required when O(state=present).
    type: str
  role_arn:
    description:
      - ARN of an IAM role that CloudWatch Logs assumes to write to a Kinesis or Firehose destination.
      - Leave it out for a Lambda destination. A filter that has a role loses it when the option is
        left out.
    type: str
  distribution:
    description:
      - How log events are spread over the shards of a Kinesis destination.
      - When left out, the filter keeps whatever it has (AWS defaults to V(ByLogStream)).
    type: str
    choices: [Random, ByLogStream]
  apply_on_transformed_logs:
    description:
      - Whether the filter applies to the transformed version of the log events (log transformers).
      - When left out, the filter keeps whatever it has (AWS defaults to V(false)).
    type: bool
notes:
  - Moto (the local AWS) stores filter patterns without evaluating JSON patterns, and always reports
    O(distribution=ByLogStream).
extends_documentation_fragment:
  - canarykeys.aws.aws_check_diff
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Send the IAM user events of the trail's log group to the alert Lambda
  canarykeys.aws.logs_subscription_filter:
    log_group_name: org-audit-trail
    filter_name: iam-user-activity
    filter_pattern: '{ $.userIdentity.type = "IAMUser" }'
    destination_arn: arn:aws:lambda:us-east-1:123456789012:function:audit-event-forwarder

- name: Stream everything to a Kinesis stream through a role
  canarykeys.aws.logs_subscription_filter:
    log_group_name: /app/web
    filter_name: to-kinesis
    filter_pattern: ""
    destination_arn: arn:aws:kinesis:eu-west-1:123456789012:stream/app-logs
    role_arn: arn:aws:iam::123456789012:role/cwl-to-kinesis
    distribution: Random

- name: Remove the filter
  canarykeys.aws.logs_subscription_filter:
    log_group_name: org-audit-trail
    filter_name: iam-user-activity
    state: absent
"""

RETURN = r"""
subscription_filter:
  description:
    - The filter after the task (in check mode, as it would be). Empty when O(state=absent).
  returned: always
  type: dict
  contains:
    filter_name:
      description: Name of the filter.
      returned: when the filter exists
      type: str
      sample: iam-user-activity
    log_group_name:
      description: Name of the log group.
      returned: when the filter exists
      type: str
      sample: org-audit-trail
    filter_pattern:
      description: The filter pattern.
      returned: when the filter exists
      type: str
      sample: '{ $.userIdentity.type = "IAMUser" }'
    destination_arn:
      description: ARN of the destination.
      returned: when the filter exists
      type: str
      sample: arn:aws:lambda:us-east-1:123456789012:function:audit-event-forwarder
    role_arn:
      description: ARN of the role CloudWatch Logs assumes, if any.
      returned: when the filter exists
      type: str
      sample: null
    distribution:
      description: Distribution of log events to a Kinesis destination.
      returned: when the filter exists
      type: str
      sample: ByLogStream
    apply_on_transformed_logs:
      description: Whether the filter applies to transformed log events.
      returned: when the filter exists
      type: bool
      sample: false
    creation_time:
      description: Creation time in milliseconds since the epoch; null for a filter check mode would create.
      returned: when the filter exists
      type: int
      sample: 1735689600000
changed_fields:
  description: The filter fields that differed (camelCase, as in the AWS API) and were or would be written.
  returned: always
  type: list
  elements: str
  sample: [destinationArn, filterPattern]
"""

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing dependency

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.canarykeys.aws.plugins.module_utils._detection import logs_subscription


@AWSRetry.jittered_backoff()
def _list_filters(client, log_group_name, filter_name):
    paginator = client.get_paginator("describe_subscription_filters")
    pages = paginator.paginate(logGroupName=log_group_name, filterNamePrefix=filter_name)
    return pages.build_full_result().get("subscriptionFilters", [])


def current_filter(module, client, log_group_name, filter_name):
    """The existing filter, or None; ``False`` when the log group itself does not exist."""
    try:
        filters = _list_filters(client, log_group_name, filter_name)
    except is_boto3_error_code("ResourceNotFoundException"):
        return False
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to describe the subscription filters of log group {log_group_name}")
    return logs_subscription.pick(filters, filter_name)


def ensure_present(module, client, log_group_name, filter_name, current):
    if current is False:
        module.fail_json(msg=f"Log group {log_group_name} does not exist; create it before its subscription filter.")
    problems = logs_subscription.validate(module.params)
    if problems:
        module.fail_json(msg=" ".join(problems))
    request = logs_subscription.build_request(log_group_name, filter_name, module.params)
    changed_fields = logs_subscription.differences(current, request)
    if not changed_fields:
        return False, current, changed_fields
    if module.check_mode:
        return True, logs_subscription.expected_after(current, request), changed_fields
    try:
        client.put_subscription_filter(aws_retry=True, **request)
    except is_boto3_error_code("LimitExceededException") as e:
        module.fail_json_aws(
            e, msg=f"Log group {log_group_name} already has the maximum of two subscription filters; remove one first."
        )
    except is_boto3_error_code("InvalidParameterException") as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(
            e,
            msg=(
                f"AWS refused subscription filter {filter_name}. For a Lambda destination, check that its resource policy "
                "lets logs.amazonaws.com invoke it (amazon.aws.lambda_policy)."
            ),
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to put subscription filter {filter_name} on log group {log_group_name}")
    after = current_filter(module, client, log_group_name, filter_name) or logs_subscription.expected_after(current, request)
    return True, after, changed_fields


def ensure_absent(module, client, log_group_name, filter_name, current):
    if not current:
        return False, None, []
    if not module.check_mode:
        try:
            client.delete_subscription_filter(aws_retry=True, logGroupName=log_group_name, filterName=filter_name)
        except is_boto3_error_code("ResourceNotFoundException"):
            return False, None, []
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to delete subscription filter {filter_name} of log group {log_group_name}")
    return True, None, sorted(field for _option, field in logs_subscription.FIELDS if field in current)


def main():
    argument_spec = dict(
        log_group_name=dict(type="str", required=True),
        filter_name=dict(type="str", required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        filter_pattern=dict(type="str"),
        destination_arn=dict(type="str"),
        role_arn=dict(type="str"),
        distribution=dict(type="str", choices=["Random", "ByLogStream"]),
        apply_on_transformed_logs=dict(type="bool"),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ["filter_pattern", "destination_arn"])],
        supports_check_mode=True,
    )
    log_group_name = module.params["log_group_name"]
    filter_name = module.params["filter_name"]
    client = module.client("logs", retry_decorator=AWSRetry.jittered_backoff())

    current = current_filter(module, client, log_group_name, filter_name)
    if module.params["state"] == "present":
        changed, after, changed_fields = ensure_present(module, client, log_group_name, filter_name, current)
    else:
        changed, after, changed_fields = ensure_absent(module, client, log_group_name, filter_name, current)

    result = dict(
        changed=changed,
        subscription_filter=logs_subscription.to_result(after),
        changed_fields=changed_fields,
    )
    if module._diff:
        result["diff"] = dict(before=logs_subscription.to_result(current or None), after=result["subscription_filter"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
