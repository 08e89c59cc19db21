#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudtrail_event_selectors
version_added: 0.1.0
short_description: Set the advanced event selectors of a CloudTrail trail
description:
  - Sets which events an existing trail records, by its advanced event selectors (management events,
    data events of chosen resource types and principals, ...).
  - M(amazon.aws.cloudtrail) manages the trail itself but not its event selectors.
  - Advanced selectors replace any basic event selectors the trail has.
  - The order of the selectors, of their field selectors and of the values of an operator does not count
    as a difference.
author:
  - canarykeys maintainers (@canarykeys)
options:
  trail_name:
    description:
      - Name or ARN of the trail. The trail must exist, in the region the module is pointed at (its home
        region).
    required: true
    type: str
  advanced_event_selectors:
    description:
      - The advanced event selectors, as the CloudTrail API spells them (C(Name), C(FieldSelectors) with
        C(Field) and operators such as C(Equals) or C(StartsWith)).
    required: true
    type: list
    elements: dict
notes:
  - In check mode a trail that does not exist yet (because the same check run would create it) is
    reported as changed instead of failing.
extends_documentation_fragment:
  - canarykeys.aws.aws_check_diff
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Record management events, and S3 object events of the canary users only
  canarykeys.aws.cloudtrail_event_selectors:
    trail_name: org-audit-trail
    advanced_event_selectors:
      - Name: Management events
        FieldSelectors:
          - Field: eventCategory
            Equals: [Management]
      - Name: "Data events of the canary users: AWS::S3::Object"
        FieldSelectors:
          - Field: eventCategory
            Equals: [Data]
          - Field: resources.type
            Equals: ["AWS::S3::Object"]
          - Field: userIdentity.arn
            StartsWith: ["arn:aws:iam::123456789012:user/"]
"""

RETURN = r"""
advanced_event_selectors:
  description: The trail's advanced event selectors after the task (in check mode, as they would be).
  returned: always
  type: list
  elements: dict
  sample: [{"Name": "Management events", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}]
trail_arn:
  description: ARN of the trail; null when check mode found no trail.
  returned: always
  type: str
  sample: arn:aws:cloudtrail:us-east-1:123456789012:trail/org-audit-trail
"""

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.canarykeys.aws.plugins.module_utils._detection import event_selectors
from ansible_collections.canarykeys.aws.plugins.module_utils._detection.aws_errors import AWS_ERRORS


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            trail_name=dict(type="str", required=True),
            advanced_event_selectors=dict(type="list", elements="dict", required=True),
        ),
        supports_check_mode=True,
    )
    trail_name = module.params["trail_name"]
    desired = module.params["advanced_event_selectors"]
    problems = event_selectors.validate(desired)
    if problems:
        module.fail_json(msg=" ".join(problems))
    client = module.client("cloudtrail", retry_decorator=AWSRetry.jittered_backoff())

    try:
        current = client.get_event_selectors(aws_retry=True, TrailName=trail_name)
    except is_boto3_error_code("TrailNotFoundException") as e:
        if not module.check_mode:
            module.fail_json_aws(e, msg=f"Trail {trail_name} does not exist; create it before its event selectors.")
        current = {}
    except AWS_ERRORS as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to read the event selectors of trail {trail_name}")
    before = current.get("AdvancedEventSelectors") or []

    changed = event_selectors.differ(before, desired)
    after, trail_arn = before, current.get("TrailARN")
    if changed:
        after = desired
        if not module.check_mode:
            try:
                written = client.put_event_selectors(aws_retry=True, TrailName=trail_name, AdvancedEventSelectors=desired)
            except AWS_ERRORS as e:
                module.fail_json_aws(e, msg=f"Failed to put the event selectors of trail {trail_name}")
            after = written.get("AdvancedEventSelectors") or desired

    result = dict(changed=changed, advanced_event_selectors=after, trail_arn=trail_arn)
    if module._diff:
        result["diff"] = dict(before=dict(advanced_event_selectors=before), after=dict(advanced_event_selectors=after))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
