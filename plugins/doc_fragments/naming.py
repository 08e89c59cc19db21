# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The naming and guard options of canary_key and canary_key_batch (module_utils/_iam/options.py's NAMING_SPEC)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  user_name_template:
    description:
      - How the IAM user name is built. Placeholders C({host}) (short host name), C({purpose}) (what the placement is
        for, that is its profile name, or for a C(default) profile the OS user owning the file, or C(ops) for root's),
        C({profile}) (the placement's profile) and C({user}) (the OS user owning the file, that is C(root) for
        C(/root/...), C(U) for C(/home/U/...) or C(/Users/U/...), else empty).
      - The name follows the placement, so one placement on the hosts of a group differs only by the host
        (C(web01-prod), C(web02-prod)).
      - A template with C({user}) and without C({host}), such as C({user}), is a person's name (C(mira)); for a file
        no person owns (root's, or outside a home) the default template is used instead.
      - A host named by a UUID, an EC2 instance id or a hash, or holding one of the words below, is replaced by a
        plausible deterministic name (C(ip-10-12-34-56), C(worker-42)).
      - When a name is taken by another user, the next candidate is tried, always in the same order (C(mira.deploy),
        C(web01-prod-deploy), then numbered C(web01-prod2)). An existing user keeps its name.
      - The result is sanitised to the characters IAM allows in user names and cut to 64 characters,
        the host part first.
      - A template containing C(canary), C(honey), C(decoy), C(trap), C(token), C(tripwire) or C(@@) is
        refused, since every denied AWS call shows the user name to the caller.
      - The roles set it from C(canary_naming.user_name_template).
    type: str
    default: "{host}-{purpose}"
  iam_path:
    description:
      - The IAM path of a user the module creates. Starts and ends with C(/); the same words as in
        O(user_name_template) are refused.
      - An existing user keeps its path.
    type: str
    default: /
  deny_all:
    description:
      - Whether the user carries an inline policy (named C(default)) that denies every action.
      - V(false), the default, gives the user no policy at all, so its calls are refused as any least-privilege
        user's are ("because no identity-based policy allows"); an explicit deny is worded "with an explicit deny in an
        identity-based policy", which tells an attacker the key is a decoy or quarantined.
      - V(true) keeps the key useless even if someone attaches a policy to the user, at that cost.
      - Set either way, the user is brought to it on its next ensure or rotation begin (a user seeded
        before keeps its policy until then).
    type: bool
    default: false
    version_added: 0.1.0
"""
