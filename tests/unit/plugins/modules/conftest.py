# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the detection modules' tests, which run each module's real ``main()`` in-process (real
botocore) against the local AWS of tests/unit/plugins/conftest.py (a moto server).

run_module       function  run_module(module, check_mode=False, diff=False, **args) -> the module's JSON result
make_function    function  make_function(name) -> the ARN of a new Lambda function on the local AWS
alert_function   function  the ARN of one such function, for rules and destinations
trail            function  the name of a trail (and its bucket) on the local AWS
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from ansible.module_utils.testing import patch_module_args


@pytest.fixture
def run_module(operator_credentials, capsys):  # pylint: disable=unused-argument
    """The module sees the operator's standard AWS environment (endpoint, key, region), as under a role."""

    def run(module, check_mode=False, diff=False, **args):
        with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)):
            with pytest.raises(SystemExit):
                module.main()
        return json.loads(capsys.readouterr().out)

    return run


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
