#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: credentials_profile
version_added: 0.1.0
short_description: Ensure or remove one profile in an AWS shared credentials file
description:
  - Reads, writes or removes one profile of a user's AWS shared credentials file (C(~/.aws/credentials)),
    leaving every other byte of the file as it was.
  - Runs on the managed host with a bare Python; it needs neither boto3 nor botocore, and makes no AWS call.
  - O(state=query) returns the access key id a profile holds and never reads a secret into its result.
  - O(state=present) writes a key into the profile, but refuses to overwrite a profile that holds
    another key unless that key is listed in O(replaceable_key_ids).
  - O(state=absent) removes the profile only when it holds the given key.
  - Other profiles, comments, blank lines, ordering, spacing around V(=) and CRLF line endings are kept. A new
    profile is appended as C(aws configure) writes it (C(key = value), no blank line before it, a final newline),
    or after one blank line in a file whose sections are separated by blank lines, as people write them; adding
    and then removing a profile gives back the original file byte for byte (a missing final newline is added, as
    C(aws configure) does). New lines take the line ending most of the file's lines have.
author:
  - canarykeys maintainers (@canarykeys)
options:
  owner:
    description:
      - The user who owns the credentials file. The default O(path) is in this user's home directory,
        and a new file and a new C(.aws) directory are owned by this user and their primary group.
    type: str
    required: true
  path:
    description:
      - The shared credentials file. Defaults to C(~/.aws/credentials) in the home directory of O(owner).
      - A leading V(~) means the home of O(owner), not that of the user the module runs as (which is
        C(root) under C(become)).
      - A symlink is followed, and the file it leads to is written, only when that file lies inside the
        home directory of O(owner).
    type: str
  profile:
    description:
      - The profile name, for example V(default) or V(prod). The file's section header is C([NAME]).
      - Letters, digits and the characters C(_.@+=,:/-) only. V(DEFAULT) is refused because Python's INI
        parser, and so botocore, treats that section as defaults for every profile.
    type: str
    required: true
  state:
    description:
      - V(query) changes nothing and returns RV(access_key_id), RV(profiles) and RV(exists). A missing
        file or profile is not an error.
      - V(present) ensures the profile holds O(access_key_id) and O(secret_access_key).
      - V(absent) removes the whole profile section when it holds O(access_key_id). A profile holding another
        key, or no key, is left alone without failing, and RV(msg) says so.
    type: str
    choices: [present, absent, query]
    default: present
  access_key_id:
    description:
      - The access key id to write (O(state=present)) or to remove (O(state=absent)).
      - Required unless O(state=query).
    type: str
  secret_access_key:
    description:
      - The secret access key to write with O(access_key_id).
      - Required when O(state=present). Never returned, and masked in diffs.
    type: str
  replaceable_key_ids:
    description:
      - Key ids that O(state=present) may overwrite, typically the previous canary key of this placement.
      - A profile holding any other key is refused and the file is left untouched.
    type: list
    elements: str
    default: []
  region:
    description:
      - With O(state=present), also ensures the profile's section in the AWS config file (O(config_path))
        sets C(region) to this value, in C([default]) for the V(default) profile and C([profile NAME]) otherwise.
        An existing section that holds any other setting is left alone and RV(msg) says so.
      - With O(state=absent), removes that section when it holds nothing but C(region = REGION) (and
        C(output = OUTPUT)), and only when the credentials profile was removed or is not there.
      - Without it the config file is neither read nor written.
    type: str
  output:
    description:
      - The C(output) a new config section gets next to O(region), as C(aws configure) writes both.
      - V("") writes C(region) only. An existing section keeps its own output.
    type: str
    default: json
    version_added: 0.1.0
  config_path:
    description:
      - The AWS config file used with O(region). Defaults to C(~/.aws/config) in the home directory of O(owner).
      - A leading V(~) means the home of O(owner).
    type: str
  backup:
    description:
      - Keep a copy of a file before changing it, named like the backups of M(ansible.builtin.copy)
        (C(FILE.PID.YYYY-MM-DD@HH:MM:SS~)), with the file's mode and owner.
      - The copy holds the secrets the file held.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Computes the change and the diff and writes nothing.
  diff_mode:
    support: full
    details: Shows the file before and after, with every secret value of every profile masked as C(********).
  platform:
    platforms: posix
