# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``account`` option of canary_key, canary_key_batch, canary_key_info and estate_lease, against a real moto server.

moto gives every account id its own IAM once a role of that account is assumed, so a canary minted through
``account.role_arn`` must live in that account and nowhere else, and its key must answer for that account.
Calls are counted (and their access key ids seen) at the wire by the local AWS proxy.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import urllib.request

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")

import boto3  # noqa: E402  pylint: disable=wrong-import-position
import botocore.exceptions  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.canarykeys.aws.plugins.doc_fragments.account import ModuleDocFragment  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.module_utils import _lease  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.account import ACCOUNT_SPEC  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.modules import (  # noqa: E402
    canary_key, canary_key_batch, canary_key_info, estate_lease,
)

REPO = pathlib.Path(__file__).resolve().parents[4]
REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
ACCOUNT_B = "222222222222"
ROLE_B = f"arn:aws:iam::{ACCOUNT_B}:role/canarykeys"
ENTRY_B = {"name": "b", "role_arn": ROLE_B, "external_id": "ext-4711"}
PLACEMENT = {"host": "web01", "path": "/home/deploy/.aws/credentials", "profile_name": "prod", "reminder": "web01 deploy"}


@pytest.fixture(name="run")
def fixture_run(run_module):
    """modules/conftest.py's run_module (the operator's standard AWS environment); (result, what the module printed)."""

    def run(module, check_mode=False, **args):
        result = run_module(module, check_mode=check_mode, **args)
        return result, json.dumps(result)

    return run


def role_client(aws, service, account_id=ACCOUNT_B):
    """A client in ``account_id``, through a role of it, as the test's own view of that account."""
    credentials = aws.client("sts", direct=True).assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/test-view", RoleSessionName="test")["Credentials"]
    return boto3.client(service, endpoint_url=aws.moto_url, region_name=REGION, aws_access_key_id=credentials["AccessKeyId"],
                        aws_secret_access_key=credentials["SecretAccessKey"], aws_session_token=credentials["SessionToken"])


def iam_writes(aws, since=0) -> list:
    return [c["action"] for c in aws.calls()[since:] if c["service"] == "iam" and not re.match(r"(Get|List)", c["action"])]


def temporary_key_ids(aws, since=0) -> set:
    """The access key ids of the temporary credentials the module used (moto's start with ASIA)."""
    return {c["access_key_id"] for c in aws.calls()[since:] if (c["access_key_id"] or "").startswith("ASIA")}


def test_the_fragment_documents_the_argument_spec():
    import yaml  # pylint: disable=import-outside-toplevel

    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]["account"]["suboptions"]
    assert set(documented) == set(ACCOUNT_SPEC)
    for name, spec in ACCOUNT_SPEC.items():
        assert documented[name]["type"] == spec["type"] and documented[name].get("default") == spec.get("default")


def test_a_batch_mints_in_the_assumed_account_only(aws, run):
    result, printed = run(canary_key_batch, placements=[PLACEMENT], account=ENTRY_B)

    [outcome] = result["outcomes"]
    assert outcome["minted"] and outcome["account"] == "b" and outcome["account_id"] == ACCOUNT_B
    assert outcome["user_arn"].startswith(f"arn:aws:iam::{ACCOUNT_B}:user/")
    # One AssumeRole, made with the module's own credentials; every IAM call with the role's.
    assert [c["access_key_id"] for c in aws.calls() if c["action"] == "AssumeRole"] == ["testing"]
    assert {c["access_key_id"] for c in aws.calls() if c["service"] == "iam"} == temporary_key_ids(aws)
    assert role_client(aws, "iam").get_user(UserName=outcome["user_name"])["User"]["Arn"] == outcome["user_arn"]
    with pytest.raises(botocore.exceptions.ClientError, match="NoSuchEntity"):
        aws.client("iam", direct=True).get_user(UserName=outcome["user_name"])
    # The planted key answers for the canary account.
    sts = boto3.client("sts", endpoint_url=aws.moto_url, region_name=REGION, aws_access_key_id=outcome["access_key_id"],
                       aws_secret_access_key=outcome["secret_access_key"])
    assert sts.get_caller_identity()["Account"] == ACCOUNT_B
    # The temporary credentials never leave the module.
    assert not any(key_id in printed for key_id in temporary_key_ids(aws))
    assert "ASIA" not in printed


