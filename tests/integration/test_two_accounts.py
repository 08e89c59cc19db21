# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An estate spread over two canary accounts (docs/accounts.md), on the SSH fleet and the local AWS.

The local AWS (moto) gives every account id reached by AssumeRole its own IAM, so two role ARNs of two
made-up account ids are two canary accounts. The controller's own account (the local AWS's default)
must end up holding no canary at all. One play each: seed, use (sts get-caller-identity with each
planted key, on its host, answers the account the host's canary_account names), rotate, retire one
host, report.
"""

from __future__ import annotations

import configparser
import csv
import io
import re

import boto3


from test_lifecycle import RETIRE, ROTATE, credentials_path, identities, inventory_variant, said
from test_seed_playbook import PLAYBOOK as SEED
from test_seed_playbook import assert_no_minted_secret_in, canary_users, placements, preexisting_secrets

REPORT = "playbooks/report_canaries.yml"
REGION = "us-east-1"
ACCOUNT_IDS = {"canaries-eu": "111111111111", "canaries-us": "222222222222"}
CANARY_ACCOUNTS = [
    {"name": "canaries-eu", "role_arn": f"arn:aws:iam::{ACCOUNT_IDS['canaries-eu']}:role/canarykeys-controller",
     "external_id": "canarykeys-test-external-id"},
    {"name": "canaries-us", "role_arn": f"arn:aws:iam::{ACCOUNT_IDS['canaries-us']}:role/canarykeys-controller",
     "session_name": "canarykeys-us"},
]
# web01 and laptop-alice name canaries-us; web02 and laptop-bob take the first entry, canaries-eu.
IN_US = {"web01", "laptop-alice"}


def account_of(host):
    return "canaries-us" if host in IN_US else "canaries-eu"


def two_account_inventory(fleet, tmp_path):
    def name_accounts(groups):
        for group in groups.values():
            for host, host_vars in (group.get("hosts") or {}).items():
                if host in IN_US:
                    host_vars["canary_account"] = "canaries-us"
    return inventory_variant(fleet, tmp_path / "two-accounts.yml", name_accounts)


def account_iam(aws, name):
    """An IAM client of a canary account, through the same AssumeRole the controller makes."""
    sts = aws.client("sts")
    entry = next(entry for entry in CANARY_ACCOUNTS if entry["name"] == name)
    credentials = sts.assume_role(RoleArn=entry["role_arn"], RoleSessionName="test-reader")["Credentials"]
    return boto3.client("iam", endpoint_url=aws.endpoint_url, region_name=REGION, aws_access_key_id=credentials["AccessKeyId"],
                        aws_secret_access_key=credentials["SecretAccessKey"], aws_session_token=credentials["SessionToken"])


def canary_hosts(iam):
    return sorted({tags["canarykeys:host"] for tags in canary_users(iam).values()})


def test_an_estate_over_two_accounts_is_seeded_used_rotated_retired_and_reported(clean_fleet, aws, run_playbook, tmp_path):
    fleet = clean_fleet
    inventory = two_account_inventory(fleet, tmp_path)
    accounts = {"canary_accounts": CANARY_ACCOUNTS}
    eu, us = account_iam(aws, "canaries-eu"), account_iam(aws, "canaries-us")

    rc, output = run_playbook(SEED, inventory, accounts)
    assert rc == 0, output[-3000:]
    hosts = sorted(fleet.webservers + fleet.laptops)
    assert canary_hosts(us) == sorted(IN_US)
    assert canary_hosts(eu) == sorted(set(hosts) - IN_US)
    assert canary_users(aws.client("iam")) == {}, "a canary landed in the controller's own account"
    # The reminder table names each placement's account.
    for host in hosts:
        assert re.search(rf"{re.escape(host)}\s+{account_of(host)}\s+/", output), host

    # Used on its host, each planted key is a user of the account its host names.
    seeded = identities(fleet, aws, placements(fleet))
    for (host, _user, _profile), identity in seeded.items():
        assert identity["arn"].startswith(f"arn:aws:iam::{ACCOUNT_IDS[account_of(host)]}:user/"), (host, identity["arn"])
    assert_no_minted_secret_in(output, fleet, preexisting_secrets(fleet))

    # Rotate everything: one play, both accounts; each host holds a new key of the same user and account.
    rc, output = run_playbook(ROTATE, inventory, dict(accounts, max_age_days=0))
    assert rc == 0, output[-3000:]
    rotated = identities(fleet, aws, seeded)
    for place, identity in rotated.items():
        assert identity["key"] != seeded[place]["key"] and identity["arn"] == seeded[place]["arn"], place
    for iam in (eu, us):
        for name in canary_users(iam):
            assert len(iam.list_access_keys(UserName=name)["AccessKeyMetadata"]) == 1, name
    assert_no_minted_secret_in(output, fleet, preexisting_secrets(fleet))

    # Retire web01 (canaries-us): its users go from that account only.
    rc, output = run_playbook(RETIRE, inventory, dict(accounts, canary_target_hosts="web01"))
    assert rc == 0, output[-3000:]
    assert canary_hosts(us) == ["laptop-alice"]
    assert canary_hosts(eu) == sorted(set(hosts) - IN_US)
    for user in ("deploy", "root"):
        parser = configparser.RawConfigParser()
        parser.read_string(fleet.read_file("web01", user) or "")
        assert not {"prod", "backup"} & set(parser.sections()), user

    # The report reads both accounts and names each row's account.
    reports = tmp_path / "reports"
    rc, output = run_playbook(REPORT, inventory, dict(accounts, report_dir=str(reports)))
    assert rc == 0, output[-3000:]
    rows = list(csv.DictReader(io.StringIO((reports / "canary_estate.csv").read_text())))
    assert sorted({(row["host"], row["account"], row["account_id"]) for row in rows}) == sorted(
        (host, account_of(host), ACCOUNT_IDS[account_of(host)]) for host in hosts if host != "web01")
    assert said(output, f"{len(rows)} placements on {len(hosts) - 1} hosts")
    for place in rotated:
        if place[0] != "web01":
            path = credentials_path(place[1])
            assert any(row["host"] == place[0] and row["file"] == path for row in rows), place


def test_a_seed_that_cannot_take_the_second_account_s_lease_releases_the_first_and_mints_nothing(
        clean_fleet, aws, run_playbook, tmp_path):
    """The leases are taken in canary_accounts order; the record of those held survives the failed take."""
    fleet = clean_fleet
    inventory = two_account_inventory(fleet, tmp_path)
    eu, us = account_iam(aws, "canaries-eu"), account_iam(aws, "canaries-us")
    holder = {"lease:run": "othercontrol", "lease:controller": "ops-bastion-2", "lease:pid": "4242", "lease:pid-start": "boot:1",
              "lease:started-at": "2026-01-01T00:00:00Z", "lease:expires-at": "2099-01-01T00:00:00Z", "lease:play": "Rotate"}
    us.create_policy(PolicyName="estate-change-lock", Path="/",
                     PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}',
                     Tags=[{"Key": key, "Value": value} for key, value in holder.items()])
    marker = len(aws.calls())
    rc, output = run_playbook(SEED, inventory, {"canary_accounts": CANARY_ACCOUNTS, "canary_lease": {"wait": 0}})
    assert rc != 0
    assert said(output, "Another run, run othercontrol (controller ops-bastion-2, pid 4242, play Rotate")
    assert said(output, "the lease of canary account canaries-us")
    # canaries-eu's lease was taken first, then released by the failed run; nothing was minted in either account.
    assert [p["PolicyName"] for p in eu.list_policies(Scope="Local")["Policies"]] == []
    assert [p["PolicyName"] for p in us.list_policies(Scope="Local")["Policies"]] == ["estate-change-lock"]
    assert canary_users(eu) == {} and canary_users(us) == {}
    writes = [call["action"] for call in aws.calls()[marker:] if call["service"] == "iam" and call["action"]
              and not call["action"].startswith(("Get", "List", "Generate"))]
    assert writes == ["CreatePolicy", "DeletePolicy"], writes  # canaries-eu's lease; canaries-us's was found held
    assert_no_minted_secret_in(output, fleet, preexisting_secrets(fleet))