notes:
  - O(secret_access_key) is C(no_log), so Ansible masks it in the task result and the logs. The module also
    masks the secret values of every profile (C(aws_secret_access_key), C(aws_session_token),
    C(aws_security_token)) in its diff, and never returns a secret. A secret passed through C(environment)
    or on a command line is still visible to C(-vvvv); pass it as a module argument only, and mark tasks
    that register a secret with C(no_log).
  - The file is validated with the parser botocore uses (Python's C(configparser.RawConfigParser), strict, plus
    botocore's nested C(name =) blocks). A file the AWS CLI and SDKs cannot read (content before the first
    section, a duplicate section or setting, an unparseable line, a byte order mark, text that is not UTF-8)
    makes the module fail and stays untouched.
  - Also refused, untouched, are files that other readers read differently. A section header with more than one
    C(]), such as C([default]) followed by a comment that holds a C(]), which Python 3.9 and Python 3.10+ name
    differently. In the credentials
    file, a C([DEFAULT]) section holding settings, which every profile would inherit. A profile whose
    C(aws_access_key_id) is not shaped like an access key id, for example a secret in the wrong place; its value
    is never quoted, and O(state=absent) leaves such a profile alone.
  - The module refuses, leaving the file untouched, when O(path) is a directory or not a regular file, when
    the file has more than one hard link, when a symlink leads outside the home directory of O(owner), when the
    profile holds a key that is neither O(access_key_id) nor in O(replaceable_key_ids), when the profile holds
    settings but no key, and when the change would alter how botocore reads any other part of the file.
  - The file is replaced atomically (a temporary file in the same directory, fsync, rename). An existing file
    keeps its mode and owner; a new file is C(0600) and a new C(.aws) directory C(0700), owned by O(owner) and
    their primary group. As root, directories inside users' homes are walked without following symlinks, so a
    link swapped in during the run makes the module fail instead of writing elsewhere.
  - A session token (C(aws_session_token), C(aws_security_token)) in the profile is removed when a key is
    written, since it belongs to the previous key.
seealso:
  - module: amazon.aws.iam_access_key
  - name: AWS CLI configuration and credential file settings
    description: The file format the module keeps.
    link: https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-files.html
"""

EXAMPLES = r"""
- name: Read which key the deploy user's prod profile holds
  canarykeys.aws.credentials_profile:
    owner: deploy
    profile: prod
    state: query
  register: planted

- name: Plant a key, replacing the previous canary key of this profile
  canarykeys.aws.credentials_profile:
    owner: deploy
    profile: prod
    access_key_id: "{{ minted.access_key_id }}"
    secret_access_key: "{{ minted.secret_access_key }}"
    replaceable_key_ids: "{{ [planted.access_key_id] if planted.access_key_id else [] }}"
    region: us-east-1
  become: true
  no_log: true

- name: Plant into a file a dotfile manager links into the home
  canarykeys.aws.credentials_profile:
    owner: alice
    path: ~/.aws/credentials
    profile: backup
    access_key_id: "{{ minted.access_key_id }}"
    secret_access_key: "{{ minted.secret_access_key }}"
    backup: true
  no_log: true

- name: Retire a key; a profile holding another key is left alone
  canarykeys.aws.credentials_profile:
    owner: deploy
    profile: prod
    access_key_id: AKIAIOSFODNN7EXAMPLE
    region: us-east-1
    state: absent
  become: true
"""

RETURN = r"""
access_key_id:
  description:
    - The access key id the profile held before the task, or V(null) when the profile or the file did not
      exist or the profile held no key.
  returned: always
  type: str
  sample: AKIAIOSFODNN7EXAMPLE
planted_access_key_id:
  description:
    - The access key id the profile holds after the task (in check mode, would hold), or V(null).
  returned: always
  type: str
  sample: AKIAI44QH8DHBEXAMPLE
profiles:
  description:
    - The names of the profiles in the file, in file order. Names only, never a value.
  returned: when O(state=query)
  type: list
  elements: str
  sample: [default, prod]
exists:
  description:
    - Whether the credentials file exists.
  returned: when O(state=query)
  type: bool
  sample: true
path:
  description:
    - The credentials file, as given or defaulted (before any symlink is followed).
  returned: always
  type: str
  sample: /home/deploy/.aws/credentials
config_path:
  description:
    - The AWS config file, when O(region) is set.
  returned: when O(region) is set and O(state) is not V(query)
  type: str
  sample: /home/deploy/.aws/config
backup_file:
  description:
    - The backup of the credentials file made before changing it.
  returned: when O(backup=true) and an existing credentials file was changed
  type: str
  sample: /home/deploy/.aws/credentials.4242.2025-01-31@09:30:00~
config_backup_file:
  description:
    - The backup of the config file made before changing it.
  returned: when O(backup=true) and an existing config file was changed
  type: str
  sample: /home/deploy/.aws/config.4242.2025-01-31@09:30:00~
msg:
  description:
    - What was done, or why a profile or config section was left alone.
  returned: always
  type: str
  sample: profile prod added to /home/deploy/.aws/credentials
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.profile_run import (
    PROFILE_OPTIONS,
    PROFILE_REQUIRED_IF,
    ProfileError,
    run_profile,
)


def main():
    module = AnsibleModule(argument_spec=PROFILE_OPTIONS, required_if=PROFILE_REQUIRED_IF, supports_check_mode=True)
    try:
        result = run_profile(module.params, module.check_mode, module._diff, module.warn)
    except ProfileError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    diffs = result.pop("diff", None)
    if diffs:
        result["diff"] = diffs[0] if len(diffs) == 1 else diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
