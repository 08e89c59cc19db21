# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/seed_canaries.yml on a fleet of SSH hosts against the local AWS.

What users judge the seed on: every placement's file, read by botocore as that
user on that host, yields the key IAM holds as the placement's active key;
every other byte of the files stays; modes and owners are right; a re-run
changes nothing and writes nothing to IAM; no secret is ever printed.
"""

from __future__ import annotations

import configparser
import json
import re

import pytest

from tooling.fleet import home_inside

PLAYBOOK = "playbooks/seed_canaries.yml"
# The default placements of the seed role, per group.
PLACEMENTS = {
    "webservers": (("deploy", "prod"), ("root", "backup")),
    "laptops": (("{login}", "deploy"),),
}
BOTOCORE_READ = (
    "import boto3, hashlib, json, sys\n"
    "c = boto3.Session(profile_name=sys.argv[1]).get_credentials()\n"
    # A digest, not the secret: the test must not print what it checks.
    "print(json.dumps({'key': c.access_key, 'secret_sha256': hashlib.sha256(c.secret_key.encode()).hexdigest()}))\n"
)


def placements(fleet):
    for host in fleet.webservers:
        for user, profile in PLACEMENTS["webservers"]:
            yield host, user, profile
    for host in fleet.laptops:
        login = fleet.host(host).login_user
        for user, profile in PLACEMENTS["laptops"]:
            yield host, user.format(login=login), profile


def recap(output):
    """{host: {"ok": n, "changed": n, "failed": n, "unreachable": n}} from the PLAY RECAP."""
    stats = {}
    for match in re.finditer(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M):
        host, ok, changed, unreachable, failed = match.groups()
        stats[host] = {"ok": int(ok), "changed": int(changed), "unreachable": int(unreachable), "failed": int(failed)}
    return stats


def fleet_profiles(fleet):
    """(host, user, profile name, its section) of every profile in the fleet's credentials files, read from outside."""
    for host, user in fleet.homes():
        text = fleet.read_file(host, user)
        if not text:
            continue
        parser = configparser.RawConfigParser()
        parser.read_string(text)
        for profile in parser.sections():
            yield host, user, profile, parser[profile]


def planted_secrets(fleet):
    """Every secret planted in the fleet's files, read from outside the hosts."""
    return [section["aws_secret_access_key"] for _host, _user, _profile, section in fleet_profiles(fleet)
            if "aws_secret_access_key" in section]


def canary_users(iam):
    users = {}
    for page in iam.get_paginator("list_users").paginate():
        for user in page["Users"]:
            tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=user["UserName"])["Tags"]}
            if tags.get("canarykeys:managed") == "true":
                users[user["UserName"]] = tags
    return users


def assert_no_minted_secret_in(output, fleet, preexisting_secrets):
    minted = [s for s in planted_secrets(fleet) if s not in preexisting_secrets]
    assert minted, "the run planted no secret to look for"
    for secret in minted:
        assert secret not in output, "a minted secret appears in the playbook output"


def preexisting_secrets(fleet):
    parser = configparser.RawConfigParser()
    secrets = []
    for (_host, _user, path), content in fleet.preexisting.items():
        if path.endswith("credentials"):
            parser.read_string(content.replace("\r\n", "\n"), source=path)
    for section in parser.sections():
        secrets.append(parser[section].get("aws_secret_access_key"))
    return secrets


# The one seeding the tests below share: the run's output and the (AWS resets, fleet restores) it belongs to.
_SEEDING = {}


@pytest.fixture
def seeded(fleet, aws_env, run_playbook):
    """A fleet seeded from clean by one run of the playbook, and that run's output.

    The tests that take it only read the result (the re-run test runs the playbook again, and fails
    unless that changes nothing), so they share one seeding instead of seeding again each.  It is
    redone whenever anything reset the local AWS or restored the fleet since, i.e. when another test
    ran in between (in file order that happens only after the last of them).
    """
    if _SEEDING.get("epoch") != (aws_env.resets, fleet.restores):
        aws_env.reset()
        fleet.restore()
        rc, output = run_playbook(PLAYBOOK, fleet.inventory, extra_args=["-vvvv", "--diff"])
        assert rc == 0, output[-3000:]
        _SEEDING.update(epoch=(aws_env.resets, fleet.restores), output=output)
    return fleet, aws_env, _SEEDING["output"]