def test_the_info_of_an_account_lists_its_canaries_only(aws, run):
    minted, _printed = run(canary_key_batch, placements=[PLACEMENT], account=ENTRY_B)
    user_name = minted["outcomes"][0]["user_name"]
    mark = len(aws.calls())

    info, printed = run(canary_key_info, account=ENTRY_B)

    [canary] = info["canaries"]
    assert canary["user_name"] == user_name and canary["account"] == "b" and canary["account_id"] == ACCOUNT_B
    assert [(p["account"], p["account_id"]) for p in info["placements"]] == [("b", ACCOUNT_B)]
    # account_id comes from the user's ARN: no extra call, IAM or STS, beyond the one AssumeRole.
    assert [c["action"] for c in aws.calls()[mark:] if c["service"] == "sts"] == ["AssumeRole"]
    assert not any(key_id in printed for key_id in temporary_key_ids(aws, mark))

    default, _printed = run(canary_key_info)
    assert default["canaries"] == [] and default["placements"] == []


def test_canary_key_result_names_the_account(aws, run):
    result, _printed = run(canary_key, **PLACEMENT, account=ENTRY_B)
    assert result["minted"] and (result["account"], result["account_id"]) == ("b", ACCOUNT_B)

    own, _printed = run(canary_key, **PLACEMENT)
    assert own["minted"] and (own["account"], own["account_id"]) == ("", DEFAULT_ACCOUNT)
    assert own["user_arn"].startswith(f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/")


def lease_args(pid, **extra):
    return dict(holder_pid=pid, holder_pid_start=_lease.process_start(pid), play="test", **extra)


def test_a_lease_in_one_account_does_not_block_another(aws, run):
    taken_b, _printed = run(estate_lease, account=ENTRY_B, **lease_args(os.getpid()))
    assert taken_b["held_by_us"] and taken_b["account_id"] == ACCOUNT_B and taken_b["account"] == "b"
    assert taken_b["policy_arn"].startswith(f"arn:aws:iam::{ACCOUNT_B}:policy/")

    # Another live run: the default account's lease is free, account B's is held.
    taken_a, _printed = run(estate_lease, **lease_args(os.getppid()))
    assert taken_a["held_by_us"] and taken_a["account_id"] == DEFAULT_ACCOUNT and taken_a["account"] == ""
    refused, _printed = run(estate_lease, account=ENTRY_B, **lease_args(os.getppid()))
    assert refused["failed"] and "canary account b" in refused["msg"]
    assert role_client(aws, "iam").get_policy(PolicyArn=taken_b["policy_arn"])["Policy"]["PolicyName"] == "estate-change-lock"


def test_an_account_reached_through_a_profile(aws, run, tmp_path, monkeypatch):
    credentials = aws.client("sts", direct=True).assume_role(RoleArn=ROLE_B, RoleSessionName="profile")["Credentials"]
    (tmp_path / "credentials").write_text(
        "[canary-b]\n"
        f"aws_access_key_id = {credentials['AccessKeyId']}\n"
        f"aws_secret_access_key = {credentials['SecretAccessKey']}\n"
        f"aws_session_token = {credentials['SessionToken']}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    mark = len(aws.calls())

    result, printed = run(canary_key, **PLACEMENT, account={"name": "b", "profile": "canary-b"})

    assert result["minted"] and (result["account"], result["account_id"]) == ("b", ACCOUNT_B)
    assert {c["access_key_id"] for c in aws.calls()[mark:]} == {credentials["AccessKeyId"]}
    assert role_client(aws, "iam").get_user(UserName=result["user_name"])
    assert credentials["SecretAccessKey"] not in printed and credentials["SessionToken"] not in printed


@pytest.mark.parametrize("entry, message", [
    ({"name": "b", "role_arn": ROLE_B, "profile": "canary-b"}, "canary account b: set role_arn or profile, not both"),
    ({"name": "b", "role_arn": "arn:aws:iam::2222:role/x"}, "canary account b: role_arn arn:aws:iam::2222:role/x is not an IAM role ARN"),
    ({"name": "b", "profile": "nowhere"}, "canary account b: AWS profile nowhere is not in the AWS config or credentials files"),
    ({"external_id": "ext-4711"}, "the canary account: external_id is used with role_arn only"),
])
def test_a_bad_entry_fails_in_one_line_before_any_call(aws, run, entry, message):
    result, _printed = run(canary_key_batch, placements=[PLACEMENT], account=entry)
    assert result["failed"] and result["msg"].startswith(message) and "\n" not in result["msg"]
    assert aws.calls() == []


def moto_auth(aws, count: str):
    """Turn moto's IAM authorisation on ("0": every call checked) or off ("inf")."""
    urllib.request.urlopen(urllib.request.Request(f"{aws.moto_url}/moto-api/reset-auth", data=count.encode(), method="POST",
                                                  headers={"Content-Type": "text/plain"}),
                           timeout=10).close()


def test_a_refused_assume_role_fails_in_one_line_and_writes_nothing(aws, run):
    iam = aws.client("iam", direct=True)
    iam.create_user(UserName="controller")  # no policy: it may not assume any role
    key = iam.create_access_key(UserName="controller")["AccessKey"]
    mark = len(aws.calls())
    moto_auth(aws, "0")
    try:
        result, printed = run(canary_key_batch, placements=[PLACEMENT], account=ENTRY_B,
                              access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])
    finally:
        moto_auth(aws, "inf")
    assert result["failed"] and "\n" not in result["msg"]
    assert result["msg"].startswith(f"Failed to assume role {ROLE_B} for canary account b: AccessDenied")
    assert result["error_code"] == "AccessDenied"
    assert [c["action"] for c in aws.calls()[mark:]] == ["AssumeRole"] and iam_writes(aws, mark) == []
    assert key["SecretAccessKey"] not in printed


def test_check_mode_assumes_the_role_and_writes_nothing(aws, run):
    result, printed = run(canary_key_batch, check_mode=True, placements=[PLACEMENT], account=ENTRY_B)

    [outcome] = result["outcomes"]
    assert outcome["minted"] and outcome["access_key_id"] is None and "secret_access_key" not in outcome
    # No user yet: the account id is the assumed role's, with no GetCallerIdentity.
    assert (outcome["account"], outcome["account_id"]) == ("b", ACCOUNT_B)
    assert [c["action"] for c in aws.calls() if c["service"] == "sts"] == ["AssumeRole"]
    assert iam_writes(aws) == []
    assert "ASIA" not in printed


def pinned_role_policy(account_id=ACCOUNT_B, iam_path="/") -> str:
    """docs/controller-policy.json pinned to one canary account and its IAM path, as docs/iam_permissions.md's sed does."""
    text = (REPO / "docs" / "controller-policy.json").read_text()
    return (text.replace("arn:aws:iam::*:user/*", f"arn:aws:iam::{account_id}:user{iam_path}*")
            .replace("arn:aws:iam::*:policy/", f"arn:aws:iam::{account_id}:policy/"))


def documented_json(heading_sid: str) -> dict:
    """The JSON block of docs/iam_permissions.md whose statement has this Sid."""
    text = (REPO / "docs" / "iam_permissions.md").read_text()
    blocks = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]
    return next(block for block in blocks if block["Statement"][0].get("Sid") == heading_sid)


