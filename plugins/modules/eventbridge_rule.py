#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: eventbridge_rule
version_added: 0.1.0
short_description: Manage an EventBridge rule with an event pattern, its state and its targets
description:
  - Creates, updates or deletes one Amazon EventBridge rule that matches events by an event pattern,
    and the targets it sends them to.
  - Unlike M(amazon.aws.cloudwatchevent_rule), it knows the rule state
    V(ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS), without which EventBridge does not deliver
    read-only CloudTrail management events (C(List*), C(Get*), C(Describe*)) to the rule, and it
    leaves that state alone on every later run.
  - Scheduled rules (C(schedule_expression)) are left to M(amazon.aws.cloudwatchevent_rule).
  - A target that invokes a Lambda function needs a resource policy that lets C(events.amazonaws.com)
    invoke it for this rule, see M(amazon.aws.lambda_policy).
author:
  - canarykeys maintainers (@canarykeys)
options:
  name:
    description:
      - Name of the rule, unique on its event bus.
    required: true
    type: str
  event_bus_name:
    description:
      - Name or ARN of the event bus. Left out, the account's default event bus.
    type: str
  state:
    description:
      - V(present) ensures the rule and its targets as described, V(absent) removes its targets and
        deletes it. A missing rule is not an error with V(absent).
    type: str
    default: present
    choices: [present, absent]
  event_pattern:
    description:
      - The event pattern, as a dict or as JSON text. Required when O(state=present).
      - Compared parsed, so the spacing and key order AWS hands back do not count as a change.
    type: json
  rule_state:
    description:
      - The state of the rule.
      - V(ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS) also delivers read-only CloudTrail
        management events, which V(ENABLED) does not.
    type: str
    default: ENABLED
    choices: [ENABLED, DISABLED, ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS]
  description:
    description:
      - Description of the rule. Left out, a rule that has one loses it.
    type: str
  targets:
    description:
      - The targets of the rule, each identified by its O(targets[].id).
    type: list
    elements: dict
    default: []
    suboptions:
      id:
        description: Identifier of the target, unique within the rule.
        type: str
        required: true
      arn:
        description: ARN of the target (a Lambda function, an SQS queue, an SNS topic, ...).
        type: str
        required: true
      input:
        description: Constant JSON text sent instead of the matched event.
        type: str
      role_arn:
        description: ARN of the role EventBridge assumes to reach targets that need one.
        type: str
  purge_targets:
    description:
      - Remove the rule's targets that O(targets) does not name.
    type: bool
    default: true
notes:
  - Moto (the local AWS) stores the rule state without acting on it.
extends_documentation_fragment:
  - canarykeys.aws.aws_check_diff
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Send every CloudTrail API call of an IAM user to the alert Lambda, read-only calls included
  canarykeys.aws.eventbridge_rule:
    name: iam-user-api-calls
    description: IAM user API calls from CloudTrail, read-only calls included
    event_pattern:
      detail-type: [AWS API Call via CloudTrail]
      detail:
        userIdentity:
          type: [IAMUser]
    rule_state: ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS
    targets:
      - id: alert-forwarder
        arn: arn:aws:lambda:us-east-1:123456789012:function:audit-event-forwarder

- name: Route AWS Health's exposed-key events
  canarykeys.aws.eventbridge_rule:
    name: aws-credentials-exposed
    event_pattern:
      source: [aws.health]
      detail:
        eventTypeCode: [AWS_RISK_CREDENTIALS_EXPOSED]
    targets:
      - id: alert-forwarder
        arn: arn:aws:lambda:us-east-1:123456789012:function:audit-event-forwarder

- name: Remove the rule and its targets
  canarykeys.aws.eventbridge_rule:
    name: iam-user-api-calls
    state: absent
"""

RETURN = r"""
rule:
  description:
    - The rule after the task (in check mode, as it would be). Empty when O(state=absent).
  returned: always
  type: dict
  contains:
    name:
      description: Name of the rule.
      returned: when the rule exists
      type: str
      sample: iam-user-api-calls
    arn:
      description: ARN of the rule; null for a rule check mode would create.
      returned: when the rule exists
      type: str
      sample: arn:aws:events:us-east-1:123456789012:rule/iam-user-api-calls
    event_bus_name:
      description: Name of the event bus.
      returned: when the rule exists
      type: str
      sample: default
    event_pattern:
      description: The event pattern, parsed.
      returned: when the rule exists
      type: dict
      sample: {"detail-type": ["AWS API Call via CloudTrail"]}
    state:
      description: The state of the rule.
      returned: when the rule exists
      type: str
      sample: ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS
    description:
      description: Description of the rule.
      returned: when the rule exists
      type: str
      sample: IAM user API calls from CloudTrail, read-only calls included
    targets:
      description: The targets of the rule, sorted by id (C(id), C(arn), C(input), C(role_arn)).
      returned: when the rule exists
      type: list
      elements: dict
      sample: [{"id": "alert-forwarder", "arn": "arn:aws:lambda:us-east-1:123456789012:function:fwd",
                "input": null, "role_arn": null}]
