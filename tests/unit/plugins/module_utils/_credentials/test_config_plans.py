# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plans for the config file: the region of a canary profile, never a section set up by someone else."""

from __future__ import annotations


import pytest

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import config_plans as config

# ------------------------------------------------------------------------------ config file


def test_config_section_is_added_and_removed_exactly(botocore_reads):
    original = b"[default]\r\nregion = eu-west-1\r\noutput = json"
    plan = config.plan_config_present(original, "C", "prod", "us-east-1")
    # As `aws configure set region us-east-1 --profile prod` writes it: no blank line, a final newline.
    assert plan.data == original + b"\r\n[profile prod]\r\nregion = us-east-1\r\n"
    assert botocore_reads(plan.data)["profile prod"] == {"region": "us-east-1"}
    assert not config.plan_config_present(plan.data, "C", "prod", "us-east-1").changed
    assert config.plan_config_absent(plan.data, "C", "prod", "us-east-1").data == original + b"\r\n"


def test_config_section_with_output_as_aws_configure_writes_it(botocore_reads):
    # `aws configure --profile prod` answering us-east-1 and json, on a new file and on one of its own.
    plan = config.plan_config_present(None, "C", "prod", "us-east-1", "json")
    assert plan.data == b"[profile prod]\nregion = us-east-1\noutput = json\n"
    original = b"[default]\nregion = eu-west-1\noutput = json\n"
    plan = config.plan_config_present(original, "C", "prod", "us-east-1", "json")
    assert plan.data == original + b"[profile prod]\nregion = us-east-1\noutput = json\n"
    assert botocore_reads(plan.data)["profile prod"] == {"region": "us-east-1", "output": "json"}
    assert not config.plan_config_present(plan.data, "C", "prod", "us-east-1", "json").changed
    assert config.plan_config_absent(plan.data, "C", "prod", "us-east-1", "json").data == original
    # A section that only looks like ours with another output is someone's.
    assert not config.plan_config_absent(plan.data.replace(b"= json\n", b"= text\n"), "C", "prod", "us-east-1", "json").changed


def test_config_default_profile_uses_the_default_section():
    plan = config.plan_config_present(None, "C", "default", "us-east-1")
    assert plan.data == b"[default]\nregion = us-east-1\n"


def test_config_sections_with_other_content_are_left_alone():
    sso = b'[profile "prod"]\nsso_session = corp\nregion = eu-west-1\n'
    plan = config.plan_config_present(sso, "C", "prod", "us-east-1")
    assert not plan.changed and plan.left_alone and "left alone" in plan.msg
    assert not config.plan_config_present(b"[profile prod]\nregion = us-east-1\n", "C", "prod", "us-east-1").left_alone
    plan = config.plan_config_absent(sso, "C", "prod", "eu-west-1")
    assert not plan.changed and "left alone" in plan.msg
    commented = b"[profile prod]\n# mine\nregion = us-east-1\n"
    assert not config.plan_config_absent(commented, "C", "prod", "us-east-1").changed
    assert not config.plan_config_absent(b"[profile prod]\nregion = eu-west-1\n", "C", "prod", "us-east-1").changed


def test_config_empty_section_gets_the_region():
    plan = config.plan_config_present(b"[profile prod]\n[x]\na=1\n", "C", "prod", "us-east-1")
    assert plan.data == b"[profile prod]\nregion = us-east-1\n[x]\na=1\n"


@pytest.mark.parametrize("profile, expected", [
    ("default", b"[default]\nregion = us-east-1\noutput =\n"),
    ("prod", b"[default]\nregion =\noutput =\n[profile prod]\nregion = us-east-1\n"),
])
def test_config_entries_with_empty_settings_are_merged(botocore_reads, profile, expected):
    original = b"[default]\nregion =\noutput =\n"
    plan = config.plan_config_present(original, "C", profile, "us-east-1")
    assert plan.changed and not plan.left_alone and plan.data == expected
    read = botocore_reads(plan.data)
    assert read["default"]["output"] == "" and read[config_name(profile)]["region"] == "us-east-1"
    assert not config.plan_config_present(plan.data, "C", profile, "us-east-1").changed
    if profile != "default":
        assert config.plan_config_absent(plan.data, "C", profile, "us-east-1").data == original


def config_name(profile):
    return "default" if profile == "default" else "profile " + profile


def test_config_default_section_is_validated_and_kept(botocore_reads):
    # Unlike the credentials file, a config [DEFAULT] only lends settings such as the region.
    original = b"[DEFAULT]\nregion = eu-west-1\n\n[profile other]\noutput = json\n"
    plan = config.plan_config_present(original, "C", "prod", "us-east-1")
    assert plan.data == original + b"\n[profile prod]\nregion = us-east-1\n"
    assert botocore_reads(plan.data)["profile prod"] == {"region": "us-east-1"}
