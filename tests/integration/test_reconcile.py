# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""reconcile_canaries.yml and retire_canaries.yml's purge on the SSH fleet against the local AWS.

Apart from test_lifecycle.py (rotation, retirement by host) only so that two pytest-xdist workers share
the lifecycle's playbook runs: the tests of both files seed the fleet with the real seed playbook first.
"""

from __future__ import annotations

import configparser
import re

import yaml

from test_lifecycle import RECONCILE, RETIRE, changed_lines, credentials_path, host_identity, placement_users, said, seed
from test_seed_playbook import canary_users


def test_reconcile_retire_and_purge(clean_fleet, aws, run_playbook, tmp_path):
    fleet = clean_fleet
    iam = aws.client("iam")
    seed(fleet, run_playbook)
    seeded = placement_users(iam)

    # A host that died between mint and write: a second key of web01's deploy canary, never planted.
    orphan_user = seeded[("web01", credentials_path("deploy"), "prod")][0]
    orphan = iam.create_access_key(UserName=orphan_user)["AccessKey"]["AccessKeyId"]
    # A run that died between creating a user and minting: a canary user without a key.
    keyless_tags = dict(seeded[("web02", credentials_path("deploy"), "prod")][1])
    keyless_tags.update({"canarykeys:path": "/home/ops/.aws/credentials", "canarykeys:placement": "0" * 20})
    iam.create_user(UserName="web02-uploader", Tags=[{"Key": k, "Value": v} for k, v in keyless_tags.items()])

    rc, output = run_playbook(RECONCILE, fleet.inventory)
    assert rc == 0, output[-3000:]
    assert said(output, "key deleted: the profile holds another key") and said(output, "user deleted: no key at all")
    after = placement_users(iam)
    assert "web02-uploader" not in canary_users(iam)
    assert {k: v[2] for k, v in after.items()} == {k: v[2] for k, v in seeded.items()}, "reconciliation touched a planted key"
    assert orphan not in after[("web01", credentials_path("deploy"), "prod")][2]

    # Retire two hosts: exactly their canary profiles and users go.
    files_before = {(h, u): (fleet.read_file(h, u), fleet.read_file(h, u, ".aws/config")) for h, u in fleet.homes()}
    retired = {"web02", "laptop-alice"}
    rc, output = run_playbook(RETIRE, fleet.inventory, {"canary_target_hosts": ":".join(sorted(retired))})
    assert rc == 0, output[-3000:]
    remaining = placement_users(iam)
    assert set(remaining) == {key for key in seeded if key[0] not in retired}
    assert {k: v[2] for k, v in remaining.items()} == {k: v[2] for k, v in seeded.items() if k[0] not in retired}
    # laptop-alice's files are back to what she had, byte for byte; web02's files hold no profile.
    for (host, user, path), content in fleet.preexisting.items():
        if host in retired:
            assert fleet.read_file(host, user, path) == content, (host, user, path)
    for user in ("deploy", "root"):
        parser = configparser.RawConfigParser()
        parser.read_string(fleet.read_file("web02", user) or "")
        assert parser.sections() == []
    for (host, user), files in files_before.items():
        if host not in retired:
            assert (fleet.read_file(host, user), fleet.read_file(host, user, ".aws/config")) == files, (host, user)

    # laptop-bob leaves the inventory: purge_missing lists it, honours --check, then retires it.
    inventory = yaml.safe_load(fleet.inventory.read_text(encoding="utf-8"))
    del inventory["all"]["children"]["laptops"]["hosts"]["laptop-bob"]
    smaller = tmp_path / "inventory-without-bob.yml"
    smaller.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    rc, output = run_playbook(RETIRE, smaller, {"purge_missing": True}, ["--check"])
    assert rc == 0, output[-3000:]
    assert said(output, "1 canaries belong to hosts no longer in the inventory (check mode")
    assert re.search(r"laptop-bob\s+\d{12}\s+/home/bob/\.aws/credentials\s+deploy\s+\S+\s+AKIA\w+\s+would", output)
    assert placement_users(iam) == remaining
    rc, output = run_playbook(RETIRE, smaller, {"purge_missing": True})
    assert rc == 0, output[-3000:]
    assert set(placement_users(iam)) == {key for key in remaining if key[0] != "laptop-bob"}


def test_reconcile_replants_a_dead_canary(clean_fleet, aws, run_playbook):
    """A key deleted in IAM behind the product's back: reconcile re-plants it through the seed; nothing else moves."""
    fleet = clean_fleet
    iam = aws.client("iam")
    seed(fleet, run_playbook)
    seeded = placement_users(iam)
    placement = ("web01", credentials_path("deploy"), "prod")
    user_name, _tags, [dead] = seeded[placement]
    iam.delete_access_key(UserName=user_name, AccessKeyId=dead)
    before = {(h, u): fleet.read_file(h, u) for h, u in fleet.homes()}

    rc, output = run_playbook(RECONCILE, fleet.inventory)
    assert rc == 0, output[-3000:]
    assert "refusing" not in output.lower()
    after = placement_users(iam)
    [new] = after[placement][2]
    assert new != dead and after[placement][0] == user_name
    # Every other canary kept its key; the healed file changed in its key lines only; no other file moved.
    assert {k: v[2] for k, v in after.items() if k != placement} == {k: v[2] for k, v in seeded.items() if k != placement}
    changed = changed_lines(before["web01", "deploy"], fleet.read_file("web01", "deploy"))
    assert sorted(line[2:].split("=")[0].strip() for line in changed) == ["aws_access_key_id"] * 2 + ["aws_secret_access_key"] * 2
    assert {k: v for k, v in before.items() if k != ("web01", "deploy")} == \
        {(h, u): fleet.read_file(h, u) for h, u in fleet.homes() if (h, u) != ("web01", "deploy")}
    identity = host_identity(fleet, aws, "web01", "deploy", "prod")
    assert identity["key"] == new and identity["arn"].endswith(f"/{user_name}")