def test_every_placement_holds_its_active_canary_key(seeded):
    fleet, aws, output = seeded
    iam = aws.client("iam")
    users = canary_users(iam)
    by_placement = {(t["canarykeys:host"], t["canarykeys:path"], t["canarykeys:profile"]): name for name, t in users.items()}
    expected = list(placements(fleet))
    assert len(users) == len(expected)
    for host, user, profile in expected:
        path = f"{home_inside(user)}/.aws/credentials"
        iam_user = by_placement[(host, path, profile)]
        assert not re.search(r"canary|honey|decoy|token", iam_user, re.I)
        # Named after the placement (web servers) or the person (laptops), and no policy at all.
        assert iam_user == (user if host in fleet.laptops else f"{host.split('.')[0].lower()}-{profile}")
        assert iam.list_user_policies(UserName=iam_user)["PolicyNames"] == []
        keys = iam.list_access_keys(UserName=iam_user)["AccessKeyMetadata"]
        assert [k["Status"] for k in keys] == ["Active"]
        result = fleet.run_as(host, user, ["python3", "-c", BOTOCORE_READ, profile], env=aws.host_env)
        assert result.returncode == 0, result.stderr
        read = json.loads(result.stdout)
        assert read["key"] == keys[0]["AccessKeyId"]
        assert len(read["secret_sha256"]) == 64
        # The reminder table names the placement and its key id.
        assert re.search(rf"{re.escape(host)}\s+\d{{12}}\s+{re.escape(path)}\s+{profile}\s+{re.escape(iam_user)}\s+{keys[0]['AccessKeyId']}", output)
    assert_no_minted_secret_in(output, fleet, preexisting_secrets(fleet))


def test_other_bytes_modes_and_owners(seeded):
    fleet, _aws, _output = seeded
    for (host, user, path), before in fleet.preexisting.items():
        after = fleet.read_file(host, user, path)
        if path.endswith("credentials"):
            assert after.startswith(before), f"{host} {user} {path}: existing bytes changed"
            added = after[len(before):]
            newline = "\r\n" if "\r\n" in before else "\n"
            # After a blank line in a file whose sections are separated so; right after it, as aws configure
            # appends, in one whose are not (a single section counts as aws configure's).
            separated = re.search(r"\n[ \t\r]*\n(?:[#;][^\n]*\n)*\[", before)
            assert added.startswith((newline if separated else "") + "["), repr(added[:40])
            assert all(line.endswith("\r") == (newline == "\r\n") for line in added.split("\n")[:-1])
    for host, user, _profile in placements(fleet):
        aws_dir = fleet.outside_path(host, user, ".aws")
        credentials = aws_dir / "credentials"
        owner = fleet.run_as(host, "root", ["stat", "-c", "%U %a", f"{home_inside(user)}/.aws/credentials"]).stdout.split()
        assert owner[0] == user
        if (host, user, ".aws/credentials") in fleet.preexisting:
            assert owner[1] == "600"  # kept as the user had it
        else:
            assert owner[1] == "600"
            assert oct(aws_dir.stat().st_mode & 0o777) == "0o700"
        assert credentials.stat().st_uid == aws_dir.stat().st_uid


def test_config_region_entry_is_added_without_touching_the_rest(seeded):
    fleet, _aws, _output = seeded
    before = fleet.preexisting[("laptop-alice", "alice", ".aws/config")]
    after = fleet.read_file("laptop-alice", "alice", ".aws/config")
    assert after.startswith(before)
    assert "[profile deploy]" in after[len(before):]


def test_rerun_changes_nothing_and_writes_nothing_to_iam(seeded, run_playbook):
    fleet, aws, first_output = seeded
    files_before = {(h, u): fleet.read_file(h, u) for h, u in fleet.homes()}
    marker = len(aws.calls())
    rc, output = run_playbook(PLAYBOOK, fleet.inventory, extra_args=["-vvvv", "--diff"])
    assert rc == 0, output[-3000:]
    assert all(s["changed"] == 0 for s in recap(output).values()), recap(output)
    iam_calls = [c for c in aws.calls()[marker:] if c["service"] == "iam"]
    writes = [c for c in iam_calls if not re.match(r"(Get|List|Describe|Generate)", c["action"] or "")]
    assert iam_calls, "the re-run made no IAM call at all: the counting proxy is not in the path"
    assert writes == []
    assert {(h, u): fleet.read_file(h, u) for h, u in fleet.homes()} == files_before
    assert_no_minted_secret_in(first_output + output, fleet, preexisting_secrets(fleet))


