# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the credentials-file tests.

botocore_reads  session  botocore_reads(data) -> what botocore's raw_config_parse reads from these
                         bytes, through a real file as the AWS CLI would (session-scoped so that
                         hypothesis tests can use it)
home            function an empty home directory in the test's tmp dir
"""

from __future__ import annotations

import os
import tempfile

import pytest
from botocore.configloader import raw_config_parse


def _botocore_reads(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "credentials")
        with open(path, "wb") as handle:
            handle.write(data)
        return raw_config_parse(path)


@pytest.fixture(scope="session", name="botocore_reads")
def fixture_botocore_reads():
    return _botocore_reads


@pytest.fixture(name="home")
def fixture_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return home
