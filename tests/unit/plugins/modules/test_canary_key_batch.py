# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""canarykeys.aws.canary_key_batch against a real moto server, IAM calls counted at the wire.

The batch must decide every placement exactly as canary_key decides one (same IAM calls, same
refusals, same results), report a failed placement in its own outcome without stopping the others,
and print no secret anywhere but in the outcomes of the keys it minted.
"""

from __future__ import annotations

import collections
import json
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]

pytest.importorskip("boto3")
pytest.importorskip("moto")

from ansible.module_utils.testing import patch_module_args  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.canarykeys.aws.plugins.module_utils._iam import estate, listed  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping as cm  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.modules import canary_key, canary_key_batch  # noqa: E402
# The local AWS and a clean AWS environment exactly as canary_key's own tests have them.

REGION = "us-east-1"
PLACEMENTS = [
    {"host": "web01", "path": "/home/deploy/.aws/credentials", "profile_name": "prod", "reminder": "web01 deploy"},
    {"host": "web01", "path": "/root/.aws/credentials", "profile_name": "backup", "reminder": "web01 root"},
    {"host": "web02", "path": "/home/deploy/.aws/credentials", "profile_name": "prod", "reminder": "web02 deploy"},
    {"host": "laptop-alice", "path": "/home/alice/.aws/credentials", "profile_name": "deploy"},
]


@pytest.fixture(name="run")
def fixture_run(aws, capsys):
    """Run a module's main() in-process; returns (result, everything it printed)."""

    def run(module=canary_key_batch, check_mode=False, **args):
        args = dict(args, region=REGION, endpoint_url=aws.endpoint_url, access_key="testing", secret_key="testing",
                    _ansible_check_mode=check_mode)
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                module.main()
        out, err = capsys.readouterr()
        return json.loads(out), out + err

    return run


def iam_writes(aws, since):
    return collections.Counter(c["action"] for c in aws.calls()[since:] if c["service"] == "iam" and not re.match(r"(Get|List)", c["action"]))


def test_one_run_ensures_every_placement_and_hands_each_secret_out_once(aws, run):
    iam = aws.client("iam", direct=True)
    mark = len(aws.calls())
    result, printed = run(placements=PLACEMENTS)

    outcomes = result["outcomes"]
    assert [(o["host"], o["path"], o["profile"]) for o in outcomes] == [(p["host"], p["path"], p["profile_name"]) for p in PLACEMENTS]
    assert all(o["minted"] and o["changed"] and not o.get("failed") for o in outcomes)
    assert result["changed"] is True and result["summary"] == {"placements": 4, "changed": 4, "minted": 4, "failed": 0}
    # Per placement, exactly what canary_key writes for one.
    assert iam_writes(aws, mark) == {"CreateUser": 4, "CreateAccessKey": 4, "TagUser": 4}
    for outcome in outcomes:
        assert printed.count(outcome["secret_access_key"]) == 1
        keys = iam.list_access_keys(UserName=outcome["user_name"])["AccessKeyMetadata"]
        assert [k["AccessKeyId"] for k in keys] == [outcome["access_key_id"]]
        tags = iam.list_user_tags(UserName=outcome["user_name"])["Tags"]
        assert cm.mapping_from_tags(tags)["host"] == outcome["host"]
        assert cm.planted_key_from_tags(tags)[0] == outcome["access_key_id"]
    assert len({o["user_name"] for o in outcomes}) == 4

    # The hosts now hold their keys: the same batch changes nothing and writes nothing.
    held = [dict(p, planted_key_id=o["access_key_id"]) for p, o in zip(PLACEMENTS, outcomes)]
    mark = len(aws.calls())
    again, printed = run(placements=held)
    assert again["changed"] is False and not any(o["minted"] for o in again["outcomes"])
    assert iam_writes(aws, mark) == {}
    assert all(o["secret_access_key"] not in printed for o in outcomes)


def test_a_refused_placement_fails_alone(aws, run):
    iam = aws.client("iam", direct=True)
    iam.create_user(UserName="ci-deploy")
    real = iam.create_access_key(UserName="ci-deploy")["AccessKey"]
    placements = [PLACEMENTS[0], dict(PLACEMENTS[3], planted_key_id=real["AccessKeyId"]), PLACEMENTS[2]]

    result, printed = run(placements=placements)

    first, refused, third = result["outcomes"]
    assert first["minted"] and third["minted"]
    assert refused["failed"] is True and refused["minted"] is False and "secret_access_key" not in refused
    assert "refusing to mint" in refused["msg"] and real["AccessKeyId"] in refused["msg"]
    assert result["summary"]["failed"] == 1
    # The task did not fail: the role fails only the host of the refused placement, after planting the others.
    assert "failed" not in result
    assert real["SecretAccessKey"] not in printed
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName="ci-deploy")["AccessKeyMetadata"]] == [real["AccessKeyId"]]


