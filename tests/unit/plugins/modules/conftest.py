# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the module tests. The detection modules' tests run each module's real ``main()`` in-process (real
botocore) against the local AWS of tests/unit/plugins/conftest.py (a moto server).

run_module       function  run_module(module, check_mode=False, diff=False, **args) -> the module's JSON result
make_function    function  make_function(name) -> the ARN of a new Lambda function on the local AWS
alert_function   function  the ARN of one such function, for rules and destinations
trail            function  the name of a trail (and its bucket) on the local AWS

The credentials modules' tests run their module through the ``ansible`` CLI instead (ansible_cli.py):

ansible_collections_path  module    a collections path holding this checkout
make_user        function  make_user() -> the pwd entry of a new throwaway OS user (root only; removed after)
user             function  one such user
"""

from __future__ import annotations

import io
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import zipfile

import pytest

from ansible.module_utils.testing import patch_module_args

import ansible_cli


@pytest.fixture
def run_module(operator_credentials, capsys):  # pylint: disable=unused-argument
    """The module sees the operator's standard AWS environment (endpoint, key, region), as under a role."""

    def run(module, check_mode=False, diff=False, **args):
        with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)):
            with pytest.raises(SystemExit):
                module.main()
        return json.loads(capsys.readouterr().out)

    return run


@pytest.fixture(scope="module")
def ansible_collections_path(tmp_path_factory):
    """A collections path holding this checkout, whatever `make setup` did or did not link."""
    root = tmp_path_factory.mktemp("collections")
    (root / "ansible_collections" / "canarykeys").mkdir(parents=True)
    (root / "ansible_collections" / "canarykeys" / "aws").symlink_to(ansible_cli.REPO)
    return root


@pytest.fixture
def make_user():
    """make_user() -> a throwaway OS user with a home the user can reach (the pytest tmp dirs are root-only)."""
    if os.geteuid() != 0:
        pytest.skip("creating an OS user and writing as another user needs root")
    if not shutil.which("useradd") or not shutil.which("su"):
        pytest.skip("useradd and su are needed to create a throwaway user")
    made = []

    def make():
        base = tempfile.mkdtemp(prefix="ck-home-")
        os.chmod(base, 0o755)
        name = "ckt" + secrets.token_hex(4)
        made.append((name, base))
        subprocess.run(["useradd", "-m", "-d", os.path.join(base, name), "-s", "/bin/sh", name],
                       check=True, capture_output=True)
        return pwd.getpwnam(name)

    yield make
    for name, base in made:
        subprocess.run(["userdel", name], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def user(make_user):  # pylint: disable=redefined-outer-name
    return make_user()


def _zip_bytes():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
    return buffer.getvalue()


@pytest.fixture
def make_function(operator_credentials):
    """make_function(name) -> the ARN of a new Lambda function (all share one execution role)."""
    role = operator_credentials.client("iam").create_role(
        RoleName="fn-role",
        AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
        }),
    )["Role"]["Arn"]

    def make(name):
        return operator_credentials.client("lambda").create_function(
            FunctionName=name, Runtime="python3.12", Role=role, Handler="handler.handler", Code={"ZipFile": _zip_bytes()},
        )["FunctionArn"]

    return make


@pytest.fixture
def alert_function(make_function):
    return make_function("forwarder")


@pytest.fixture
def trail(operator_credentials):
    """The name of a trail (and its bucket) on the local AWS."""
    operator_credentials.client("s3").create_bucket(Bucket="trail-bucket")
    operator_credentials.client("cloudtrail").create_trail(Name="org-audit-trail", S3BucketName="trail-bucket")
    return "org-audit-trail"