def test_the_next_run_removes_the_deny_all_of_an_earlier_seed_and_then_calls_nothing_more(seeded, run_playbook):
    fleet, aws, _output = seeded
    iam = aws.client("iam")
    users = sorted(canary_users(iam))
    deny_all = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]})
    for name in users:  # as the seed of an earlier version left them
        iam.put_user_policy(UserName=name, PolicyName="default", PolicyDocument=deny_all)
    marker = len(aws.calls())
    rc, output = run_playbook(PLAYBOOK, fleet.inventory)
    assert rc == 0, output[-3000:]
    writes = [c["action"] for c in aws.calls()[marker:] if c["service"] == "iam" and not re.match(r"(Get|List|Generate)", c["action"] or "")]
    # The migration is a change, so the run takes and releases the estate lease (docs/overlap.md) around it.
    assert sorted(writes) == sorted(["CreatePolicy", "DeletePolicy"] + ["DeleteUserPolicy"] * len(users))
    assert all(iam.list_user_policies(UserName=name)["PolicyNames"] == [] for name in users)
    # Migrated: the bulk read says so, and the next run calls IAM for nothing else.
    marker = len(aws.calls())
    rc, output = run_playbook(PLAYBOOK, fleet.inventory)
    assert rc == 0, output[-3000:]
    actions = {c["action"] for c in aws.calls()[marker:] if c["service"] == "iam"}
    # GetPolicy: the bulk read's look at the estate lease (docs/overlap.md).
    assert actions <= {"GetAccountAuthorizationDetails", "GenerateCredentialReport", "GetCredentialReport", "ListAccountAliases",
                       "GetPolicy"}, actions


def test_check_mode_mints_nothing(clean_fleet, aws, run_playbook):
    rc, output = run_playbook(PLAYBOOK, clean_fleet.inventory, extra_args=["--check"])
    assert rc == 0, output[-3000:]
    assert canary_users(aws.client("iam")) == {}
    assert clean_fleet.read_file("web01", "deploy") is None


def test_a_seed_past_the_user_quota_stops_before_writing_to_any_canary(clean_fleet, aws, run_playbook):
    iam = aws.client("iam")
    marker = len(aws.calls())
    placements_asked = len(list(placements(clean_fleet)))
    rc, output = run_playbook(PLAYBOOK, clean_fleet.inventory, {"seed_user_quota": placements_asked - 1})
    assert rc != 0
    assert " ".join(f"has 0 IAM users and this run asks for up to {placements_asked} new canary users, past IAM's quota of "
                    f"{placements_asked - 1} users per account; nothing was changed.".split()) in " ".join(output.split())
    writes = [c["action"] for c in aws.calls()[marker:] if c["service"] == "iam" and not re.match(r"(Get|List|Generate)", c["action"] or "")]
    # Only the estate lease, taken and released around the refusal (docs/overlap.md): no canary was touched.
    assert sorted(writes) == ["CreatePolicy", "DeletePolicy"]
    assert not canary_users(iam)
    assert clean_fleet.read_file("web01", "deploy") is None


def test_faults_fail_their_placement_clearly_and_lose_nothing(clean_fleet, aws, run_playbook):
    """Four faults at once, one per host, in one run (each is independent of the others):

    laptop-bob unreachable; laptop-alice cannot write (a ~/.aws that root owns: the read succeeds,
    the key is minted, the write fails, the compensation must delete the key); web02's deploy file
    holds a real [prod] profile; web01's root file is malformed.
    """
    fleet = clean_fleet
    fleet.stop_host("laptop-bob")
    fleet.run_as("laptop-alice", "root", ["sh", "-c", "rm -rf /home/alice/.aws && mkdir -m 0755 /home/alice/.aws"], check=True)
    real = "[prod]\naws_access_key_id = AKIAREALPRODEXAMPLE1\naws_secret_access_key = realrealrealrealrealrealrealrealrealreal\n"
    fleet.write_file("web02", "deploy", ".aws/credentials", real)
    broken = "aws_access_key_id = AKIANOSECTIONEXAMPL\n[default\n"
    fleet.write_file("web01", "root", ".aws/credentials", broken)

    rc, output = run_playbook(PLAYBOOK, fleet.inventory)
    assert rc != 0
    stats = recap(output)
    assert stats["laptop-bob"]["unreachable"] == 1
    assert stats["laptop-alice"]["failed"] == 1 and "were deleted" in output
    assert fleet.read_file("web02", "deploy") == real
    assert "AKIAREALPRODEXAMPLE1" in output and "refusing" in output.lower()
    assert fleet.read_file("web01", "root") == broken

    iam = aws.client("iam")
    users = canary_users(iam)
    keys = {name: iam.list_access_keys(UserName=name)["AccessKeyMetadata"] for name in users}
    placed = {(t["canarykeys:host"], t["canarykeys:path"], t["canarykeys:profile"]) for name, t in users.items() if keys[name]}
    # Nothing minted for the unreachable host, the refused profile or the malformed file; the key
    # whose write failed is gone. A placement that cannot be read (web01's root file) and one the
    # controller refuses (web02's real profile) fail their host at the end, after its other placement
    # is seeded.
    assert not any(host == "laptop-bob" for host, _path, _profile in placed)
    assert ("laptop-alice", "/home/alice/.aws/credentials", "deploy") not in placed
    assert ("web02", "/home/deploy/.aws/credentials", "prod") not in placed
    assert ("web01", "/root/.aws/credentials", "backup") not in placed
    assert stats["web01"]["failed"] == 1
    assert ("web01", "/home/deploy/.aws/credentials", "prod") in placed
    assert ("web02", "/root/.aws/credentials", "backup") in placed
    web02_root = [n for n, t in users.items() if t["canarykeys:host"] == "web02" and t["canarykeys:profile"] == "backup"]
    assert keys[web02_root[0]][0]["AccessKeyId"] in fleet.read_file("web02", "root"), "a minted key was left unplanted"


