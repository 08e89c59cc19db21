#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: canary_key_batch
version_added: 0.1.0
short_description: Ensure or rotate the IAM users and access keys of many canary placements in one run
description:
  - Does for every placement of O(placements) what M(canarykeys.aws.canary_key) does for one, with the same IAM calls,
    the same refusals and the same results, in one module run on the controller instead of one run per placement.
  - With O(placements[].listing) (the rotate role passes the bulk read's), O(action=begin) and O(action=finish) decide on
    it instead of reading the user and its keys again, and make only their writes.
  - Each placement is decided on its own. A placement that fails (a refusal, an AWS error) has C(failed=true) and a
    C(msg) in its RV(outcomes) entry, and the other placements go on; the task itself fails only on bad options.
  - O(action=ensure) is the seed's step (C(canary_key) with O(canarykeys.aws.canary_key#module:state=present));
    O(action=begin) and O(action=finish) are the two steps of a rotation (C(canary_key) with
    O(canarykeys.aws.canary_key#module:rotation)).
  - Every IAM call is retried with jittered backoff when AWS throttles; up to O(concurrency) placements are handled at
    once.
  - The placements of one run may be in several canary accounts - each names its account (O(placements[].account)) among
    O(accounts) - so that a play over hosts of several accounts still runs one batch. The accounts are handled one after
    the other, each with its own C(sts:AssumeRole) and its own quota check.
author:
  - canarykeys maintainers (@canarykeys)
options:
  action:
    description:
      - V(ensure) makes each placement's user exist with exactly one active key held by the host, minting a key only
        where the profile does not hold it (the seed).
      - V(begin) mints a second key for each placement whose planted key is due (O(max_age_days)).
      - V(finish) keeps the key each profile holds and deletes the other.
      - See M(canarykeys.aws.canary_key) for each step's rules.
    type: str
    choices: [ensure, begin, finish]
    default: ensure
  max_age_days:
    description: With O(action=begin), rotate only a planted key at least this many days old. V(0) rotates any key.
    type: int
    default: 0
  concurrency:
    description: Placements handled at once, 1 to 16.
    type: int
    default: 4
  user_quota:
    description:
      - With O(action=ensure), the most IAM users the account may hold. Before any write, the batch counts the
        account's users (C(iam:GetAccountSummary)) and the placements that may each create one (those without
        O(placements[].user_name)), and fails whole, in one line, when they would pass it.
      - Default, IAM's own quota for the account (5,000). Set it lower to keep room for other users, or for tests.
      - Checked in each account against the new users of that account's placements.
    type: int
  accounts:
    description:
      - The canary accounts that O(placements[].account) names, as the roles' C(canary_accounts) list; each entry has the
        suboptions of O(account) and a required O(accounts[].name).
      - A placement naming no account is handled in O(account) (or the account of the module's connection).
    type: list
    elements: dict
    default: []
    version_added: 0.1.0
    suboptions:
      name:
        description: The entry's name, which O(placements[].account) gives.
        type: str
        required: true
      role_arn:
        description: As O(account.role_arn).
        type: str
      external_id:
        description: As O(account.external_id).
        type: str
      session_name:
        description: As O(account.session_name).
        type: str
        default: canarykeys
      profile:
        description: As O(account.profile).
        type: str
notes:
  - Set C(no_log) to V(true) on the task. Every key minted has its secret in its RV(outcomes) entry, which must reach
    its host and nothing else.
  - Run it once for the play (C(run_once), C(delegate_to=localhost)); the seed and rotate roles do, so that a play of
    many hosts pays for one Python process and one boto3 import instead of one per placement.
  - The IAM permissions are those of M(canarykeys.aws.canary_key), listed in the collection's C(docs/iam_permissions.md).
attributes:
  check_mode:
    support: full
    details: In check mode nothing is written to IAM; each result says what would happen, and no secret is returned.
  diff_mode:
    support: none
  platform:
    platforms: aws
seealso:
  - module: canarykeys.aws.canary_key
  - module: canarykeys.aws.canary_key_info
extends_documentation_fragment:
  - canarykeys.aws.placement.batch
  - canarykeys.aws.naming
  - canarykeys.aws.account
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Ensure the canary of every placement the play found unsettled, in one run
  canarykeys.aws.canary_key_batch:
    placements:
      - host: web03
        path: /home/deploy/.aws/credentials
        profile_name: prod
        planted_key_id: ""
        reminder: "web tier, ask the platform team"
        planted_by: "{{ ansible_play_name }}"
      - host: laptop-alice
        path: /home/alice/.aws/credentials
        profile_name: deploy
        planted_key_id: AKIAIOSFODNN7EXAMPLE
  delegate_to: localhost
  run_once: true
  no_log: true
  register: minted

- name: Begin the rotation of every planted key at least 90 days old
  canarykeys.aws.canary_key_batch:
    action: begin
    max_age_days: 90
    placements: "{{ due_placements }}"
  delegate_to: localhost
  run_once: true
  no_log: true
  register: rotation
"""

RETURN = r"""
outcomes:
  description:
    - One entry per placement, in the order of O(placements).
    - Each holds the placement's C(host), C(path) and C(profile) (its O(placements[].profile_name)), C(account) (the
      name of the canary account, O(account.name), empty without O(account)) and C(account_id) (the id of the account
      the batch worked in) and, for a placement that did not fail, every value
      M(canarykeys.aws.canary_key) returns for the same step (C(changed), C(minted), C(user_name), C(access_key_id),
      C(secret_access_key) when a key was minted, C(deleted_access_key_ids), C(generation), C(mapping), C(rotation),
      C(rotated_key_id)...).
    - With O(action=begin) and O(placements[].listing), a placement that got a second key also has C(listing), the keys its
      user holds now (the planted one and the new one, no secret), for the finish step's O(placements[].listing).
    - A placement that failed has C(failed=true), C(changed=false), C(minted=false) and C(msg), and nothing was minted
      for it.
  returned: always
  type: list
  elements: dict
  sample:
    - host: web03
      path: /home/deploy/.aws/credentials
      profile: prod
      account: eu-canaries
      account_id: "222222222222"
      changed: true
      minted: true
      user_name: web03-backup
      access_key_id: AKIAIOSFODNN7EXAMPLE
      secret_access_key: "(returned once, never printed: no_log)"
      generation: 1
    - host: laptop-alice
      path: /home/alice/.aws/credentials
      profile: deploy
      account: eu-canaries
      account_id: "222222222222"
      failed: true
      changed: false
      minted: false
      msg: "profile deploy in /home/alice/.aws/credentials on laptop-alice holds access key AKIA..., which is not this
        placement's canary key; refusing to mint: choose another profile"
summary:
  description: Counts over RV(outcomes).
  returned: always
  type: dict
  sample: {"placements": 2, "changed": 1, "minted": 1, "failed": 1}
"""

from ansible_collections.canarykeys.aws.plugins.module_utils._iam.account import ACCOUNT_SPEC, CanaryAccountModule
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.calls import iam_client
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.batch import ACTIONS, run_many
from ansible_collections.canarykeys.aws.plugins.module_utils._iam import quota
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.errors import IAMCallError, PlacementError, error_message
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.options import BATCH_PLACEMENT_SPEC, NAMING_SPEC, validate


def check_user_quota(module, client, asked):
    """Fail the whole batch, before any write, when its new users would pass the account's user quota."""
    try:
        users_now, account_quota = quota.account_users(client)
    except IAMCallError as error:
        module.fail_json(msg=error_message(error))
    limit = module.params["user_quota"] if module.params["user_quota"] is not None else account_quota
    problem = quota.quota_problem(module.description(), users_now, asked, limit)
    if problem:
        module.fail_json(msg=problem, users=users_now, asked=asked, user_quota=limit)


def accounts_by_name(module) -> dict:
    """O(accounts) by name; a placement naming an account that is not there fails the run before any call."""
    accounts = {entry["name"]: entry for entry in module.params["accounts"]}
    unknown = sorted({p["account"] for p in module.params["placements"] if p["account"] and p["account"] not in accounts})
    if unknown:
        module.fail_json(msg=f"placements name the canary account(s) {', '.join(unknown)}, which accounts does not list")
    return accounts


def placements_by_account(requests) -> list:
    """``[(account name, [indexes of its placements])]``, accounts in the order they first appear."""
    groups = {}
    for index, request in enumerate(requests):
        groups.setdefault(request.get("account") or "", []).append(index)
    return list(groups.items())


def main():
    argument_spec = dict(
        placements=dict(type="list", elements="dict", required=True, options=BATCH_PLACEMENT_SPEC),
        action=dict(type="str", default="ensure", choices=list(ACTIONS)),
        max_age_days=dict(type="int", default=0),
        concurrency=dict(type="int", default=4),
        user_quota=dict(type="int"),
        accounts=dict(type="list", elements="dict", default=[], options=dict(ACCOUNT_SPEC, name=dict(type="str", required=True))),
        **NAMING_SPEC,
    )
    module = CanaryAccountModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    try:
        validate(params["placements"], params["user_name_template"], params["iam_path"], max_age_days=params["max_age_days"],
                 concurrency=params["concurrency"], rotated_key_required=params["action"] == "finish")
    except PlacementError as e:
        module.fail_json(msg=str(e))

    accounts = accounts_by_name(module)
    requests = [dict(request, max_age_days=params["max_age_days"]) for request in params["placements"]]
    results = [None] * len(requests)
    groups = [(accounts[name] if name else params["account"], indexes) for name, indexes in placements_by_account(requests)]
    # Every account's client (one AssumeRole each) and quota check before the first write in any of them.
    clients = []
    for entry, indexes in groups:
        module.use_account(entry)
        clients.append(iam_client(module))
        group = [requests[index] for index in indexes]
        if params["action"] == "ensure" and quota.new_users(group):
            check_user_quota(module, clients[-1], quota.new_users(group))
    for (entry, indexes), client in zip(groups, clients):
        module.use_account(entry)
        outcomes = run_many(
            client, [requests[index] for index in indexes], action=params["action"], concurrency=params["concurrency"],
            template=params["user_name_template"], iam_path=params["iam_path"], deny_all=params["deny_all"], check_mode=module.check_mode,
        )
        module.label(outcomes)
        for index, outcome in zip(indexes, outcomes):
            results[index] = outcome
    for result in results:
        for warning in result.pop("warnings", []):
            module.warn(warning)
    summary = {
        "placements": len(results),
        "changed": sum(1 for r in results if r.get("changed")),
        "minted": sum(1 for r in results if r.get("minted")),
        "failed": sum(1 for r in results if r.get("failed")),
    }
    # Not "results": Ansible reads a list by that name as loop items and would fail the task for one failed placement.
    module.exit_json(changed=summary["changed"] > 0, outcomes=results, summary=summary)


if __name__ == "__main__":
    main()
