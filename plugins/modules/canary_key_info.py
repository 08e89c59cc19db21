#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: canary_key_info
version_added: 0.1.0
short_description: List the canary AWS access keys of the account with their placement, state and last use
description:
  - Lists every canary of the AWS account (with O(account), of that canary account), that is every IAM user tagged as managed by this collection
    (C(canarykeys:managed=true)), whatever its name or IAM path. Other IAM users are never listed.
  - For each canary returns its placement (host, credentials file, profile, reminder, when and by which play it
    was planted, generation), its IAM user, each of its access keys (id, status, creation date, age) and, with
    O(last_used=true), each key's last use.
  - Also returns flat RV(placements) rows, one per placement, convenient for reports, and RV(orphans), the canary
    users without a key and the keys that are not their user's newest, for reconciliation.
  - Read-only. Users and their tags come from C(iam:GetAccountAuthorizationDetails) pages of up to
    O(page_size) users, so listing costs one call per page, not per user. See O(key_source) for the keys.
  - Never returns a secret access key (IAM cannot return one after creation).
author:
  - canarykeys maintainers (@canarykeys)
options:
  host:
    description:
      - Only canaries planted on these hosts (exact match on the host recorded in the user's tags).
      - Every host when left out.
    type: list
    elements: str
    aliases: [hosts]
  status:
    description:
      - Only keys with this status. A canary left without a listed key is left out of RV(canaries) and RV(placements).
      - RV(orphans) always considers every key of the selected canaries.
    type: str
    choices: [Active, Inactive]
    aliases: [state]
  iam_path:
    description:
      - Only users whose IAM path starts with this prefix, for example V(/) (every user) or V(/service/).
    type: str
  last_used:
    description:
      - Add each key's last use (date, service, region), read with one C(iam:GetAccessKeyLastUsed) call per key,
        made only when this is V(true). Always current, whatever O(key_source) says.
    type: bool
    default: false
  key_source:
    description:
      - Where the access keys come from. No bulk IAM read returns access key ids.
      - V(credential_report) reads the account's credential report (C(iam:GenerateCredentialReport) and
        C(iam:GetCredentialReport)), a constant number of calls whatever the number of canaries. The report has each
        user's keys without their ids; M(canarykeys.aws.canary_key) records the key it hands out in the user's tags
        C(canarykeys:access-key-id) and C(canarykeys:access-key-created), and a report key created at that second is
        that key. A canary the report does not account for exactly (no such tags, no key or two keys, a key created
        or deleted after the report) is listed with C(iam:ListAccessKeys) instead, so keys always have their ids.
        IAM regenerates the report at most every 4 hours, so a key status changed or a key deleted outside this
        collection within that time may not show yet.
      - V(list_access_keys) calls C(iam:ListAccessKeys) once per selected canary. Always current. The roles that
        delete keys (rotate, retire, reconcile) use it.
    type: str
    choices: [credential_report, list_access_keys]
    default: credential_report
  page_size:
    description:
      - Users per C(iam:GetAccountAuthorizationDetails) page (C(MaxItems)), 1 to 1000.
    type: int
    default: 1000
  concurrency:
    description:
      - Per-key and per-user IAM calls made at once, 1 to 16. Throttled calls are retried with backoff.
    type: int
    default: 4
  lease_name:
    description:
      - Also look whether the estate lease of this name (M(canarykeys.aws.estate_lease)'s O(canarykeys.aws.estate_lease#module:name))
        is held, with one C(iam:GetPolicy) call made after the listing, and return RV(lease_held).
      - The seed role asks, so that it can tell after taking the lease whether another run may have changed the estate
        since this read (docs/overlap.md).
    type: str
    version_added: 0.1.0
  lease_iam_path:
    description:
      - The IAM path of the lease policy named by O(lease_name).
    type: str
    default: /
    version_added: 0.1.0
notes:
  - "IAM calls, with U users in the account, S selected canaries and K keys:
    V(credential_report) makes ceil(U / O(page_size)) + 2 calls (more while IAM generates the report), plus one
    per canary the report does not account for; V(list_access_keys) makes ceil(U / O(page_size)) + S calls.
    Either makes K more with O(last_used=true). RV(iam_calls) counts them."
  - Needs C(iam:GetAccountAuthorizationDetails), C(iam:ListAccessKeys), C(iam:GetAccessKeyLastUsed) (for
    O(last_used)), C(iam:GenerateCredentialReport) and C(iam:GetCredentialReport) (for O(key_source=credential_report)).
  - Moto (the local AWS) ignores C(MaxItems) and returns every user in one page, and its credential report has no
    last-used service or region.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: aws
seealso:
  - module: canarykeys.aws.canary_key
extends_documentation_fragment:
  - canarykeys.aws.account
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: List every canary and whether its key was ever used
  canarykeys.aws.canary_key_info:
    last_used: true
  register: estate

- name: Warn about used canary keys
  ansible.builtin.debug:
    msg: "{{ estate.placements | selectattr('used') | map(attribute='host') | list }}"

- name: Canaries of two hosts, only their inactive keys
  canarykeys.aws.canary_key_info:
    host: [web01, web02]
    status: Inactive

- name: Exact key listing, one iam:ListAccessKeys per canary (what the roles that delete keys use)
  canarykeys.aws.canary_key_info:
    key_source: list_access_keys

- name: Read the estate
  canarykeys.aws.canary_key_info:
  register: estate

- name: Canaries planted on hosts that left the inventory
  ansible.builtin.debug:
    msg: "{{ estate.placements | rejectattr('host', 'in', groups['all']) | map(attribute='user_name') | list }}"

- name: Keys to delete in a reconciliation
  ansible.builtin.debug:
    msg: "{{ estate.orphans | selectattr('reason', 'eq', 'not_newest') | map(attribute='access_key_id') | list }}"
"""

RETURN = r"""
canaries:
  description: One entry per canary IAM user, sorted by host, file, profile.
  returned: always
  type: list
  elements: dict
  contains:
    account:
      description: Which canary account the user is in, by the name of its entry (O(account.name)); V("") without O(account).
      type: str
      sample: eu-canaries
      returned: always
      version_added: 0.1.0
    account_id:
      description: The id of the account the user is in (from its ARN).
      returned: always
      type: str
      sample: "222222222222"
      version_added: 0.1.0
    user_name:
      description: IAM user name.
      returned: always
      type: str
      sample: web03-backup
    user_id:
      description: IAM user id.
      returned: always
      type: str
      sample: AIDAEXAMPLEUSERID0001
    user_arn:
      description: IAM user ARN.
      returned: always
      type: str
      sample: arn:aws:iam::123456789012:user/web03-backup
    iam_path:
      description: IAM path of the user.
      returned: always
      type: str
      sample: /
    create_date:
      description: When the user was created (ISO 8601, UTC).
      returned: always
      type: str
      sample: "2025-01-31T09:12:44+00:00"
    mapping:
      description: The placement recorded in the user's tags (sanitised as IAM tag values).
      returned: always
      type: dict
      contains:
        placement_id:
          description: Stable id of the placement (host + file + profile).
          returned: always
          type: str
          sample: 0f3c2a9b81d4e5f60718
        host:
          description: Inventory host name.
          returned: always
          type: str
          sample: web03
        path:
          description: Credentials file on the host.
          returned: always
          type: str
          sample: /root/.aws/credentials
        profile:
          description: Profile name in that file.
          returned: always
          type: str
          sample: backup
        reminder:
          description: The reminder text quoted by alerts.
          returned: always
          type: str
          sample: "web03:/root/.aws/credentials [backup] user root"
        planted_at:
          description: When the key was planted (ISO 8601), empty if not recorded.
          returned: always
          type: str
          sample: "2025-01-31T09:12:44Z"
        planted_by:
          description: The play that planted it, empty if not recorded.
          returned: always
          type: str
          sample: Seed canary AWS keys
        generation:
          description: How many keys this placement has had.
          returned: always
          type: int
          sample: 1
        last_used_reported:
          description: Newest use the last-used detector has already alerted on, empty if none.
          returned: always
          type: str
          sample: ""
    dead:
      description:
        - Whether the key the placement was last handed (its C(canarykeys:access-key-id) tag) is gone from IAM or
          inactive. Its profile then holds a key that raises no alert. The next seed re-plants it.
        - V(false) for a user without that tag.
      returned: always
      type: bool
      sample: false
      version_added: 0.1.0
    key_history:
      description: The key ids the placement was handed, oldest first (its C(canarykeys:key-history) tag, at most 8).
      returned: always
      type: list
      elements: str
      sample: [AKIAI44QH8DHBEXAMPLE, AKIAIOSFODNN7EXAMPLE]
      version_added: 0.1.0
    inline_policies:
      description:
        - The names of the user's inline policies, from the same bulk read. V(default) is the deny-all that
          M(canarykeys.aws.canary_key) puts with O(canarykeys.aws.canary_key#module:deny_all=true) only.
      returned: always
      type: list
      elements: str
      sample: []
      version_added: 0.1.0
    key_source:
      description: Where this canary's keys came from, V(credential_report) or V(list_access_keys).
      returned: always
      type: str
      sample: credential_report
    keys:
      description: The user's access keys, newest first.
      returned: always
      type: list
      elements: dict
      contains:
        access_key_id:
          description: Access key id.
          returned: always
          type: str
          sample: AKIAIOSFODNN7EXAMPLE
        status:
          description: V(Active) or V(Inactive).
          returned: always
          type: str
          sample: Active
        create_date:
          description: When the key was created (ISO 8601, UTC).
          returned: always
          type: str
          sample: "2025-01-31T09:12:44+00:00"
        age_days:
          description: Whole days since the key was created.
          returned: always
          type: int
          sample: 42
        newest:
          description: Whether this is the user's newest key (the planted one); an older key is an orphan.
          returned: always
          type: bool
          sample: true
        report_slot:
          description: Key number (1 or 2) in the credential report.
          returned: when the key was read from the credential report
          type: int
          sample: 1
        last_used:
          description: The key's last use.
          returned: when O(last_used=true)
          type: dict
          contains:
            used:
              description: Whether the key has ever been used.
              returned: always
              type: bool
              sample: true
            date:
              description: When it was last used (ISO 8601, UTC), null if never.
              returned: always
              type: str
              sample: "2025-03-02T17:40:00+00:00"
            service_name:
              description: The AWS service it was last used with, null if never or unknown.
              returned: always
              type: str
              sample: sts
            region:
              description: The region it was last used in, null if never or unknown.
              returned: always
              type: str
              sample: us-east-1
placements:
  description:
    - One flat row per canary (placement), sorted like RV(canaries), describing its newest listed key.
    - The C(used) and C(last_used_*) fields consider every listed key of the placement.
    - C(dead) is RV(canaries[].dead); C(account) and C(account_id) are RV(canaries[].account) and
      RV(canaries[].account_id).
  returned: always
  type: list
  elements: dict
  sample:
    - host: web03
      path: /root/.aws/credentials
      profile: backup
      account: eu-canaries
      account_id: "222222222222"
      reminder: "web03:/root/.aws/credentials [backup] user root"
      planted_at: "2025-01-31T09:12:44Z"
      planted_by: Seed canary AWS keys
      generation: 1
      placement_id: 0f3c2a9b81d4e5f60718
      user_name: web03-backup
      user_arn: arn:aws:iam::123456789012:user/web03-backup
      iam_path: /
      access_key_id: AKIAIOSFODNN7EXAMPLE
      key_status: Active
      key_create_date: "2025-01-31T09:12:44+00:00"
      age_days: 42
      key_count: 1
      dead: false
      inline_policies: []
      used: true
      last_used_date: "2025-03-02T17:40:00+00:00"
      last_used_service: sts
      last_used_region: us-east-1
      last_used_access_key_id: AKIAIOSFODNN7EXAMPLE
orphans:
  description:
    - Canary users with no access key (C(reason=no_key)) and keys that are not their user's newest
      (C(reason=not_newest)), over every key of the selected canaries whatever O(status) says.
    - Each carries C(account) and C(account_id) as RV(canaries[]) do.
  returned: always
  type: list
  elements: dict
  sample:
    - user_name: web01-deploy
      account: ""
      account_id: "123456789012"
      user_arn: arn:aws:iam::123456789012:user/web01-deploy
      placement_id: 9a8b7c6d5e4f30211203
      host: web01
      path: /home/deploy/.aws/credentials
      profile: prod
      reason: not_newest
      access_key_id: AKIAI44QH8DHBEXAMPLE
      status: Active
      create_date: "2024-10-01T08:00:00+00:00"
      age_days: 164
summary:
  description: Counts over the result (C(dead) counts the dead canaries). C(used) only with O(last_used=true).
  returned: always
  type: dict
  sample: {"canaries": 120, "access_keys": 121, "orphans": 1, "hosts": 60, "dead": 0, "used": 1}
key_source:
  description: Where the keys came from, as O(key_source); RV(canaries[].key_source) says it per canary.
  returned: always
  type: str
  sample: credential_report
credential_report_as_of:
  description: How new the credential report is (ISO 8601, UTC), null when it was not read.
  returned: always
  type: str
  sample: "2025-03-14T06:00:00+00:00"
lease_held:
  description:
    - Whether the estate lease O(lease_name) was held (by any run) when the listing was done; V(null) without O(lease_name).
  returned: always
  type: bool
  sample: false
  version_added: 0.1.0
iam_calls:
  description: IAM calls the module made, by action (retries of throttled calls not counted).
  returned: always
  type: dict
  sample: {"GetAccountAuthorizationDetails": 1, "ListAccessKeys": 120}
"""

from ansible_collections.canarykeys.aws.plugins.module_utils._iam.account import CanaryAccountModule
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.calls import iam_client
from ansible_collections.canarykeys.aws.plugins.module_utils._iam import estate
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.estate_read import read_estate
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.lease_policy import Lease, policy_arn


def lease_held(module, client, canaries):
    """Whether the estate lease is held, looked at after the listing (None when not asked).

    After, not before: a run that takes the lease later than this look changes IAM after the listing too, which
    the seed's second listing under its own lease then shows.
    """
    name = module.params["lease_name"]
    if not name:
        return None
    arn = policy_arn(module, name, module.params["lease_iam_path"], (canary.get("user_arn") for canary in canaries))
    return Lease(module, client, arn).read() is not None


def main():
    argument_spec = dict(
        host=dict(type="list", elements="str", aliases=["hosts"]),
        status=dict(type="str", choices=list(estate.KEY_STATUSES), aliases=["state"]),
        iam_path=dict(type="str"),
        last_used=dict(type="bool", default=False),
        key_source=dict(type="str", default=estate.CREDENTIAL_REPORT, choices=list(estate.KEY_SOURCES)),
        page_size=dict(type="int", default=estate.MAX_PAGE_SIZE),
        concurrency=dict(type="int", default=estate.DEFAULT_CONCURRENCY),
        lease_name=dict(type="str"),
        lease_iam_path=dict(type="str", default="/"),
    )
    module = CanaryAccountModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    client = iam_client(module)
    result = read_estate(
        module,
        client,
        hosts=params["host"],
        status=params["status"],
        iam_path=params["iam_path"],
        last_used=params["last_used"],
        key_source=params["key_source"],
        page_size=params["page_size"],
        concurrency=params["concurrency"],
    )
    result["lease_held"] = lease_held(module, client, result["canaries"])
    if result["lease_held"] is not None:
        result["iam_calls"]["GetPolicy"] = result["iam_calls"].get("GetPolicy", 0) + 1
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
