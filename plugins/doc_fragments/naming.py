# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The naming options of canary_key and canary_key_batch (module_utils/_iam/options.py's NAMING_SPEC)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  user_name_template:
    description:
      - How the IAM user name is built. Placeholders C({host}) (short host name), C({purpose}) (drawn
        from the placement), C({profile}) (the placement's profile) and C({user}) (the OS user owning the file, that is
        C(root) for C(/root/...), C(U) for C(/home/U/...) or C(/Users/U/...), else empty).
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
"""