def test_missing_controller_credentials_is_one_clear_message(clean_fleet, aws, run_playbook, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    rc, output = run_playbook(PLAYBOOK, clean_fleet.inventory)
    assert rc != 0
    # One failure for the play (Ansible shows it as an error line and the task result), not one per host.
    assert output.count("msg: 'The controller has no usable AWS credentials") == 1, output
    # The bulk read, the run's first AWS call, fails once (a loop item, ignored); then the one failure.
    assert output.count("fatal: [") == 1 and output.count("failed: [") == 1, output
    assert "Traceback" not in output
    assert clean_fleet.read_file("web01", "deploy") is None


def test_a_key_deleted_in_iam_is_replanted_by_the_next_seed(clean_fleet, aws, run_playbook):
    """Self-healing: a key deleted behind the product's back (a cleanup script, an admin) is re-planted by a plain re-run.

    The file's profile holds a key IAM no longer has; its user's key history names it, so the seed mints a new key and
    replaces that profile's key id, and only it: the real profiles around it stay byte for byte.
    """
    fleet = clean_fleet
    real = "[prod-real]\naws_access_key_id = AKIAREALPRODEXAMPLE1\naws_secret_access_key = realrealrealrealrealrealrealrealrealreal\n"
    fleet.write_file("web02", "deploy", ".aws/credentials", real)
    rc, output = run_playbook(PLAYBOOK, fleet.inventory)
    assert rc == 0, output[-3000:]
    iam = aws.client("iam")
    seeded_text = fleet.read_file("web02", "deploy")
    dead = configparser.RawConfigParser()
    dead.read_string(seeded_text)
    dead = dead["prod"]["aws_access_key_id"]
    user_name = iam.get_access_key_last_used(AccessKeyId=dead)["UserName"]
    iam.delete_access_key(UserName=user_name, AccessKeyId=dead)
    others = {(h, u): fleet.read_file(h, u) for h, u in fleet.homes() if (h, u) != ("web02", "deploy")}

    rc, output = run_playbook(PLAYBOOK, fleet.inventory)
    assert rc == 0, output[-3000:]
    assert "refusing" not in output.lower() and "not this placement's canary key" not in output
    healed_text = fleet.read_file("web02", "deploy")
    keys = iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]
    assert [k["Status"] for k in keys] == ["Active"] and keys[0]["AccessKeyId"] != dead
    new = keys[0]["AccessKeyId"]
    assert dead not in healed_text and new in healed_text
    # Only the healed profile's key id and secret changed: every other line, the real profile first, is as it was.
    changed = [(a, b) for a, b in zip(seeded_text.splitlines(), healed_text.splitlines()) if a != b]
    assert healed_text.startswith(real) and len(seeded_text.splitlines()) == len(healed_text.splitlines())
    assert [a.split("=")[0].strip() for a, _b in changed] == ["aws_access_key_id", "aws_secret_access_key"]
    assert {(h, u): fleet.read_file(h, u) for h, u in fleet.homes() if (h, u) != ("web02", "deploy")} == others
    result = fleet.run_as("web02", "deploy", ["python3", "-c", BOTOCORE_READ, "prod"], env=aws.host_env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["key"] == new
    assert_no_minted_secret_in(output, fleet, preexisting_secrets(fleet))