changed_fields:
  description:
    - The rule fields that differed (as in the AWS API) and were or would be written, then
      C(Targets) when a target was or would be added, changed or removed.
  returned: always
  type: list
  elements: str
  sample: [State, Targets]
"""

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.canarykeys.aws.plugins.module_utils._detection import eventbridge_rule
from ansible_collections.canarykeys.aws.plugins.module_utils._detection.aws_errors import AWS_ERRORS


@AWSRetry.jittered_backoff()
def _list_targets(client, **bus):
    paginator = client.get_paginator("list_targets_by_rule")
    return paginator.paginate(**bus).build_full_result().get("Targets", [])


def read_rule(module, client, name, bus):
    """``(rule, targets)`` as AWS has them; ``(None, [])`` when there is no such rule."""
    try:
        rule = client.describe_rule(aws_retry=True, Name=name, **bus)
        targets = _list_targets(client, Rule=name, **bus)
    except is_boto3_error_code("ResourceNotFoundException"):
        return None, []
    except AWS_ERRORS as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to read EventBridge rule {name}")
    rule.pop("ResponseMetadata", None)
    return rule, sorted(targets, key=lambda target: target["Id"])


def _write(module, message, call, **request):
    try:
        response = call(aws_retry=True, **request)
    except AWS_ERRORS as e:
        module.fail_json_aws(e, msg=message)
    # PutTargets and RemoveTargets report failures per entry instead of raising.
    if response.get("FailedEntryCount"):
        module.fail_json(msg=f"{message}: {response.get('FailedEntries')}")


def ensure_present(module, client, name, bus, current, current_targets):
    request = eventbridge_rule.build_rule_request(name, module.params)
    changed_fields = eventbridge_rule.rule_differences(current, request)
    desired_targets = eventbridge_rule.build_targets(module.params["targets"])
    to_put, to_remove = eventbridge_rule.target_changes(current_targets, desired_targets, module.params["purge_targets"])
    if to_put or to_remove:
        changed_fields.append("Targets")
    if not changed_fields:
        return current, current_targets, changed_fields
    if not module.check_mode:
        if changed_fields != ["Targets"]:
            _write(module, f"Failed to put EventBridge rule {name}", client.put_rule, **request)
        if to_remove:
            _write(module, f"Failed to remove targets of rule {name}", client.remove_targets, Rule=name, Ids=to_remove, **bus)
        if to_put:
            _write(module, f"Failed to put targets of rule {name}", client.put_targets, Rule=name, Targets=to_put, **bus)
        return read_rule(module, client, name, bus) + (changed_fields,)
    after = eventbridge_rule.expected_rule(current, request)
    return after, eventbridge_rule.expected_targets(current_targets, to_put, to_remove), changed_fields


def ensure_absent(module, client, name, bus, current, current_targets):
    if not current:
        return None, [], []
    if not module.check_mode:
        # AWS refuses to delete a rule that still has targets.
        if current_targets:
            ids = [target["Id"] for target in current_targets]
            _write(module, f"Failed to remove targets of rule {name}", client.remove_targets, Rule=name, Ids=ids, **bus)
        try:
            client.delete_rule(aws_retry=True, Name=name, **bus)
        except is_boto3_error_code("ResourceNotFoundException"):
            pass
        except AWS_ERRORS as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to delete EventBridge rule {name}")
    changed_fields = [field for field in eventbridge_rule.RULE_FIELDS if field in current]
    return None, [], sorted(changed_fields) + (["Targets"] if current_targets else [])


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        event_bus_name=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        event_pattern=dict(type="json"),
        rule_state=dict(type="str", default="ENABLED", choices=list(eventbridge_rule.RULE_STATES)),
        description=dict(type="str"),
        targets=dict(
            type="list", elements="dict", default=[],
            options=dict(id=dict(type="str", required=True), arn=dict(type="str", required=True),
                         input=dict(type="str"), role_arn=dict(type="str")),
        ),
        purge_targets=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ["event_pattern"])],
        supports_check_mode=True,
    )
    name = module.params["name"]
    bus = {"EventBusName": module.params["event_bus_name"]} if module.params["event_bus_name"] else {}
    client = module.client("events", retry_decorator=AWSRetry.jittered_backoff())

    current, current_targets = read_rule(module, client, name, bus)
    ensure = ensure_present if module.params["state"] == "present" else ensure_absent
    after, after_targets, changed_fields = ensure(module, client, name, bus, current, current_targets)

    result = dict(
        changed=bool(changed_fields),
        rule=eventbridge_rule.to_result(after, after_targets),
        changed_fields=changed_fields,
    )
    if module._diff:
        result["diff"] = dict(before=eventbridge_rule.to_result(current, current_targets), after=result["rule"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
