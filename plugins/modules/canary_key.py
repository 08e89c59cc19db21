#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: canary_key
version_added: 0.1.0
short_description: Ensure or retire the IAM user and access key of one canary placement
description:
  - A I(placement) is one profile (O(profile)) in one AWS shared credentials file (O(path)) on one
    host (O(host)). Each placement has its own IAM user with no permissions and at most one active
    access key, the key planted in that profile.
  - With O(state=present) the module finds the placement's IAM user (creating it if needed, with
    the mapping tags and an inline policy that denies every action) and compares its keys with
    O(planted_key_id), the key the host's profile holds. When that key is the user's active key,
    nothing is minted. Otherwise a new key is minted and returned, once, in RV(secret_access_key).
  - Keys of the user that the host does not hold are orphans (a run that died between minting and
    planting leaves one) and are deleted.
  - If the profile holds a key that is not this placement's canary key, for example a real key,
    the module refuses and creates nothing.
  - With O(state=absent) the module deletes O(access_key_id) (or, without it, every key of the
    user) and then the user with its inline policies once it holds no key.
  - User names look like ordinary service users. The default template V({host}-{purpose}) gives
    names such as C(web03-backup), made of the inventory host's short name and a purpose drawn from the
    placement. Two placements never share a user; see the collection's C(docs/canary_key.md).
  - Every IAM call is retried with jittered backoff when AWS throttles.
author:
  - canarykeys maintainers (@canarykeys)
options:
  host:
    description:
      - The inventory host name of the placement (normally C(inventory_hostname)).
      - Its short name (first DNS label, or an IP address with dashes) becomes part of the user name.
    required: true
    type: str
  path:
    description:
      - The absolute path of the credentials file on the host, for example C(/home/deploy/.aws/credentials).
    required: true
    type: str
  profile:
    description:
      - The profile of the credentials file that holds the key.
      - This is the placement's profile, not an AWS profile of the controller; see O(aws_profile).
    required: true
    type: str
    aliases: []
  aws_profile:
    description:
      - The AWS profile the controller uses to call IAM.
      - It stands for the O(profile) option of other amazon.aws modules, which in this module names the
        placement's profile. Set C(aws_profile), not C(profile), in C(module_defaults) for the
        C(group/canarykeys.aws.aws) group; the other modules of the group take it as an alias.
      - The E(AWS_PROFILE) and E(AWS_DEFAULT_PROFILE) environment variables may also be used.
      - Mutually exclusive with O(access_key), O(secret_key) and O(session_token).
    type: str
  reminder:
    description:
      - Free text recorded with the key and quoted by every alert, for example who to call.
      - Sanitised to the characters IAM allows in tag values and cut to 256 characters.
      - V("") leaves the recorded reminder as it is.
    type: str
    default: ""
  planted_by:
    description:
      - Who or what planted the key (a play name), recorded in a tag.
      - V("") leaves the recorded value as it is.
    type: str
    default: ""
  planted_key_id:
    description:
      - The access key id the host's profile holds now, as read from the host; empty or null when the
        profile holds none.
      - Used with O(state=present) only.
    type: str
  user_name_template:
    description:
      - How the IAM user name is built. Placeholders C({host}) (short host name), C({purpose}) (drawn
        from the placement), C({profile}) and C({user}) (the OS user owning O(path), that is C(root) for
        C(/root/...), C(U) for C(/home/U/...) or C(/Users/U/...), else empty).
      - The result is sanitised to the characters IAM allows in user names and cut to 64 characters,
        the host part first.
      - A template containing C(canary), C(honey), C(decoy), C(trap), C(token), C(tripwire) or C(@@) is
        refused, since every denied AWS call shows the user name to the caller.
    type: str
    default: "{host}-{purpose}"
  iam_path:
    description:
      - The IAM path of a user the module creates. Starts and ends with C(/); the same words as in
        O(user_name_template) are refused.
      - An existing user keeps its path.
    type: str
    default: /
  state:
    description:
      - V(present) ensures the user and one active key held by the host; V(absent) retires them.
    type: str
    default: present
    choices: [present, absent]
  access_key_id:
    description:
      - With O(state=absent), delete only this key, and only if it belongs to this placement's user.
        The seed role uses it to delete a freshly minted key whose write to the host failed.
      - Ignored with O(state=present).
    type: str
notes:
  - Set C(no_log) to V(true) on every task with O(state=present). When a key is minted, the result holds
    its secret (RV(secret_access_key)), which must reach the host and nothing else.
  - An unchanged placement costs two IAM reads (C(GetUser), C(ListAccessKeys)) and no write.
  - Missing or invalid controller credentials fail with one message saying so.
  - The IAM permissions the module needs are listed in the collection's C(docs/iam_permissions.md).
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: In check mode nothing is written to IAM; RV(minted) says whether a key would be minted, and no secret is returned.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: aws
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Ensure the canary of the deploy user's prod profile on this host
  canarykeys.aws.canary_key:
    host: "{{ inventory_hostname }}"
    path: /home/deploy/.aws/credentials
    profile: prod
    planted_key_id: "{{ read_result.access_key_id | default('', true) }}"
    reminder: "web tier, ask the platform team"
    planted_by: "{{ ansible_play_name }}"
  delegate_to: localhost
  no_log: true
  register: canary

- name: Delete a freshly minted key that could not be written to the host
  canarykeys.aws.canary_key:
    host: "{{ inventory_hostname }}"
    path: /home/deploy/.aws/credentials
    profile: prod
    access_key_id: "{{ canary.access_key_id }}"
    state: absent
  delegate_to: localhost