def test_check_mode_writes_nothing(aws, run):
    mark = len(aws.calls())
    result, _printed = run(placements=PLACEMENTS, check_mode=True)
    assert result["changed"] is True and all(o["minted"] and o["access_key_id"] is None for o in result["outcomes"])
    assert all("secret_access_key" not in o for o in result["outcomes"])
    assert iam_writes(aws, mark) == {}


def test_rotation_in_two_batched_steps(aws, run):
    iam = aws.client("iam", direct=True)
    seeded, _printed = run(placements=PLACEMENTS[:2])
    held = [dict(p, planted_key_id=o["access_key_id"]) for p, o in zip(PLACEMENTS[:2], seeded["outcomes"])]

    begun, printed = run(placements=held, action="begin")
    assert [o["rotation"] for o in begun["outcomes"]] == ["started", "started"]
    assert all(printed.count(o["secret_access_key"]) == 1 for o in begun["outcomes"])
    # Only the first host took its new key: the second placement rolls back.
    confirmed = [dict(held[0], planted_key_id=begun["outcomes"][0]["access_key_id"], rotated_key_id=held[0]["planted_key_id"]),
                 dict(held[1], rotated_key_id=held[1]["planted_key_id"])]
    finished, _printed = run(placements=confirmed, action="finish")
    assert [o["rotation"] for o in finished["outcomes"]] == ["completed", "rolled_back"]
    for outcome, kept in zip(finished["outcomes"], (begun["outcomes"][0]["access_key_id"], held[1]["planted_key_id"])):
        assert outcome["access_key_id"] == kept
        assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName=outcome["user_name"])["AccessKeyMetadata"]] == [kept]
        assert cm.planted_key_from_tags(iam.list_user_tags(UserName=outcome["user_name"])["Tags"])[0] == kept


def test_a_rotation_on_the_bulk_reads_listing_makes_only_its_writes(aws, run):
    iam = aws.client("iam", direct=True)
    seeded, _printed = run(placements=PLACEMENTS[:2])
    canaries = {c["user_name"]: c for c in estate.list_estate(iam, key_source=estate.LIST_ACCESS_KEYS)["canaries"]}
    held = [dict(p, planted_key_id=o["access_key_id"], inline_policies=[], listing=listed.listing_of(canaries[o["user_name"]]))
            for p, o in zip(PLACEMENTS[:2], seeded["outcomes"])]
    mark = len(aws.calls())
    begun, _printed = run(placements=held, action="begin")
    assert [o["rotation"] for o in begun["outcomes"]] == ["started", "started"]
    assert collections.Counter(c["action"] for c in aws.calls()[mark:] if c["service"] == "iam") == {"CreateAccessKey": 2}
    confirmed = [dict(p, planted_key_id=o["access_key_id"], rotated_key_id=p["planted_key_id"], listing=o["listing"])
                 for p, o in zip(held, begun["outcomes"])]
    mark = len(aws.calls())
    finished, _printed = run(placements=confirmed, action="finish")
    assert [o["rotation"] for o in finished["outcomes"]] == ["completed", "completed"]
    assert collections.Counter(c["action"] for c in aws.calls()[mark:] if c["service"] == "iam") == {"DeleteAccessKey": 2, "TagUser": 2}
    for outcome in finished["outcomes"]:
        assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName=outcome["user_name"])["AccessKeyMetadata"]] == [outcome["access_key_id"]]
        assert cm.planted_key_from_tags(iam.list_user_tags(UserName=outcome["user_name"])["Tags"])[0] == outcome["access_key_id"]


@pytest.mark.parametrize("args, message", [
    ({"user_name_template": "{host}-canary"}, "canary"),
    ({"concurrency": 0}, "concurrency"),
    ({"action": "finish"}, "rotated_key_id is required"),
])
def test_bad_options_fail_before_any_call(aws, run, args, message):
    mark = len(aws.calls())
    result, _printed = run(placements=PLACEMENTS[:1], **args)
    assert result["failed"] is True and message in result["msg"]
    assert aws.calls()[mark:] == []


def test_same_decisions_as_canary_key_one_by_one(aws, run):
    """The batch is canary_key run for each placement: the same outcome fields for the same IAM state."""
    single, _printed = run(module=canary_key, **PLACEMENTS[0])
    held = dict(PLACEMENTS[0], planted_key_id=single["access_key_id"])
    one, _printed = run(module=canary_key, **held)
    batch, _printed = run(placements=[held])
    [outcome] = batch["outcomes"]
    assert {k: v for k, v in outcome.items() if k not in ("host", "path", "profile")} == {
        k: v for k, v in one.items() if k not in ("invocation",)}


