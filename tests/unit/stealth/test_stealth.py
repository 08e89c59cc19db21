# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stealth: what the seed produces for a realistic 50-host estate, put through the heuristics attackers run.

The estate: 26 web servers (the app user's ``prod`` with a region, root's ``backup``), 10 of them named
the way clouds name hosts (UUIDs, EC2 instance ids, hashes); 20 laptops whose owners log in as
themselves (a person's name, the seed role's laptop default ``{user}``); 4 build hosts of a group that
sets its own template.  One laptop owner already has a real IAM user of that name.

The seed's own code makes it, against the local AWS (moto, IAM authorisation enforced, denials worded
as AWS words them): canary_key_batch's ensure over every placement, then credentials_profile's plans
write each host's files.  Every planted key then makes the call an attacker makes to read its ARN.
The heuristics are in stealth_heuristics.py; docs/threat_model.md says what each defends against.
"""

from __future__ import annotations

import collections

import boto3
import botocore.exceptions
import pytest

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import config_plans, credentials_plans
from ansible_collections.canarykeys.aws.plugins.module_utils._iam import batch, naming
from tools.local_aws.server import LocalAWS

import stealth_heuristics as heuristics

ACCOUNT = "123456789012"
PEOPLE = ["mira", "tomas", "ana.silva", "jdoe", "kwame", "li.wei", "sofia", "noah", "priya", "erik.larsen",
          "fatima", "oliver", "yuki", "mateo", "chloe", "arjun", "lena", "omar", "grace", "ivan"]
ODD_HOSTS = ["6f1c2a9e-3b4d-4c5e-8f90-1a2b3c4d5e6f", "0b9d4a7e-77c1-4f2e-9a3b-5c6d7e8f9a0b", "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
             "c0ffee00-1234-4abc-8def-0123456789ab", "i-0abc1234def567890", "i-0fedcba9876543210.ec2.internal",
             "i-0123456789abcdef0", "i-0a1b2c3d4e5f60718", "d41d8cd98f00b204e9800998ecf8427e", "worker-3f9a2b7c1d"]
WEB_HOSTS = [f"web{index:02d}.prod.example.com" for index in range(1, 17)] + ODD_HOSTS
LAPTOPS = {f"lap-{login.replace('.', '-')}": login for login in PEOPLE}
BUILD_HOSTS = [f"build{index}" for index in range(1, 5)]
BUILD_TEMPLATE = "svc-{host}-{purpose}"


def _placements():
    """(group, request) for every placement of the estate, as the seed role's defaults and group vars make them."""
    for host in WEB_HOSTS:
        yield "webservers", {"host": host, "path": "/home/deploy/.aws/credentials", "profile_name": "prod", "region": "us-east-1"}
        yield "webservers", {"host": host, "path": "/root/.aws/credentials", "profile_name": "backup"}
    for host, login in LAPTOPS.items():
        yield "laptops", {"host": host, "path": f"/home/{login}/.aws/credentials", "profile_name": "deploy", "region": "us-east-1",
                          "user_name_template": naming.PERSON_TEMPLATE}
    for host in BUILD_HOSTS:
        yield "build", {"host": host, "path": "/home/ci/.aws/credentials", "profile_name": "default", "region": "eu-west-1",
                        "user_name_template": BUILD_TEMPLATE}


PLACEMENTS = list(_placements())
assert len({request["host"] for _group, request in PLACEMENTS}) == 50


@pytest.fixture(name="estate", scope="module")
def fixture_estate(tmp_path_factory):
    """The seeded estate: outcomes (with secrets), the files of every host, and the local AWS."""
    with LocalAWS(record=True, handler=lambda event, context: None, delivery_interval=3600) as aws:
        operator = aws.client("iam")
        operator.create_user(UserName="mira")  # a real person's user, already there
        iam = RetryingBotoClientWrapper(aws.client("iam"), AWSRetry.jittered_backoff())
        requests = [{key: value for key, value in request.items() if key != "region"} for _group, request in PLACEMENTS]
        outcomes = batch.run_many(iam, requests, action="ensure", concurrency=4, template=naming.DEFAULT_TEMPLATE, iam_path="/")
        assert not [outcome for outcome in outcomes if outcome.get("failed")], outcomes
        homes = tmp_path_factory.mktemp("hosts")
        files = collections.defaultdict(dict)
        for (_group, request), outcome in zip(PLACEMENTS, outcomes):
            home = homes / request["host"] / request["path"].strip("/").rsplit("/", 2)[0]
            home.mkdir(parents=True, exist_ok=True)
            credentials, config = home / "credentials", home / "config"
            plan = credentials_plans.plan_present(credentials.read_bytes() if credentials.exists() else None, "C", request["profile_name"],
                                                  outcome["access_key_id"], outcome["secret_access_key"])
            credentials.write_bytes(plan.data)
            if request.get("region"):
                plan = config_plans.plan_config_present(config.read_bytes() if config.exists() else None, "F", request["profile_name"],
                                                        request["region"], "json")
                config.write_bytes(plan.data)
            files[request["host"]][str(credentials)] = credentials.read_text()
            if config.exists():
                files[request["host"]][str(config)] = config.read_text()
        yield {"aws": aws, "outcomes": outcomes, "files": files,
               "users": {user["UserName"]: user for user in operator.list_users()["Users"]}}


