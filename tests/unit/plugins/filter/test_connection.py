# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""canary_aws -> the module_defaults options of every role: set keys only, bad input refused by name."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.canarykeys.aws.plugins.filter.connection import FilterModule, aws_connection


def test_every_key_becomes_its_module_option():
    assert aws_connection({"profile": "canary", "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5000"}) == {
        "aws_profile": "canary", "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:5000"}


@pytest.mark.parametrize("value", [None, {}, {"profile": "", "region": None}])
def test_unset_or_empty_keys_leave_the_standard_environment(value):
    assert aws_connection(value) == {}


def test_one_key_alone():
    assert aws_connection({"region": "us-east-1", "profile": ""}) == {"region": "us-east-1"}


def test_a_misspelt_key_is_named():
    with pytest.raises(AnsibleFilterError, match="unknown key.*endpoint"):
        aws_connection({"endpoint": "http://x"})


def test_not_a_dictionary():
    with pytest.raises(AnsibleFilterError, match="must be a dictionary.*not str"):
        aws_connection("canary")


def test_a_value_that_is_not_a_string():
    with pytest.raises(AnsibleFilterError, match="canary_aws.region must be a string"):
        aws_connection({"region": ["eu-west-1"]})


def test_registered_under_its_documented_name():
    assert FilterModule().filters() == {"aws_connection": aws_connection}
