# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one connection setting of the collection's roles, as module_defaults options.

Every role reads ``canary_aws`` in one place, its outer block:

    module_defaults:
      group/canarykeys.aws.aws: "{{ canary_aws | default({}) | canarykeys.aws.aws_connection }}"

so a misspelt key fails the play once, with its name, instead of being ignored.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.collections import is_string

DOCUMENTATION = r"""
name: aws_connection
short_description: The collection's AWS connection setting as module_defaults options
version_added: "0.1.0"
author: canarykeys.aws contributors
description:
  - Turns the role variable C(canary_aws) into the options of the C(group/canarykeys.aws.aws) module_defaults group
    (C(aws_profile), C(region), C(endpoint_url)).
  - A key left out, empty or null is dropped, so that the module falls back to the standard AWS environment
    (C(AWS_PROFILE), C(AWS_REGION), C(AWS_ENDPOINT_URL), instance roles).
  - An unknown key, or a value that is not a string, fails with one message naming it.
options:
  _input:
    description: The connection setting, a dictionary with the optional keys C(profile), C(region) and C(endpoint_url).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Every AWS module of the role talks to the canary account
  module_defaults:
    group/canarykeys.aws.aws: "{{ canary_aws | default({}) | canarykeys.aws.aws_connection }}"
  block:
    - name: List the canaries
      canarykeys.aws.canary_key_info:

# {'profile': 'canary-account', 'region': ''} | canarykeys.aws.aws_connection
# => {'aws_profile': 'canary-account'}
"""

RETURN = r"""
_value:
  description: The module options, with only the keys that were set.
  type: dict
  sample: {"aws_profile": "canary-account", "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5000"}
"""

# canary_aws key -> option of the amazon.aws / canarykeys.aws modules.
OPTIONS = {"profile": "aws_profile", "region": "region", "endpoint_url": "endpoint_url"}


def aws_connection(canary_aws):
    """``canary_aws`` as module_defaults options; unset or empty keys dropped."""
    if canary_aws is None:
        return {}
    if not isinstance(canary_aws, dict):
        raise AnsibleFilterError(
            "canary_aws must be a dictionary with the keys profile, region and endpoint_url, not %s"
            % type(canary_aws).__name__
        )
    unknown = sorted(str(key) for key in canary_aws if key not in OPTIONS)
    if unknown:
        raise AnsibleFilterError(
            "canary_aws has unknown key(s) %s: it takes profile, region and endpoint_url" % ", ".join(unknown)
        )
    options = {}
    for key, option in OPTIONS.items():
        value = canary_aws.get(key)
        if value is None or value == "":
            continue
        if not is_string(value):
            raise AnsibleFilterError("canary_aws.%s must be a string, not %s" % (key, type(value).__name__))
        options[option] = str(value)
    return options


class FilterModule:
    """The collection's connection filter."""

    def filters(self):
        return {"aws_connection": aws_connection}
