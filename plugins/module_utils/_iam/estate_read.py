# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The estate listing as a module returns it: canary_key_info's, and estate_lease's listing under the lease."""

from __future__ import annotations

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing dependency

from ansible_collections.canarykeys.aws.plugins.module_utils._iam import estate


def read_estate(module, client, **options) -> dict:
    """``estate.list_estate`` with the module's retrying client; a failure fails the module in one line.

    Each canary, placement and orphan row says which canary account it is in: the roles merge the
    listings of several accounts.
    """
    try:
        result = estate.list_estate(client, aws_retry=True, **options)
    except estate.EstateError as e:
        module.fail_json(msg=str(e))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg="Failed to list the canary IAM users and their access keys")
    for rows in (result["canaries"], result["placements"], result["orphans"]):
        module.label(rows)
    return result
