# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The estate lease's IAM policy of one account: read, created, renewed and deleted (docs/overlap.md).

estate_lease takes and releases it; canary_key_info only looks whether it is held, so that a run can
tell later whether another run may have changed the estate while it read the hosts.
"""

from __future__ import annotations

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.canarykeys.aws.plugins.module_utils import _lease
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.calls import tag_list
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared.canary_mapping import tags_list_to_dict


class Lease:
    """The lease policy of one account, read and written through ``client``."""

    def __init__(self, module, client, arn):
        self.module = module
        self.client = client
        self.arn = arn

    def _fail(self, error, action):
        self.module.fail_json_aws(error, msg=f"Failed to {action} the estate lease {self.arn}")

    def read(self):
        try:
            policy = self.client.get_policy(aws_retry=True, PolicyArn=self.arn)["Policy"]
        except is_boto3_error_code("NoSuchEntity"):
            return None
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self._fail(e, "read")
        return _lease.holder_from_tags(tags_list_to_dict(policy.get("Tags")))

    def create(self, name, iam_path, holder) -> bool:
        """Take the lease; False when another run created it first."""
        try:
            self.client.create_policy(aws_retry=True, PolicyName=name, Path=iam_path, PolicyDocument=_lease.POLICY_DOCUMENT,
                                      Description=_lease.DESCRIPTION, Tags=tag_list(_lease.holder_tags(holder)))
        except is_boto3_error_code("EntityAlreadyExists"):
            return False
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self._fail(e, "take")
        return True

    def renew(self, holder):
        try:
            self.client.tag_policy(aws_retry=True, PolicyArn=self.arn, Tags=tag_list(_lease.holder_tags(holder)))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self._fail(e, "renew")

    def delete(self):
        try:
            self.client.delete_policy(aws_retry=True, PolicyArn=self.arn)
        except is_boto3_error_code("NoSuchEntity"):
            pass
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self._fail(e, "release")


def policy_arn(module, name, iam_path, arns=()) -> str:
    """The lease policy's ARN in the account of ``module`` (a CanaryAccountModule): its canary account's, with one.

    ``arns``: ARNs of that account the module already holds, which spare the sts:GetCallerIdentity.
    """
    account_id = module.account_id(arns)
    return f"arn:{module.partition()}:iam::{account_id}:policy{iam_path}{name}"
