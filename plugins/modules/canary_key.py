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
  - A I(placement) is one profile (O(profile_name)) in one AWS shared credentials file (O(path)) on one
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
  - With O(rotation) it rotates the key in two steps around the write to the host, so that the host always holds a
    working key; see O(rotation) and the collection's C(docs/lifecycle.md).
  - User names look like ordinary service users. The default template V({host}-{purpose}) gives
    names such as C(web03-backup), made of the inventory host's short name and a purpose drawn from the
    placement. Two placements never share a user; see the collection's C(docs/canary_key.md).
  - Every IAM call is retried with jittered backoff when AWS throttles.
author:
  - canarykeys maintainers (@canarykeys)
options:
  planted_key_id:
    description:
      - The access key id the host's profile holds now, as read from the host; empty or null when the
        profile holds none.
      - Used with O(state=present) only.
    type: str
  state:
    description:
      - V(present) ensures the user and one active key held by the host; V(absent) retires them.
    type: str
    default: present
    choices: [present, absent]
  user_name:
    description:
      - With O(state=absent), the IAM user to retire, as M(canarykeys.aws.canary_key_info) lists it, instead of the user
        the placement's names lead to. The mapping tags hold sanitised values, which do not always give back the names.
      - The user must carry the tag C(canarykeys:managed=true); any other user is refused.
      - Ignored with O(state=present).
    type: str
  rotation:
    description:
      - With O(state=present), one of the two steps of a key rotation instead of the seed's ensure. Neither step ever
        creates a user or refuses a profile.
      - V(begin) mints a second key for the placement's user and keeps the planted one (O(planted_key_id)), when the
        planted key is the user's active key and is at least O(max_age_days) days old. Other keys of the user (which no
        file holds) are deleted first, since IAM allows two per user. RV(rotation) says V(started), V(not_due), or
        V(not_planted) when the profile does not hold the placement's active key (nothing happens then).
      - V(finish) runs after the new key was written and the profile read back. O(planted_key_id) is the key the profile
        holds now and O(rotated_key_id) the key it held before (RV(rotated_key_id) of V(begin)). The key the profile holds
        survives when it is an active key of the user, otherwise the old key does; the other key is deleted. When the new
        key survives, the C(generation) tag increments and C(planted-at) records the new key's creation (RV(rotation) is
        V(completed)); otherwise the mapping is unchanged (V(rolled_back)).
    type: str
    choices: [begin, finish]
  max_age_days:
    description:
      - With O(rotation=begin), rotate only a planted key at least this many days old (fractions count). V(0) rotates any key.
    type: int
    default: 0
  rotated_key_id:
    description:
      - With O(rotation=finish), the key the profile held before the rotation began. Required then.
    type: str
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
    support: full
    details: In check mode nothing is written to IAM; RV(minted) says whether a key would be minted, and no secret is returned.
  diff_mode:
    support: none
  platform:
    platforms: aws
extends_documentation_fragment:
  - canarykeys.aws.placement
  - canarykeys.aws.naming
  - canarykeys.aws.account
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Ensure the canary of the deploy user's prod profile on this host
  canarykeys.aws.canary_key:
    host: "{{ inventory_hostname }}"
    path: /home/deploy/.aws/credentials
    profile_name: prod
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
    profile_name: prod
    access_key_id: "{{ canary.access_key_id }}"
    state: absent
  delegate_to: localhost

- name: Begin a rotation of a key at least 90 days old (mints a second key, keeps the planted one)
  canarykeys.aws.canary_key:
    host: "{{ inventory_hostname }}"
    path: /home/deploy/.aws/credentials
    profile_name: prod
    planted_key_id: "{{ read_result.access_key_id | default('', true) }}"
    rotation: begin
    max_age_days: 90
  delegate_to: localhost
  no_log: true
  register: rotation

# ... write rotation.access_key_id into the profile, then read the profile back into confirmed ...

- name: Finish the rotation (delete whichever key the profile does not hold)
  canarykeys.aws.canary_key:
    host: "{{ inventory_hostname }}"
    path: /home/deploy/.aws/credentials
    profile_name: prod
    planted_key_id: "{{ confirmed.access_key_id | default('', true) }}"
    rotated_key_id: "{{ rotation.rotated_key_id }}"
    rotation: finish
  delegate_to: localhost

- name: Retire a placement (every key, then the user)
  canarykeys.aws.canary_key:
    host: web03.example.com
    path: /root/.aws/credentials
    profile_name: backup
    state: absent
  delegate_to: localhost

- name: Retire every canary that canary_key_info listed for a host, by user name
  canarykeys.aws.canary_key:
    host: "{{ item.mapping.host }}"
    path: "{{ item.mapping.path }}"
    profile_name: "{{ item.mapping.profile }}"
    user_name: "{{ item.user_name }}"
    state: absent
  loop: "{{ estate.canaries }}"
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
account:
  description:
    - The canary account of the placement's user, by its entry's name (O(account.name)); empty without O(account).
  type: str
  returned: always
  version_added: 0.1.0
  sample: eu-canaries
