# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local AWS of the plugin tests, defined once for every module and module_utils test.

local_aws             session   tools.local_aws.server.LocalAWS: moto_server on a free port behind the
                                counting proxy (``calls()``, ``count()``); one per session, so one per
                                pytest-xdist worker
aws                   function  local_aws, reset (no resource, no recorded call), with this process's AWS
                                environment isolated: no profile, key, token or endpoint inherited, the
                                credentials and config files pointed at files that do not exist, no
                                instance metadata, region us-east-1.  A module under test gets its
                                endpoint and credentials from its own options (or a test sets them).
operator_credentials  function  aws, plus the operator's AWS_* variables (endpoint, key, region): the
                                standard AWS environment, for a module run without connection options

Tests that need moto in-process instead (``moto.mock_aws``: the Lambda's, logs_subscription_filter's)
keep their own ``aws`` fixture, which overrides this one in their module.
"""

from __future__ import annotations

import pytest

from tools.local_aws.server import LocalAWS

REGION = "us-east-1"
# Whatever the developer's shell holds: any of them would point a module at another account.
INHERITED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_URL", "EC2_URL",
             "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY", "AWS_SECRET_KEY")


@pytest.fixture(scope="session")
def local_aws():
    with LocalAWS() as server:
        yield server


@pytest.fixture
def aws(local_aws, monkeypatch, tmp_path):  # pylint: disable=redefined-outer-name
    local_aws.reset()
    for name in INHERITED:
        monkeypatch.delenv(name, raising=False)
    # Never the developer's own AWS configuration: a stray profile would point the module elsewhere.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return local_aws


@pytest.fixture
def operator_credentials(aws, monkeypatch):  # pylint: disable=redefined-outer-name
    for name, value in aws.operator_env().items():
        monkeypatch.setenv(name, value)
    return aws