def test_each_placement_may_name_its_user_its_own_way(aws, run):
    placements = [dict(PLACEMENTS[0]), dict(PLACEMENTS[3], user_name_template="{user}")]
    outcomes = run(placements=placements)[0]["outcomes"]
    assert [o["user_name"] for o in outcomes] == ["web01-prod", "alice"]
    refused = run(placements=[dict(PLACEMENTS[1], user_name_template="{host}-canary")])[0]
    assert refused["failed"] is True and "contains 'canary'" in refused["msg"]


def test_the_inline_policies_the_bulk_read_saw_spare_the_read(aws, run):
    iam = aws.client("iam", direct=True)
    seeded = run(placements=PLACEMENTS[:2], deny_all=True)[0]["outcomes"]
    assert all(iam.list_user_policies(UserName=o["user_name"])["PolicyNames"] == ["default"] for o in seeded)
    # canary_key_info lists them from its bulk read (GetAccountAuthorizationDetails' UserPolicyList).
    listed = estate.list_estate(iam, key_source=estate.LIST_ACCESS_KEYS)["canaries"]
    assert {c["user_name"]: c["inline_policies"] for c in listed} == {o["user_name"]: ["default"] for o in seeded}
    held = [dict(p, planted_key_id=o["access_key_id"], inline_policies=["default"]) for p, o in zip(PLACEMENTS, seeded)]
    mark = len(aws.calls())
    result = run(placements=held)[0]
    assert result["summary"]["changed"] == 2 and result["summary"]["minted"] == 0
    actions = collections.Counter(c["action"] for c in aws.calls()[mark:] if c["service"] == "iam")
    # GetAccountSummary: placements given without their user_name may each create a user (the quota check).
    assert actions == {"GetUser": 2, "ListAccessKeys": 2, "DeleteUserPolicy": 2, "GetAccountSummary": 1}
    assert all(iam.list_user_policies(UserName=o["user_name"])["PolicyNames"] == [] for o in seeded)
    # Migrated: told so, a re-run calls nothing it did not call before.
    mark = len(aws.calls())
    assert run(placements=[dict(p, inline_policies=[]) for p in held])[0]["changed"] is False
    actions = collections.Counter(c["action"] for c in aws.calls()[mark:] if c["service"] == "iam")
    assert actions == {"GetUser": 2, "ListAccessKeys": 2, "GetAccountSummary": 1}


def test_a_user_named_under_an_earlier_naming_keeps_its_name_when_its_host_lost_the_key(aws, run):
    iam = aws.client("iam", direct=True)
    placement = PLACEMENTS[0]
    tags = cm.mapping_tags(placement["host"], placement["path"], placement["profile_name"], "", "", "", 1)
    iam.create_user(UserName="web01-terraform", Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    [outcome] = run(placements=[dict(placement, user_name="web01-terraform")])[0]["outcomes"]
    assert outcome["minted"] and outcome["user_name"] == "web01-terraform" and outcome["user_created"] is False
    assert "web01-prod" not in {u["UserName"] for u in iam.list_users()["Users"]}
    # A listed name that is not this placement's is not taken: the placement's own names are.
    [other] = run(placements=[dict(PLACEMENTS[2], user_name="web01-terraform")])[0]["outcomes"]
    assert other["user_name"] == "web02-prod"


def test_a_batch_that_would_pass_the_user_quota_stops_before_any_write(aws, run):
    iam = aws.client("iam", direct=True)
    for index in range(3):  # the account's other users
        iam.create_user(UserName=f"someone-{index}")
    mark = len(aws.calls())
    result, _printed = run(placements=PLACEMENTS, user_quota=6)
    assert result["failed"] is True
    assert result["msg"].startswith("Account 123456789012 has 3 IAM users and this run asks for up to 4 new canary users, "
                                    "past IAM's quota of 6 users per account; nothing was changed.")
    assert "\n" not in result["msg"]
    assert iam_writes(aws, mark) == {}
    # A placement whose user the bulk read named counts as no new user: the same four fit once two are known.
    first, _printed = run(placements=PLACEMENTS[:2], user_quota=6)
    assert not first.get("failed") and first["summary"]["minted"] == 2
    known = [dict(placement, user_name=outcome["user_name"]) for placement, outcome in zip(PLACEMENTS[:2], first["outcomes"])]
    second, _printed = run(placements=known + PLACEMENTS[2:], user_quota=7)
    assert not second.get("failed"), second.get("msg")
    # IAM's own quota (5,000 in moto as in AWS) applies when none is set.
    third, _printed = run(placements=PLACEMENTS[2:])
    assert not third.get("failed")