- name: Retire a placement (every key, then the user)
  canarykeys.aws.canary_key:
    host: web03.example.com
    path: /root/.aws/credentials
    profile: backup
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
changed:
  description: Whether IAM was (or, in check mode, would be) written.
  returned: always
  type: bool
  sample: true
minted:
  description: Whether a new access key was minted (in check mode, would be).
  returned: always
  type: bool
  sample: true
user_name:
  description: The placement's IAM user name (in check mode, the name a new user would get). Empty when O(state=absent) found no user.
  returned: always
  type: str
  sample: web03-backup
user_arn:
  description: The ARN of the IAM user; empty when the user does not exist (check mode, or O(state=absent) found none).
  returned: always
  type: str
  sample: arn:aws:iam::123456789012:user/web03-backup
user_created:
  description: Whether the user was (or would be) created by this call.
  returned: when O(state=present)
  type: bool
  sample: false
user_deleted:
  description: Whether the user was (or would be) deleted by this call.
  returned: when O(state=absent)
  type: bool
  sample: false
iam_path:
  description: The IAM path of the user.
  returned: always
  type: str
  sample: /
placement_id:
  description: The placement's identifier, recorded in the C(canarykeys:placement) tag of its user.
  returned: always
  type: str
  sample: 3f1c2a9b8d7e6f5a4b3c
access_key_id:
  description:
    - With O(state=present), the placement's active key after the call (the planted key, or the new one).
      Null in check mode when a key would be minted.
    - With O(state=absent), the key the user still holds, or null.
  returned: always
  type: str
  sample: AKIAIOSFODNN7EXAMPLE
secret_access_key:
  description:
    - The secret of the key just minted. AWS shows a secret only once, at creation.
    - Run the task with C(no_log) set to V(true) and pass the value only to the task that writes the host's file.
  returned: when a key was minted (never in check mode)
  type: str
  sample: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
deleted_access_key_ids:
  description: The keys deleted (in check mode, that would be deleted).
  returned: always
  type: list
  elements: str
  sample: [AKIAI44QH8DHBEXAMPLE]
generation:
  description: How many keys the placement has been given, this one included (1 for a new user).
  returned: always
  type: int
  sample: 1
mapping:
  description: The placement's mapping record, read from the user's tags (null when no user exists).
  returned: always
  type: dict
  contains:
    placement_id:
      description: The placement's identifier.
      returned: success
      type: str
      sample: 3f1c2a9b8d7e6f5a4b3c
    host:
      description: The inventory host name.
      returned: success
      type: str
      sample: web03.example.com
    path:
      description: The credentials file.
      returned: success
      type: str
      sample: /home/deploy/.aws/credentials
    profile:
      description: The profile.
      returned: success
      type: str
      sample: prod
    reminder:
      description: The reminder text.
      returned: success
      type: str
      sample: web tier, ask the platform team
    planted_at:
      description: When the current key was minted (ISO 8601, UTC).
      returned: success
      type: str
      sample: "2025-01-31T12:00:00Z"
    planted_by:
      description: Who planted it.
      returned: success
      type: str
      sample: Seed canary keys
    generation:
      description: The generation of the current key.
      returned: success
      type: int
      sample: 1
    last_used_reported:
      description: The newest use the last-used detector has alerted on, or empty.
      returned: success
      type: str
      sample: ""
"""

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing dependency

from ansible.module_utils.basic import env_fallback

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.canarykeys.aws.plugins.module_utils import canary_identity


def iam_client(module):
    """The retrying IAM client, authenticated with O(aws_profile).

    amazon.aws reads the controller's AWS profile from ``params["profile"]``, which in this module is the
    placement's profile: it is swapped for ``aws_profile`` for as long as the connection is built.
    """
    placement_profile = module.params["profile"]
    module.params["profile"] = module.params["aws_profile"]
    try:
        return module.client("iam", retry_decorator=AWSRetry.jittered_backoff())
    finally:
        module.params["profile"] = placement_profile


NO_CREDENTIALS = (
    "The controller has no usable AWS credentials: set aws_profile (or AWS_PROFILE), or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY"
)


def main():
    argument_spec = dict(
        host=dict(type="str", required=True),
        path=dict(type="str", required=True),
        profile=dict(type="str", required=True),
        aws_profile=dict(type="str", fallback=(env_fallback, ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"])),
        reminder=dict(type="str", default=""),
        planted_by=dict(type="str", default=""),
        planted_key_id=dict(type="str", no_log=False),
        user_name_template=dict(type="str", default=canary_identity.DEFAULT_TEMPLATE),
        iam_path=dict(type="str", default="/"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        access_key_id=dict(type="str", no_log=False),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    placement = canary_identity.Placement(
        host=params["host"], path=params["path"], profile=params["profile"],
        reminder=params["reminder"] or "", planted_by=params["planted_by"] or "",
    )
    try:
        # Naming is checked before the first AWS call, so a refused template or host creates nothing.
        canary_identity.check_iam_path(params["iam_path"])
        canary_identity.candidate_names(placement.host, placement.path, placement.profile, params["user_name_template"])
        client = iam_client(module)
        options = dict(template=params["user_name_template"], iam_path=params["iam_path"], check_mode=module.check_mode)
        if params["state"] == "present":
            result = canary_identity.ensure_present(client, placement, params["planted_key_id"] or "", **options)
        else:
            result = canary_identity.ensure_absent(client, placement, params["access_key_id"] or "", **options)
    except canary_identity.IdentityError as e:
        module.fail_json(msg=str(e))
    except canary_identity.IdentityAWSError as e:
        if isinstance(e.exception, botocore.exceptions.NoCredentialsError):
            module.fail_json_aws(e.exception, msg=NO_CREDENTIALS)
        module.fail_json_aws(e.exception, msg=e.message)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
