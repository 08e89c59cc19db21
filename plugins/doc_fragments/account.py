# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``account`` option of the IAM modules: which canary account they reach (module_utils/_iam/account.py)."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
options:
  account:
    description:
      - The canary account the module works in, one entry of the roles' C(canary_accounts) list.
      - The module reaches it from its own connection (O(profile), O(access_key), O(region), O(endpoint_url) or the
        standard AWS environment), either by assuming O(account.role_arn) (one C(sts:AssumeRole) per module run) or
        through the AWS profile O(account.profile). Every AWS call of the module is then made in that account.
      - The temporary credentials of the assumed role stay inside the module run; they are never returned or logged.
      - Omitted, empty, or with neither O(account.role_arn) nor O(account.profile), the module works in the account of
        its own connection.
      - A failing C(sts:AssumeRole) fails the task in one line that names the role and AWS's error code, before any
        other call.
    type: dict
    version_added: 0.1.0
    suboptions:
      name:
        description:
          - The entry's name, returned as C(account) with the results so that rows of several accounts can be told
            apart.
        type: str
        default: ""
      role_arn:
        description:
          - ARN of the IAM role to assume in the canary account, for example
            C(arn:aws:iam::222222222222:role/canarykeys).
          - Mutually exclusive with O(account.profile).
        type: str
      external_id:
        description:
          - The C(sts:ExternalId) the role's trust policy requires, if any. With O(account.role_arn) only.
        type: str
      session_name:
        description:
          - The role session name, which CloudTrail records in the canary account. 2 to 64 characters.
        type: str
        default: canarykeys
      profile:
        description:
          - An AWS profile (config or credentials file) that reaches the canary account, used instead of the module's
            own connection. Its region is used when O(region) is not set.
          - Mutually exclusive with O(account.role_arn).
        type: str
notes:
  - With O(account.role_arn), the module's own identity needs C(sts:AssumeRole) on that role, and the IAM permissions the
    module needs are the role's, in the canary account (the collection's C(docs/iam_permissions.md), section "A canary
    account's role").
"""