def _as_key(aws, service, outcome, region="us-east-1"):
    return boto3.client(service, endpoint_url=aws.endpoint_url, region_name=region, aws_access_key_id=outcome["access_key_id"],
                        aws_secret_access_key=outcome["secret_access_key"])


def _denial(call):
    with pytest.raises(botocore.exceptions.ClientError) as error:
        call()
    return error.value.response["Error"]


def _by_group(estate):
    groups = collections.defaultdict(list)
    for (group, request), outcome in zip(PLACEMENTS, estate["outcomes"]):
        groups[group, request["path"].replace(request["host"], ""), request["profile_name"]].append((request, outcome))
    return groups


# ---------------------------------------------------------------- the heuristics themselves can fail


def test_the_heuristics_flag_what_they_are_written_for():
    denial = "User: arn:aws:iam::{}:user/{} is not authorized to perform: sns:Publish with an explicit deny in an identity-based policy"
    assert heuristics.pacu_verdict(denial.format(ACCOUNT, "2c6b1f7e-8d3a-4e5f-9a1b-0c2d3e4f5a6b"))
    assert heuristics.pacu_verdict(denial.format(ACCOUNT, "SpaceCrab/web01").replace("user/", "user/"))
    assert heuristics.pacu_verdict(denial.format("534261010715", "anything"))
    assert heuristics.pacu_verdict(denial.format(ACCOUNT, "web03-prod")) is None
    assert heuristics.denial_verdict(denial) and heuristics.arn_from_denial(denial.format(ACCOUNT, "x")) == f"arn:aws:iam::{ACCOUNT}:user/x"
    # The offline decoding, on public examples of its write-ups.
    assert heuristics.account_from_key_id("ASIAQAAAAAAAGMKEM7X5") == "000000000000"
    assert heuristics.account_from_key_id("ASIAVJ2E6QGR2WZILJFM") == "364679954851"
    assert heuristics.account_from_key_id("AKIAIOSFODNN7EXAMPLE") is None
    assert heuristics.trufflehog_verdict("AKIAQAAAAAAAGMKEM7X5", "arn:aws:iam::052310077262:user/x")
    for bad in ("web01@@prod", "/ggcanary/web01", "web-3f9a2b7c1d-prod", "i-0abc1234def567890-prod", "canary-web01"):
        assert heuristics.vendor_verdict(bad), bad
    # The names the issue quotes from the per-host draw.
    assert heuristics.consistency_verdict({"web01": "web01-build", "web02": "web02-terraform", "web03": "web03-metrics"})
    assert heuristics.consistency_verdict({"web01": "web01-prod", "web02": "web02-prod"}) is None
    assert heuristics.person_verdict("lap-h1-backup", "mira") and heuristics.person_verdict("mira.deploy", "mira") is None


# ---------------------------------------------------------------- the estate passes them


def test_no_public_heuristic_flags_a_planted_key_and_every_denial_reads_least_privilege(estate):
    aws = estate["aws"]
    flagged = []
    for (_group, request), outcome in zip(PLACEMENTS, estate["outcomes"]):
        # TruffleHog's verification reads the ARN from a denial; Pacu's from one CloudTrail does not log.
        error = _denial(_as_key(aws, "s3", outcome).list_buckets)
        message = error["Message"]
        arn = heuristics.arn_from_denial(message)
        assert arn == f"arn:aws:iam::{ACCOUNT}:user/{outcome['user_name']}", message
        verdicts = [heuristics.pacu_verdict(message), heuristics.trufflehog_verdict(outcome["access_key_id"], arn),
                    heuristics.vendor_verdict(arn), heuristics.denial_verdict(message)]
        # moto mints key ids that encode the account, as AWS does: the decoding finds the estate's own account.
        assert heuristics.account_from_key_id(outcome["access_key_id"]) == ACCOUNT
        flagged.extend(f"{request['host']} {request['profile_name']}: {v}" for v in verdicts if v)
    assert flagged == []


