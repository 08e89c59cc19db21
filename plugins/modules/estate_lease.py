#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: estate_lease
version_added: 0.1.0
short_description: Take, renew or release the lease that lets one run at a time change the canary estate
description:
  - The seed, rotate and retire roles take this lease before their first IAM write and release it at
    their end, so that two runs against the same canary account never change the same canaries at
    once (two runs that mint for one placement would each delete the other's key, and a host would
    be left holding a dead key).
  - The lease is an IAM customer managed policy that nothing attaches, named O(name). Creating it is
    atomic, so exactly one run holds it; its tags record the holder (run id, controller, process,
    play, start and expiry).
  - A lease whose holder is gone is taken over with a warning, when its expiry passed or when its
    ansible-playbook process no longer runs on this same controller (a run killed with SIGKILL).
  - Every task of one C(ansible-playbook) process shares one run id, computed on the controller by
    the action plugin of this module, so a role that takes the lease again renews it.
  - With O(account), the lease lives in that canary account; each account has its own lease, and a run that changes
    several accounts takes one lease per account.
author:
  - canarykeys maintainers (@canarykeys)
options:
  name:
    description:
      - Name of the IAM policy that is the lease.
    type: str
    default: estate-change-lock
  iam_path:
    description:
      - IAM path of the lease policy.
    type: str
    default: /
  state:
    description:
      - V(present) takes the lease, or renews it when this run holds it already.
      - V(absent) releases it when this run holds it (or any holder's with O(force=true)).
    type: str
    default: present
    choices: [present, absent]
  duration:
    description:
      - Seconds the lease holds from now (taken or renewed) before another controller may take it over.
    type: int
    default: 3600
  wait:
    description:
      - Seconds to wait for a lease that another live run holds, checking every few seconds.
      - V(0) fails at once, with a message that names the holder.
    type: int
    default: 0
  force:
    description:
      - With O(state=absent), release the lease whoever holds it. For a stale lease of a controller
        that is gone; a live run that loses its lease fails at its next renewal.
    type: bool
    default: false
  play:
    description:
      - Name of the play, recorded with the holder so that a message can name it.
    type: str
    default: ""
  list_hosts:
    description:
      - With O(state=present), once the lease is held, list the canaries of these inventory hosts as
        M(canarykeys.aws.canary_key_info) does with its O(canarykeys.aws.canary_key_info#module:host), and return
        RV(canaries), RV(placements), RV(orphans) and RV(summary) as it does.
      - The listing a run's decisions rest on is made under the lease, and a role that takes the lease and
        lists pays one module run for both (each is a Python process with boto3 on the controller).
      - Nothing is listed when left out or empty (it never lists every host's canaries).
    type: list
    elements: str
    version_added: 0.1.0
  key_source:
    description:
      - Where the listing's access keys come from, as M(canarykeys.aws.canary_key_info)'s
        O(canarykeys.aws.canary_key_info#module:key_source). Only with O(list_hosts).
    type: str
    choices: [credential_report, list_access_keys]
    default: list_access_keys
    version_added: 0.1.0
  holder_pid:
    description:
      - Process id of the C(ansible-playbook) run on the controller. Set by the action plugin; leave it out.
    type: int
  holder_pid_start:
    description:
      - Start time of O(holder_pid) (boot id and clock ticks). Set by the action plugin; leave it out.
    type: str
    default: ""
extends_documentation_fragment:
  - canarykeys.aws.account
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    details: Reports whether the lease would be taken, renewed or released; changes nothing.
  diff_mode:
    support: none
  platform:
    support: N/A
    platforms: aws
notes:
  - Needs C(iam:CreatePolicy), C(iam:GetPolicy), C(iam:TagPolicy) and C(iam:DeletePolicy) on the lease
    policy's ARN, and C(sts:GetCallerIdentity). O(list_hosts) needs what M(canarykeys.aws.canary_key_info) needs.
  - Run it on the controller (C(delegate_to=localhost)), since the process check reads the controller's C(/proc).
"""

EXAMPLES = r"""
- name: Take the estate lease (wait up to 10 minutes for another run)
  canarykeys.aws.estate_lease:
    wait: 600
    play: "{{ ansible_play_name }}"
  delegate_to: localhost
  run_once: true

- name: Take it and list the canaries of the play's hosts under it, in one module run
  canarykeys.aws.estate_lease:
    wait: 600
    play: "{{ ansible_play_name }}"
    list_hosts: "{{ ansible_play_hosts }}"
  delegate_to: localhost
  run_once: true
  register: lease_and_estate

- name: Release it
  canarykeys.aws.estate_lease:
    state: absent
  delegate_to: localhost
  run_once: true

- name: Break the stale lease of a controller that died
  canarykeys.aws.estate_lease:
    state: absent
    force: true
"""

RETURN = r"""
lease:
  description: The holder record after the task; empty when nobody holds the lease.
  returned: always
  type: dict
  sample:
    run_id: 3f9c1a27be04
    controller: ops-bastion
    pid: "41877"
    play: Seed canary keys
    started_at: "2026-12-03T09:14:02Z"
    expires_at: "2026-12-03T10:14:02Z"
held_by_us:
  description: Whether this run holds the lease after the task.
  returned: always
  type: bool
taken_over:
  description: The holder record of a stale lease that this task took over or broke, else null.
  returned: always
  type: dict
waited:
  description: Seconds spent waiting for another run's lease.
  returned: always
  type: int
account:
  description: The entry name (O(account.name)) of the canary account whose lease this is; empty without O(account).
  sample: eu-canaries
  returned: always
  version_added: 0.1.0
  type: str
account_id:
  description: The id of the account the lease lives in.
  returned: always
  type: str
  sample: "222222222222"
  version_added: 0.1.0
policy_arn:
  description: ARN of the lease policy.
  returned: always
  type: str
  sample: arn:aws:iam::123456789012:policy/estate-change-lock
canaries:
  description: The canaries of O(list_hosts), listed under the lease, as RV(canarykeys.aws.canary_key_info#module:canaries).
  returned: when O(list_hosts) is given and not empty
  type: list
  elements: dict
  version_added: 0.1.0
placements:
  description: One flat row per canary, as RV(canarykeys.aws.canary_key_info#module:placements).
  returned: when O(list_hosts) is given and not empty
  type: list
  elements: dict
  version_added: 0.1.0
orphans:
  description: Keys that are not their user's newest and users with no key, as RV(canarykeys.aws.canary_key_info#module:orphans).
  returned: when O(list_hosts) is given and not empty
  type: list
  elements: dict
  version_added: 0.1.0
summary:
  description: Counts over the listing, as RV(canarykeys.aws.canary_key_info#module:summary).
  returned: when O(list_hosts) is given and not empty
  type: dict
  sample: {"canaries": 120, "access_keys": 121, "orphans": 1, "hosts": 60, "dead": 0}
  version_added: 0.1.0
key_source:
  description: Where the listing's keys came from, as O(key_source).
  returned: when O(list_hosts) is given and not empty
  type: str
  sample: list_access_keys
  version_added: 0.1.0
credential_report_as_of:
  description: How new the credential report is (ISO 8601, UTC), null when it was not read.
  returned: when O(list_hosts) is given and not empty
  type: str
  sample: null
  version_added: 0.1.0
iam_calls:
  description: IAM calls the listing made, by action (the lease's own calls not counted).
  returned: when O(list_hosts) is given and not empty
  type: dict
  sample: {"GetAccountAuthorizationDetails": 1, "ListAccessKeys": 120}
  version_added: 0.1.0
"""

import datetime
import socket
import time

from ansible_collections.canarykeys.aws.plugins.module_utils import _lease
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.account import CanaryAccountModule, arn_account_id
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.calls import iam_client
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.estate import KEY_SOURCES, LIST_ACCESS_KEYS
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.estate_read import read_estate
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.lease_policy import Lease, policy_arn
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared.canary_mapping import key_timestamp, sanitize_tag_value

POLL_SECONDS = 5


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def account_hint(module) -> str:
    # The lease lives in the canary account: breaking it by hand needs the same account option.
    name = module.account["name"]
    return f" (the lease of canary account {name}: give that entry as the account option)" if name else ""


def our_holder(params) -> dict:
    controller = socket.gethostname()
    pid = params["holder_pid"] or 0
    start = params["holder_pid_start"] or ""
    now = _now()
    return {
        "run_id": _lease.run_id(controller, pid, start),
        "controller": controller,
        "pid": str(pid),
        "pid_start": start,
        "started_at": key_timestamp(now),
        "expires_at": key_timestamp(now + datetime.timedelta(seconds=params["duration"])),
        "play": sanitize_tag_value(params["play"]),
    }


def acquire(module, lease, ours) -> dict:
    params = module.params
    result = dict(changed=False, held_by_us=False, taken_over=None, waited=0, lease={})
    started = time.monotonic()
    while True:
        current = lease.read()
        standing = _lease.standing(current, ours, _now())
        if standing == _lease.HELD_BY_US:
            renewed = dict(ours, started_at=current["started_at"] or ours["started_at"])
            if not module.check_mode:
                lease.renew(renewed)
            return dict(result, changed=True, held_by_us=True, lease=renewed)
        if standing in (_lease.STALE_EXPIRED, _lease.STALE_PROCESS_GONE):
            module.warn(_lease.stale_warning(current, standing))
            result["taken_over"] = current
            if module.check_mode:
                return dict(result, changed=True, held_by_us=True, lease=ours)
            lease.delete()
            continue
        if standing == _lease.FREE:
            if module.check_mode or lease.create(params["name"], params["iam_path"], ours):
                if result["waited"]:
                    module.warn(f"Waited {result['waited']} s for another run's estate lease before taking it.")
                return dict(result, changed=True, held_by_us=True, lease=ours)
            continue
        if module.check_mode:
            # A check run changes nothing, so another run's lease cannot be harmed by it; its forecast may be.
            module.warn(f"Another run, {_lease.describe(current)}, holds the estate lease: this check may forecast "
                        "changes that run is making.")
            return dict(result, lease=current)
        waited = time.monotonic() - started
        result["waited"] = int(waited)
        if waited >= params["wait"]:
            module.fail_json(msg=_lease.held_message(current, params["name"]) + account_hint(module), lease=current,
                             waited=result["waited"])
        time.sleep(min(POLL_SECONDS, max(0.1, params["wait"] - waited)))


def release(module, lease, ours) -> dict:
    current = lease.read()
    result = dict(changed=False, held_by_us=False, taken_over=None, waited=0, lease=current or {})
    if current is None:
        return result
    if current["run_id"] != ours["run_id"]:
        if not module.params["force"]:
            module.warn(f"The estate lease is held by {_lease.describe(current)}, not by this run: left as it is.")
            return result
        result["taken_over"] = current
    if not module.check_mode:
        lease.delete()
    return dict(result, changed=True, lease={})


def main():
    module = CanaryAccountModule(
        argument_spec=dict(
            name=dict(type="str", default="estate-change-lock"),
            iam_path=dict(type="str", default="/"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            duration=dict(type="int", default=3600),
            wait=dict(type="int", default=0),
            force=dict(type="bool", default=False),
            play=dict(type="str", default=""),
            list_hosts=dict(type="list", elements="str"),
            key_source=dict(type="str", default=LIST_ACCESS_KEYS, choices=list(KEY_SOURCES)),
            holder_pid=dict(type="int"),
            holder_pid_start=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["duration"] < 60:
        module.fail_json(msg=f"duration must be at least 60 seconds, got {params['duration']}")
    if params["wait"] < 0:
        module.fail_json(msg=f"wait must be 0 or more seconds, got {params['wait']}")
    iam_path = params["iam_path"]
    if not (iam_path.startswith("/") and iam_path.endswith("/")):
        module.fail_json(msg=f"iam_path must begin and end with /, got {iam_path}")
    # The collection's one IAM client: retries throttling and IAM's 500 ServiceFailure like every module's.
    client = iam_client(module)
    lease = Lease(module, client, policy_arn(module, params["name"], iam_path))
    ours = our_holder(params)
    result = acquire(module, lease, ours) if params["state"] == "present" else release(module, lease, ours)
    if params["state"] == "present" and params["list_hosts"]:
        result.update(read_estate(module, client, hosts=params["list_hosts"], key_source=params["key_source"]))
    module.exit_json(policy_arn=lease.arn, account=module.account["name"], account_id=arn_account_id(lease.arn), **result)


if __name__ == "__main__":
    main()
