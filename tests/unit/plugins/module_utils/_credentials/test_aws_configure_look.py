# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A planted profile looks as if `aws configure` wrote it: the real AWS CLI writes the same bytes.

Each case runs the AWS CLI of the test environment with a temporary HOME, then makes the same change
with the plans credentials_profile applies, and compares the files byte for byte.  An attacker who
reads ~/.aws sees nothing a person running `aws configure` would not have left.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import config_plans, credentials_plans

AWS = shutil.which("aws", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("aws")
pytestmark = pytest.mark.skipif(AWS is None, reason="the AWS CLI is not installed in this environment")

KEY, SECRET = "AKIAQTESTKEY00000001", "FAKEKYsecret0000000000000000000000000000"


def aws_configure(home, profile, answers):
    """`aws configure --profile PROFILE`, answering its four prompts (key, secret, region, output).

    The default profile is set up by plain `aws configure`, as people do: it writes ``[default]`` in the
    config file (``--profile default`` would write ``[profile default]``, which botocore reads the same).
    """
    env = dict(os.environ, HOME=str(home), AWS_CONFIG_FILE=str(home / ".aws" / "config"),
               AWS_SHARED_CREDENTIALS_FILE=str(home / ".aws" / "credentials"))
    selector = [] if profile == "default" else ["--profile", profile]
    subprocess.run([AWS, "configure", *selector], input="\n".join(answers) + "\n", text=True, env=env,
                   check=True, capture_output=True, timeout=120)


def seed(home, profile, region="us-east-1"):
    """What credentials_profile writes for the same profile (the module's default output, json)."""
    aws_dir = home / ".aws"
    aws_dir.mkdir(exist_ok=True)
    credentials, config = aws_dir / "credentials", aws_dir / "config"
    plan = credentials_plans.plan_present(credentials.read_bytes() if credentials.exists() else None, "C", profile, KEY, SECRET)
    credentials.write_bytes(plan.data)
    plan = config_plans.plan_config_present(config.read_bytes() if config.exists() else None, "F", profile, region, "json")
    config.write_bytes(plan.data)


def files(home):
    return {name: (home / ".aws" / name).read_bytes() for name in ("credentials", "config")}


@pytest.mark.parametrize("profile", ["prod", "default"])
def test_a_new_file_is_what_aws_configure_writes(tmp_path, profile):
    by_cli, by_seed = tmp_path / "cli", tmp_path / "seed"
    by_cli.mkdir()
    by_seed.mkdir()
    aws_configure(by_cli, profile, [KEY, SECRET, "us-east-1", "json"])
    seed(by_seed, profile)
    assert files(by_seed) == files(by_cli)


def test_a_profile_added_to_a_file_aws_configure_wrote_is_what_it_would_add(tmp_path):
    by_cli, by_seed = tmp_path / "cli", tmp_path / "seed"
    for home in (by_cli, by_seed):
        home.mkdir()
        aws_configure(home, "default", ["AKIAQREAL00000000001", "realsecret", "eu-west-1", "json"])
    aws_configure(by_cli, "prod", [KEY, SECRET, "us-east-1", "json"])
    seed(by_seed, "prod")
    assert files(by_seed) == files(by_cli)