account_id:
  description:
    - The id of the account the user is in (from RV(user_arn), the assumed role, or else one C(sts:GetCallerIdentity)).
  returned: always
  type: str
  sample: "222222222222"
  version_added: 0.1.0
user_arn:
  description: The ARN of the IAM user; empty when the user does not exist (check mode, or O(state=absent) found none).
  returned: always
  type: str
  sample: arn:aws:iam::123456789012:user/web03-backup
deny_all:
  description:
    - Whether the user carries (or would carry, in check mode) the deny-all inline policy after this call, that is
      O(deny_all). A change of it alone makes RV(changed) true.
  returned: when O(state=present), but not with O(rotation=finish)
  type: bool
  sample: false
  version_added: 0.1.0
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
    - With O(rotation=begin), the new key (null in check mode), or the planted key when it is not due.
    - With O(rotation=finish), the key that survived.
    - With O(state=absent), the key the user still holds, or null.
  returned: always
  type: str
  sample: AKIAIOSFODNN7EXAMPLE
dead_access_key_id:
  description:
    - With O(state=present), the key O(planted_key_id) named when it was dead (deleted from IAM or inactive) and a key this
      placement was handed (its C(canarykeys:key-history) tag). A new key was minted (in check mode, would be) to replace it.
    - Null otherwise.
  returned: when O(state=present) and no O(rotation)
  type: str
  sample: AKIAI44QH8DHBEXAMPLE
  version_added: 0.1.0
secret_access_key:
  description:
    - The secret of the key just minted. AWS shows a secret only once, at creation.
    - Run the task with C(no_log) set to V(true) and pass the value only to the task that writes the host's file.
  returned: when a key was minted (never in check mode)
  type: str
  sample: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
rotation:
  description:
    - With O(rotation=begin), V(started) (a second key was minted, or in check mode would be), V(not_due) or V(not_planted).
    - With O(rotation=finish), V(completed) (the new key survived) or V(rolled_back) (the old key survived).
  returned: when O(rotation) is set
  type: str
  sample: started
rotated_key_id:
  description:
    - The key the rotation replaces, to pass to O(rotation=finish) as O(rotated_key_id). Null when nothing was minted.
  returned: when O(rotation) is set
  type: str
  sample: AKIAIOSFODNN7EXAMPLE
key_age_days:
  description: The age in days of the planted key; null when the profile does not hold the placement's key.
  returned: when O(rotation=begin)
  type: float
  sample: 91.25
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

from ansible_collections.canarykeys.aws.plugins.module_utils._iam.account import CanaryAccountModule
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.calls import iam_client
from ansible_collections.canarykeys.aws.plugins.module_utils._iam import apply
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.errors import NO_CREDENTIALS, IAMCallError, PlacementError
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.options import NAMING_SPEC, PLACEMENT_SPEC, validate
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.plans import Placement


def main():
    argument_spec = dict(
        PLACEMENT_SPEC,
        **NAMING_SPEC,
        state=dict(type="str", default="present", choices=["present", "absent"]),
        access_key_id=dict(type="str", no_log=False),
        rotation=dict(type="str", choices=["begin", "finish"]),
        max_age_days=dict(type="int", default=0),
        rotated_key_id=dict(type="str", no_log=False),
        user_name=dict(type="str"),
    )
    module = CanaryAccountModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("rotation", "finish", ["rotated_key_id"])],
    )
    params = module.params
    placement = Placement(
        host=params["host"], path=params["path"], profile=params["profile_name"],
        reminder=params["reminder"] or "", planted_by=params["planted_by"] or "",
    )
    try:
        # A user retired by name is not named from the placement: only its IAM path is checked.
        named = [] if params["state"] == "absent" and params["user_name"] else [params]
        validate(named, params["user_name_template"], params["iam_path"])
        if params["rotation"] and params["state"] != "present":
            raise PlacementError("rotation works with state=present only")
        client = iam_client(module)
        options = dict(template=params["user_name_template"], iam_path=params["iam_path"], check_mode=module.check_mode)
        guard = dict(deny_all=params["deny_all"])
        planted_key_id = params["planted_key_id"] or ""
        if params["rotation"] == "begin":
            result = apply.begin_rotation(client, placement, planted_key_id, params["max_age_days"], **options, **guard)
        elif params["rotation"] == "finish":
            result = apply.finish_rotation(client, placement, planted_key_id, params["rotated_key_id"], **options)
        elif params["state"] == "present":
            result = apply.ensure_present(client, placement, planted_key_id, **options, **guard)
        else:
            result = apply.ensure_absent(client, placement, params["access_key_id"] or "", user_name=params["user_name"] or "", **options)
    except PlacementError as e:
        module.fail_json(msg=str(e))
    except IAMCallError as e:
        if isinstance(e.exception, botocore.exceptions.NoCredentialsError):
            module.fail_json_aws(e.exception, msg=NO_CREDENTIALS)
        module.fail_json_aws(e.exception, msg=e.message)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.label([result])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
