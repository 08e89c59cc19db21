#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: credentials_profiles
version_added: 0.1.0
short_description: Read, write or remove several profiles of AWS shared credentials files on one host in one run
description:
  - Does what M(canarykeys.aws.credentials_profile) does, for a list of profiles of one host, in one module run;
    one connection and one Python process per host instead of one per profile, which is most of what reading
    or planting a fleet costs.
  - Each entry of O(profiles) takes the options of M(canarykeys.aws.credentials_profile) and is handled as that
    module handles them (the same refusals, atomic writes, kept bytes, masked diffs), on its own and in order.
    An entry that fails has C(failed=true) and C(msg) in its outcome, changes none of its files, and does not
    stop the entries after it, as a loop with C(ignore_errors) would behave; the task itself fails only on
    invalid options.
  - Runs on the managed host with a bare Python; it needs neither boto3 nor botocore, and makes no AWS call.
  - Profiles of several users are handled in one run under C(become) (as root); the files keep their owners, and a
    new file or C(.aws) directory is owned by the entry's O(profiles[].owner).
author:
  - canarykeys maintainers (@canarykeys)
options:
  profiles:
    description:
      - The profiles to handle, in order. The options of each are those of M(canarykeys.aws.credentials_profile).
    type: list
    elements: dict
    required: true
    suboptions:
      owner:
        description:
          - The user who owns the credentials file (M(canarykeys.aws.credentials_profile)'s O(canarykeys.aws.credentials_profile#module:owner)).
        type: str
        required: true
      path:
        description:
          - The shared credentials file; default C(~/.aws/credentials) of O(profiles[].owner), a leading V(~) meaning that home.
        type: str
      profile:
        description:
          - The profile name.
        type: str
        required: true
      state:
        description:
          - V(query), V(present) or V(absent), as M(canarykeys.aws.credentials_profile)'s O(canarykeys.aws.credentials_profile#module:state).
        type: str
        choices: [present, absent, query]
        default: present
      access_key_id:
        description:
          - The access key id to write (V(present)) or to remove (V(absent)).
        type: str
      secret_access_key:
        description:
          - The secret access key to write with O(profiles[].access_key_id). Never returned, and masked in diffs.
        type: str
      replaceable_key_ids:
        description:
          - Key ids that V(present) may overwrite; a profile holding any other key is refused.
        type: list
        elements: str
        default: []
      region:
        description:
          - Also ensure (or, on V(absent), remove) the profile's region section in the AWS config file.
        type: str
      output:
        description:
          - The C(output) a new config section gets next to O(profiles[].region); V("") writes C(region) only.
        type: str
        default: json
      config_path:
        description:
          - The AWS config file used with O(profiles[].region); default C(~/.aws/config) of O(profiles[].owner).
        type: str
      backup:
        description:
          - Keep a copy of a file before changing it, as M(ansible.builtin.copy) names its backups.
        type: bool
        default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Computes every change and diff and writes nothing.
  diff_mode:
    support: full
    details: One diff per changed file, every secret value of every profile masked as C(********).
  platform:
    platforms: posix
notes:
  - Each O(profiles[].secret_access_key) is C(no_log), so Ansible masks it in the task result and the logs, and the
    module never returns a secret. Pass secrets as module arguments only.
seealso:
  - module: canarykeys.aws.credentials_profile
"""

EXAMPLES = r"""
- name: Read which key each profile of this host holds, in one run
  canarykeys.aws.credentials_profiles:
    profiles:
      - owner: deploy
        profile: prod
        state: query
      - owner: root
        profile: backup
        state: query
  become: true
  register: planted

- name: Plant two keys; each profile may replace only its own previous key
  canarykeys.aws.credentials_profiles:
    profiles:
      - owner: deploy
        profile: prod
        access_key_id: "{{ minted[0].access_key_id }}"
        secret_access_key: "{{ minted[0].secret_access_key }}"
        replaceable_key_ids: "{{ [planted.outcomes[0].access_key_id] if planted.outcomes[0].access_key_id else [] }}"
        region: us-east-1
      - owner: root
        profile: backup
        access_key_id: "{{ minted[1].access_key_id }}"
        secret_access_key: "{{ minted[1].secret_access_key }}"
  become: true
  register: written

- name: Stop on the profiles that could not be written
  ansible.builtin.fail:
    msg: "{{ written.outcomes | selectattr('failed') | map(attribute='msg') | list }}"
  when: written.summary.failed > 0
"""

RETURN = r"""
outcomes:
  description:
    - One entry per entry of O(profiles), in the same order, with what M(canarykeys.aws.credentials_profile)
      returns for it (never a secret), and C(failed).
  returned: always
  type: list
  elements: dict
  contains:
    failed:
      description: Whether this profile could not be handled; C(msg) says why, and none of its files changed.
      type: bool
      sample: false
    changed:
      description: Whether this profile's files changed (in check mode, would change).
      type: bool
      sample: true
    access_key_id:
      description: The access key id the profile held before the task, or V(null).
      type: str
      sample: AKIAIOSFODNN7EXAMPLE
    planted_access_key_id:
      description: The access key id the profile holds after the task (in check mode, would hold), or V(null).
      type: str
      sample: AKIAI44QH8DHBEXAMPLE
    profiles:
      description: With V(query), the names of the profiles in the file, in file order.
      type: list
      elements: str
      sample: [default, prod]
    exists:
      description: With V(query), whether the credentials file exists.
      type: bool
      sample: true
    path:
      description: The credentials file, as given or defaulted (before any symlink is followed).
      type: str
      sample: /home/deploy/.aws/credentials
    config_path:
      description: The AWS config file, when O(profiles[].region) is set and the state is not V(query).
      type: str
      sample: /home/deploy/.aws/config
    backup_file:
      description: The backup of the credentials file made before changing it.
      type: str
      sample: /home/deploy/.aws/credentials.4242.2025-01-31@09:30:00~
    config_backup_file:
      description: The backup of the config file made before changing it.
      type: str
      sample: /home/deploy/.aws/config.4242.2025-01-31@09:30:00~
    msg:
      description: What was done, or why the profile (or its config section) was left alone or refused.
      type: str
      sample: profile prod added to /home/deploy/.aws/credentials
summary:
  description: How many profiles there were, changed, and failed.
  returned: always
  type: dict
  sample: {"profiles": 2, "changed": 1, "failed": 0}
"""

import copy

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.profile_run import (
    PROFILE_OPTIONS,
    PROFILE_REQUIRED_IF,
    ProfileError,
    run_profile,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            profiles=dict(type="list", elements="dict", required=True, options=copy.deepcopy(PROFILE_OPTIONS),
                          required_if=PROFILE_REQUIRED_IF),
        ),
        supports_check_mode=True,
    )
    outcomes, diffs = [], []
    for params in module.params["profiles"]:
        try:
            outcome = run_profile(params, module.check_mode, module._diff, module.warn)
            outcome["failed"] = False
        except ProfileError as exc:
            outcome = dict(exc.result, failed=True, changed=False, msg=str(exc))
        diffs.extend(outcome.pop("diff", None) or [])
        outcomes.append(outcome)
    result = {
        "changed": any(o["changed"] for o in outcomes),
        "outcomes": outcomes,
        "summary": {
            "profiles": len(outcomes),
            "changed": sum(1 for o in outcomes if o["changed"]),
            "failed": sum(1 for o in outcomes if o["failed"]),
        },
    }
    if diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
