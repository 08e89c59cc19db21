# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""canary_key_batch over placements of several canary accounts (O(accounts), O(placements[].account)), on a real moto server."""

from __future__ import annotations

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

from test_accounts import REGION, role_client  # noqa: E402

from ansible_collections.canarykeys.aws.plugins.modules import canary_key_batch  # noqa: E402

ACCOUNTS = [{"name": "eu", "role_arn": "arn:aws:iam::111111111111:role/canarykeys", "external_id": "ext-4711"},
            {"name": "us", "role_arn": "arn:aws:iam::222222222222:role/canarykeys"}]


def placement(host, account):
    return {"host": host, "path": "/home/deploy/.aws/credentials", "profile_name": "prod", "account": account}


def canary_hosts(aws, account_id):
    iam = role_client(aws, "iam", account_id)
    return sorted(user["UserName"] for user in iam.list_users()["Users"])


def test_each_placement_is_minted_in_the_account_it_names(aws, run_module):
    placements = [placement("web01", "us"), placement("web02", "eu"), placement("web03", "us"), placement("web04", "")]
    result = run_module(canary_key_batch, placements=placements, accounts=ACCOUNTS)

    outcomes = result["outcomes"]
    assert [(o["host"], o["account"], o["account_id"]) for o in outcomes] == [
        ("web01", "us", "222222222222"), ("web02", "eu", "111111111111"), ("web03", "us", "222222222222"),
        ("web04", "", "123456789012")]
    assert all(o["minted"] for o in outcomes)
    assert canary_hosts(aws, "222222222222") == ["web01-prod", "web03-prod"]
    assert canary_hosts(aws, "111111111111") == ["web02-prod"]
    assert [u["UserName"] for u in aws.client("iam", direct=True).list_users()["Users"]] == ["web04-prod"]
    # One AssumeRole per account, however the placements interleave.
    assert [c["action"] for c in aws.calls() if c["action"] == "AssumeRole"] == ["AssumeRole", "AssumeRole"]
    import boto3  # pylint: disable=import-outside-toplevel

    for outcome in outcomes:
        sts = boto3.client("sts", endpoint_url=aws.moto_url, region_name=REGION, aws_access_key_id=outcome["access_key_id"],
                           aws_secret_access_key=outcome["secret_access_key"])
        assert sts.get_caller_identity()["Account"] == outcome["account_id"]


def test_the_quota_of_every_account_is_checked_before_any_write(aws, run_module):
    placements = [placement("web01", "eu"), placement("web02", "us"), placement("web03", "us")]
    result = run_module(canary_key_batch, placements=placements, accounts=ACCOUNTS, user_quota=1)

    assert result["failed"] and "222222222222 (us)" in result["msg"] and "2" in result["msg"]
    assert "\n" not in result["msg"]
    # eu's placement would fit, but nothing was written anywhere.
    assert [c["action"] for c in aws.calls() if c["service"] == "iam" and not c["action"].startswith(("Get", "List"))] == []


def test_a_placement_naming_an_unlisted_account_fails_before_any_call(aws, run_module):
    result = run_module(canary_key_batch, placements=[placement("web01", "ap")], accounts=ACCOUNTS)
    assert result["failed"] and result["msg"] == "placements name the canary account(s) ap, which accounts does not list"
    assert aws.calls() == []
