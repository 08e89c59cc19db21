# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The placement options of canary_key and canary_key_batch, written once.

canary_key takes one placement as top-level options (DOCUMENTATION); canary_key_batch takes a list of
them as O(placements) (fragment ``canarykeys.aws.placement.batch``).  Their argument spec is
module_utils/_iam/options.py's PLACEMENT_SPEC.  Both are plain strings, as ansible-test's yamllint
requires of a fragment; tests/unit/plugins/doc_fragments/test_placement.py checks that the batch's
suboptions are the single placement's options plus its own, so the two cannot drift.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
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
  profile_name:
    description:
      - The profile of the credentials file that holds the key.
      - This is the placement's profile, not the AWS profile the controller calls IAM with (that is C(profile), alias
        C(aws_profile), as in every amazon.aws module).
    required: true
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
"""

    BATCH = r"""
options:
  placements:
    description:
      - The placements, each one profile in one credentials file on one host.
    type: list
    elements: dict
    required: true
    suboptions:
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
      profile_name:
        description:
          - The profile of the credentials file that holds the key.
          - This is the placement's profile, not the AWS profile the controller calls IAM with (that is C(profile), alias
            C(aws_profile), as in every amazon.aws module).
        required: true
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
          - The access key id the profile holds now, as read from the host; empty when it holds none.
          - With O(action=finish), the key the profile holds after the write, as read back.
        type: str
      rotated_key_id:
        description: With O(action=finish), the key the profile held before the rotation began. Required then.
        type: str
      user_name_template:
        description:
          - This placement's own O(user_name_template), for an estate that names each group its own way (a person's
            name on laptops, a service name on servers). Unset, the batch's O(user_name_template).
        type: str
        version_added: 0.1.0
      inline_policies:
        description:
          - The inline policy names of the placement's user as M(canarykeys.aws.canary_key_info) listed them
            (RV(canarykeys.aws.canary_key_info#module:canaries[].inline_policies)); with them O(deny_all) is settled without an
            C(iam:ListUserPolicies) call. Unset, the module reads them.
        type: list
        elements: str
        version_added: 0.1.0
      user_name:
        description:
          - The placement's existing IAM user as M(canarykeys.aws.canary_key_info) listed it, whatever its name. With
            O(action=ensure) it is tried first and used only if its C(canarykeys:placement) tag is this placement's, so a user
            named under an earlier naming keeps its name. Unset, the user is found by its candidate names and by the key the
            profile holds.
        type: str
        version_added: 0.1.0
      account:
        description:
          - The name of the placement's canary account, an entry of O(accounts); the placement is handled in that account.
          - V(""), the batch's own O(account) (or the account of the module's connection).
        type: str
        default: ""
        version_added: 0.1.0
      listing:
        description:
          - With O(action=begin) and O(action=finish), the placement's IAM user and keys as the bulk read listed them, so
            that the step decides on them instead of reading IAM again (the rotate role passes them).
          - For O(action=begin), the placement's M(canarykeys.aws.canary_key_info) RV(canarykeys.aws.canary_key_info#module:canaries[])
            item cut to these fields (what C(listing_of) in C(module_utils/_iam/listed.py) keeps), read with
            C(key_source=list_access_keys) under the estate lease; for O(action=finish), the C(listing) of the placement's
            begin outcome (the planted key and the new one).
          - Used only when its C(mapping.placement_id) is this placement's. A key IAM had not listed yet makes the mint
            meet C(LimitExceeded), and the step then lists the keys; a finish whose profile holds a key the listing does
            not name reads IAM. Unset, each step finds the user and lists its keys itself.
        type: dict
        version_added: 0.1.0
        suboptions:
          user_name:
            description: The IAM user's name.
            type: str
            required: true
          user_arn:
            description: The IAM user's ARN.
            type: str
            default: ""
          iam_path:
            description: The IAM user's path.
            type: str
            default: /
          mapping:
            description: The placement recorded in the user's tags (RV(canarykeys.aws.canary_key_info#module:canaries[].mapping)).
            type: dict
            required: true
          key_history:
            description: The key ids the placement was handed, oldest first.
            type: list
            elements: str
            default: []
          keys:
            description: The user's access keys (no secret).
            type: list
            elements: dict
            required: true
            suboptions:
              access_key_id:
                description: Access key id.
                type: str
                required: true
              status:
                description: The key's status.
                type: str
                default: Active
                choices: [Active, Inactive]
              create_date:
                description: When IAM created the key (ISO 8601).
                type: str
                required: true
"""