def test_the_documented_role_allows_every_call_the_modules_make_in_the_account(aws, run):
    """moto checks policy grammar but evaluates neither resources nor tag conditions: the actions are what is checked."""
    iam_b = role_client(aws, "iam")
    policy = pinned_role_policy(iam_path="/canaries/")
    iam_b.create_policy(PolicyName="canarykeys", PolicyDocument=policy)
    iam_b.create_role(RoleName="canarykeys", AssumeRolePolicyDocument=json.dumps(documented_json("TheCanaryController")))
    aws.client("iam", direct=True).create_policy(PolicyName="reach", PolicyDocument=json.dumps(documented_json("ReachTheCanaryAccounts")))
    allowed = {action for statement in json.loads(policy)["Statement"] if statement["Effect"] == "Allow"
               for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}
    naming = {"iam_path": "/canaries/", "deny_all": True}
    mark = len(aws.calls())

    run(estate_lease, account=ENTRY_B, **lease_args(os.getpid()))
    minted, _printed = run(canary_key_batch, account=ENTRY_B, placements=[PLACEMENT], **naming)
    run(canary_key_batch, account=ENTRY_B, placements=[PLACEMENT], **naming)  # the profile holds no key: an orphan
    run(canary_key_info, account=ENTRY_B, last_used=True)
    run(canary_key_info, account=ENTRY_B, key_source="list_access_keys")
    retired, _printed = run(canary_key, account=ENTRY_B, state="absent", **PLACEMENT, **naming)
    run(estate_lease, account=ENTRY_B, state="absent", **lease_args(os.getpid()))

    assert minted["outcomes"][0]["user_arn"].startswith(f"arn:aws:iam::{ACCOUNT_B}:user/canaries/") and retired["user_deleted"]
    called = {f"{c['service']}:{c['action']}" for c in aws.calls()[mark:] if c["access_key_id"] in temporary_key_ids(aws, mark)}
    assert {"iam:CreateUser", "iam:CreateAccessKey", "iam:DeleteAccessKey", "iam:DeleteUser", "iam:CreatePolicy",
            "iam:DeletePolicy", "iam:GetAccountAuthorizationDetails", "iam:PutUserPolicy"} <= called
    assert called <= allowed, called - allowed
