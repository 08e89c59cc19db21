#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudtrail_delete
version_added: 0.1.0
short_description: Delete a CloudTrail trail by its name
description:
  - Deletes one trail, named by its name, in the region the module is pointed at (the trail's home
    region). A missing trail is not an error.
  - M(amazon.aws.cloudtrail) with O(amazon.aws.cloudtrail#module:state=absent) deletes a trail by its
    ARN, which some AWS-compatible endpoints (moto, the collection's local AWS) silently ignore. Deleting
    by name works on AWS and on those alike.
author:
  - canarykeys maintainers (@canarykeys)
options:
  name:
    description:
      - Name of the trail.
    required: true
    type: str
extends_documentation_fragment:
  - canarykeys.aws.aws_check_diff
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Remove the audit trail (its bucket and log group are separate resources)
  canarykeys.aws.cloudtrail_delete:
    name: org-audit-trail
"""

RETURN = r"""
trail_arn:
  description: ARN of the trail that was (or in check mode would be) deleted; null when there was none.
  returned: always
  type: str
  sample: arn:aws:cloudtrail:us-east-1:123456789012:trail/org-audit-trail
"""

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.canarykeys.aws.plugins.module_utils._detection.aws_errors import AWS_ERRORS


def main():
    module = AnsibleAWSModule(argument_spec=dict(name=dict(type="str", required=True)), supports_check_mode=True)
    name = module.params["name"]
    client = module.client("cloudtrail", retry_decorator=AWSRetry.jittered_backoff())

    try:
        trail = client.get_trail(aws_retry=True, Name=name)["Trail"]
    except is_boto3_error_code("TrailNotFoundException"):
        trail = None
    except AWS_ERRORS as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to read trail {name}")

    if trail and not module.check_mode:
        try:
            client.delete_trail(aws_retry=True, Name=name)
        except is_boto3_error_code("TrailNotFoundException"):
            pass
        except AWS_ERRORS as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to delete trail {name}")

    result = dict(changed=bool(trail), trail_arn=trail["TrailARN"] if trail else None)
    if module._diff:
        result["diff"] = dict(before=dict(trail=name if trail else None), after=dict(trail=None))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