def test_a_call_cloudtrail_does_not_log_reads_least_privilege_too(estate):
    outcome = estate["outcomes"][0]
    error = _denial(_as_key(estate["aws"], "sqs", outcome).list_queues)
    assert heuristics.denial_verdict(error["Message"]) is None, error
    assert heuristics.arn_from_denial(error["Message"]).endswith("/" + outcome["user_name"])
    # And what every key may do, as on AWS: say who it is.
    assert _as_key(estate["aws"], "sts", outcome).get_caller_identity()["Arn"].endswith("/" + outcome["user_name"])


def test_every_canary_user_has_no_policy_group_or_boundary(estate):
    iam = estate["aws"].client("iam", direct=True)
    for outcome in estate["outcomes"]:
        name = outcome["user_name"]
        assert iam.list_user_policies(UserName=name)["PolicyNames"] == []
        assert iam.list_attached_user_policies(UserName=name)["AttachedPolicies"] == []
        assert iam.list_groups_for_user(UserName=name)["Groups"] == []
        assert "PermissionsBoundary" not in estate["users"][name]
        assert estate["users"][name]["Path"] == "/"


def test_one_placement_on_the_hosts_of_a_group_is_named_one_way(estate):
    for (group, path, profile), placements in _by_group(estate).items():
        names = {request["host"]: outcome["user_name"] for request, outcome in placements}
        if group == "laptops":
            for request, outcome in placements:
                login = request["path"].split("/")[2]
                assert heuristics.person_verdict(outcome["user_name"], login) is None, (request["host"], outcome["user_name"])
            continue
        assert heuristics.consistency_verdict(names) is None, (group, path, profile, names)
        # Named hosts show their own name; the machine-made ones a plausible one.
        for request, outcome in placements:
            short = request["host"].split(".")[0]
            if not heuristics.vendor_verdict(short):
                assert outcome["user_name"].startswith(short if group != "build" else f"svc-{short}"), outcome["user_name"]


def test_laptop_keys_carry_the_owner_s_name_and_a_taken_name_resolves_plausibly(estate):
    names = {request["host"]: outcome["user_name"] for (group, request), outcome in zip(PLACEMENTS, estate["outcomes"]) if group == "laptops"}
    assert names["lap-mira"] == "mira.deploy"  # "mira" is the real person's user
    assert names["lap-ana-silva"] == "ana.silva" and names["lap-tomas"] == "tomas"
    assert "mira" in estate["users"] and not estate["users"]["mira"].get("Tags")


def test_the_files_carry_nothing_a_scanner_reads_as_a_decoy(estate):
    for host, files in estate["files"].items():
        for path, text in files.items():
            # Keys and secrets are random by nature (a key id may hold a hex-looking run): the rest must be plain.
            plain = "\n".join(line.split("=", 1)[0] if line.startswith("aws_") else line for line in text.splitlines())
            assert heuristics.vendor_verdict(plain) is None, (host, path, text.count("\n"))
            assert text.endswith("\n") and "\n\n" not in text
            if path.endswith("/config"):
                assert text.startswith("[profile ") or text.startswith("[default]")
                assert "output = json\n" in text


def test_the_opt_in_deny_all_is_what_gives_a_key_away(estate):
    iam = RetryingBotoClientWrapper(estate["aws"].client("iam"), AWSRetry.jittered_backoff())
    request = {"host": "web99", "path": "/home/deploy/.aws/credentials", "profile_name": "prod"}
    [guarded] = batch.run_many(iam, [request], template=naming.DEFAULT_TEMPLATE, iam_path="/", deny_all=True)
    try:
        message = _denial(_as_key(estate["aws"], "s3", guarded).list_buckets)["Message"]
        assert heuristics.denial_verdict(message) == "explicit deny: quarantined or decoy", message
    finally:
        estate["aws"].client("iam").delete_user_policy(UserName=guarded["user_name"], PolicyName="default")
        estate["aws"].client("iam").delete_access_key(UserName=guarded["user_name"], AccessKeyId=guarded["access_key_id"])
        estate["aws"].client("iam").delete_user(UserName=guarded["user_name"])
