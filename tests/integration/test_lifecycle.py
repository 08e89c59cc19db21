# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rotate_canaries.yml, retire_canaries.yml and reconcile_canaries.yml on the SSH fleet against the local AWS.

Every test seeds the fleet with the real seed playbook first.  What users judge the lifecycle on:
after a rotation every host holds a new key that botocore, run as the file's owner on that host, uses
as the placement's IAM user, the old keys are gone and nothing else in the files moved; a host lost
between the mint and the write keeps its old, working key and no new key survives; a retirement
removes exactly the targeted canaries; a reconciliation removes what was minted but never planted.

Losing a host mid-rotation: a test-only callback plugin (written into the test's tmp dir, enabled
through ANSIBLE_CALLBACK_PLUGINS) stops the host's sshd as soon as the mint task's result for that
host arrives.  Ansible's linear strategy starts the next task (the write) only after every host's
result of the current one is processed, so the host is down exactly between mint and write, with
no hook in the product and no pause.
"""

from __future__ import annotations

import concurrent.futures
import configparser
import difflib
import json
import pathlib
import re

import yaml

from test_seed_playbook import PLAYBOOK as SEED
from test_seed_playbook import assert_no_minted_secret_in, canary_users, placements, planted_secrets, preexisting_secrets, recap
from tooling.fleet import home_inside

TESTS_DIR = pathlib.Path(__file__).resolve().parents[1]
ROTATE = "playbooks/rotate_canaries.yml"
RETIRE = "playbooks/retire_canaries.yml"
RECONCILE = "playbooks/reconcile_canaries.yml"
# The first per-host task after the mint batch (a run_once result arrives for one host only): the keys
# of every host are minted by then, and none is written yet.
MINT_TASK = "Mint a second key for every placement due in the batch, keeping the planted one"

# Run as the file's owner on the host: which key botocore reads from the profile, and who AWS says it is.
# A digest of the secret, never the secret: the test must not print what it checks.
HOST_IDENTITY = (
    "import boto3, hashlib, json, sys\n"
    "session = boto3.Session(profile_name=sys.argv[1])\n"
    "creds = session.get_credentials()\n"
    "arn = session.client('sts').get_caller_identity()['Arn']\n"
    "print(json.dumps({'key': creds.access_key, 'secret_sha256': hashlib.sha256(creds.secret_key.encode()).hexdigest(), 'arn': arn}))\n"
)

STOP_HOST_CALLBACK = '''
from __future__ import annotations

import os
import sys

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: stop_host_after_task
type: aggregate
short_description: test only, takes a fleet host offline once a named task has run on it
description: [test only]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "stop_host_after_task"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        sys.path.insert(0, os.environ["LIFECYCLE_TOOLING"])
        from tooling.fleet import Fleet

        self._fleet = Fleet.load(os.environ["LIFECYCLE_FLEET_DIR"])
        self._task = os.environ["LIFECYCLE_STOP_AFTER_TASK"]
        self._host = os.environ["LIFECYCLE_STOP_HOST"]

    def _stop_after(self, result):
        # A run_once task (the mint batch) reports for one host only, whichever it is.
        if (result._host.get_name() == self._host or result._task.run_once) and result._task.get_name().endswith(self._task):
            self._fleet.stop_host(self._host)

    def v2_runner_on_ok(self, result):
        self._stop_after(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._stop_after(result)
'''


def credentials_path(user):
    return f"{home_inside(user)}/.aws/credentials"


def seed(fleet, run_playbook):
    rc, output = run_playbook(SEED, fleet.inventory)
    assert rc == 0, output[-3000:]


def host_identity(fleet, aws, host, user, profile):
    result = fleet.run_as(host, user, ["python3", "-c", HOST_IDENTITY, profile], env=aws.host_env)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def identities(fleet, aws, hosts_users_profiles):
    """host_identity of many placements at once: each is a process inside its host, so they run side by side."""
    items = list(hosts_users_profiles)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(items, pool.map(lambda item: host_identity(fleet, aws, *item), items)))


def placement_users(iam):
    """{(host, path, profile): (user name, tags, [key ids])} of every canary in IAM."""
    users = {}
    for name, tags in canary_users(iam).items():
        keys = [key["AccessKeyId"] for key in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]]
        users[(tags["canarykeys:host"], tags["canarykeys:path"], tags["canarykeys:profile"])] = (name, tags, keys)
    return users


def iam_writes_since(aws, marker):
    calls = [call for call in aws.calls()[marker:] if call["service"] == "iam"]
    return [call for call in calls if not re.match(r"(Get|List|Describe|Generate)", call["action"] or "")]


def said(output, text):
    """Whether the run printed ``text``; the YAML callback folds long lines, so whitespace runs compare as one space."""
    return " ".join(text.split()) in " ".join(output.split())


def changed_lines(before, after):
    return [line for line in difflib.ndiff(before.splitlines(), after.splitlines()) if line[:1] in "+-"]


def test_rotation_replaces_every_key_and_a_rerun_changes_nothing(clean_fleet, aws, run_playbook):
    fleet = clean_fleet
    iam = aws.client("iam")
    seed(fleet, run_playbook)
    before = identities(fleet, aws, placements(fleet))
    seeded_users = placement_users(iam)
    files_before = {(h, u): (fleet.read_file(h, u), fleet.read_file(h, u, ".aws/config")) for h, u in fleet.homes()}
    old_secrets = planted_secrets(fleet)

    rc, output = run_playbook(ROTATE, fleet.inventory, {"max_age_days": 0}, ["--check"])
    assert rc == 0, output[-3000:]
    assert output.count("would") >= len(before) and not said(output, "rotated from")
    assert placement_users(iam) == seeded_users
    assert {(h, u): (fleet.read_file(h, u), fleet.read_file(h, u, ".aws/config")) for h, u in fleet.homes()} == files_before

    rc, output = run_playbook(ROTATE, fleet.inventory, {"max_age_days": 0}, ["-vvvv", "--diff"])
    assert rc == 0, output[-3000:]
    users = placement_users(iam)
    assert len(users) == len(before)
    after = identities(fleet, aws, before)
    for (host, user, profile), old in before.items():
        path = credentials_path(user)
        name, tags, keys = users[(host, path, profile)]
        assert name == seeded_users[(host, path, profile)][0]
        now = after[(host, user, profile)]
        # The host holds a new key, the only key of its user, and AWS takes it as that user.
        assert now["key"] != old["key"] and now["secret_sha256"] != old["secret_sha256"]
        assert keys == [now["key"]]
        assert now["arn"] == old["arn"] and now["arn"].endswith(f":user/{name}")
        assert tags["canarykeys:generation"] == "2"
        assert tags["canarykeys:planted-by"] == "Rotate canary AWS keys"
        assert tags["canarykeys:planted-at"] >= seeded_users[(host, path, profile)][1]["canarykeys:planted-at"]
        assert re.search(rf"{re.escape(host)}\s+\d{{12}}\s+{re.escape(path)}\s+{profile}\s+{name}\s+{now['key']}\s+rotated\s+from\s+{old['key']}", output)
    # Only the canary profile's two key lines changed, in every file; config files not at all.
    for (host, user), (credentials, config) in files_before.items():
        assert fleet.read_file(host, user, ".aws/config") == config
        if credentials is None:
            assert fleet.read_file(host, user) is None
            continue
        changes = changed_lines(credentials, fleet.read_file(host, user))
        canaries = sum(1 for h, u, _p in before if (h, u) == (host, user))
        assert len(changes) == 4 * canaries, (host, user, changes)
        assert all(re.match(r"[-+] aws_(access_key_id|secret_access_key) = ", line) for line in changes), (host, user)
    assert_no_minted_secret_in(output, fleet, preexisting_secrets(fleet))
    assert not [secret for secret in old_secrets if secret in output]

    # An immediate re-run with the default max_age_days (90) finds nothing due.
    files_after = {(h, u): fleet.read_file(h, u) for h, u in fleet.homes()}
    marker = len(aws.calls())
    rc, output = run_playbook(ROTATE, fleet.inventory)
    assert rc == 0, output[-3000:]
    assert all(stats["changed"] == 0 for stats in recap(output).values()), recap(output)
    # No canary is written to: the only IAM writes are the estate lease taken and released (docs/overlap.md).
    assert [call["action"] for call in iam_writes_since(aws, marker)] == ["CreatePolicy", "DeletePolicy"]
    assert {(h, u): fleet.read_file(h, u) for h, u in fleet.homes()} == files_after
    assert said(output, "Nothing to rotate")


def test_a_host_lost_between_mint_and_write_keeps_its_old_working_key(clean_fleet, aws, run_playbook, tmp_path, monkeypatch):
    fleet = clean_fleet
    iam = aws.client("iam")
    seed(fleet, run_playbook)
    lost = "laptop-bob"
    login = fleet.host(lost).login_user
    before = host_identity(fleet, aws, lost, login, "deploy")
    seeded_users = placement_users(iam)

    plugins = tmp_path / "callback_plugins"
    plugins.mkdir()
    (plugins / "stop_host_after_task.py").write_text(STOP_HOST_CALLBACK, encoding="utf-8")
    for name, value in {
        "ANSIBLE_CALLBACK_PLUGINS": str(plugins),
        "ANSIBLE_CALLBACKS_ENABLED": "stop_host_after_task",
        "LIFECYCLE_TOOLING": str(TESTS_DIR),
        "LIFECYCLE_FLEET_DIR": str(fleet.dir),
        "LIFECYCLE_STOP_AFTER_TASK": MINT_TASK,
        "LIFECYCLE_STOP_HOST": lost,
    }.items():
        monkeypatch.setenv(name, value)

    rc, output = run_playbook(ROTATE, fleet.inventory, {"max_age_days": 0})
    assert rc != 0
    stats = recap(output)
    assert stats[lost]["failed"] == 1, stats
    assert said(output, "was deleted and the profile keeps " + before["key"])
    assert not fleet.is_up(lost), "the callback did not take the host down"

    fleet.start_host(lost)
    now = host_identity(fleet, aws, lost, login, "deploy")
    assert now == before  # same key, same secret, and AWS still takes it as the placement's user
    users = placement_users(iam)
    key = (lost, credentials_path(login), "deploy")
    name, tags, keys = users[key]
    assert keys == [before["key"]], "a key the host never took survived"
    assert tags == seeded_users[key][1], "a rolled back rotation changed the mapping"
    # The hosts that stayed up rotated.
    for (host, _path, _profile), (_name, tags, keys) in users.items():
        if host != lost:
            assert tags["canarykeys:generation"] == "2" and len(keys) == 1
    assert_no_minted_secret_in(output, fleet, preexisting_secrets(fleet))


def inventory_variant(fleet, path, change):
    """A copy of the fleet's inventory, edited by ``change(groups)``."""
    inventory = yaml.safe_load(fleet.inventory.read_text(encoding="utf-8"))
    change(inventory["all"]["children"])
    path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    return path


def without_become(groups):
    """The usual inventory of a real fleet: the admin logs in (ops, passwordless sudo) and asks for no become."""
    for host in groups["webservers"]["hosts"].values():
        host.pop("ansible_become", None)


def test_a_sudo_login_without_become_seeds_and_retires_by_limit(clean_fleet, aws, run_playbook, tmp_path):
    fleet = clean_fleet
    iam = aws.client("iam")
    plain = inventory_variant(fleet, tmp_path / "plain.yml", without_become)

    # ops reaches deploy's and root's files with sudo; alice and bob (no sudo rights at all) plant their own.
    rc, output = run_playbook(SEED, plain)
    assert rc == 0, output[-3000:]
    seeded = placement_users(iam)
    assert set(seeded) == {
        *((web, credentials_path(user), profile) for web in fleet.webservers for user, profile in (("deploy", "prod"), ("root", "backup"))),
        *((laptop, credentials_path(fleet.host(laptop).login_user), "deploy") for laptop in fleet.laptops)}
    for host, path, profile in seeded:
        user = "root" if path.startswith("/root/") else path.split("/")[2]
        assert f"[{profile}]" in fleet.read_file(host, user), (host, path)

    # A laptop placement of another user needs become, which alice does not have: one line saying what to set.
    def root_on_alice(groups):
        groups["laptops"]["hosts"]["laptop-alice"]["seed_placements"] = [
            {"user": "alice", "profile": "deploy"}, {"user": "root", "profile": "backup"}]
    rc, output = run_playbook(SEED, inventory_variant(fleet, tmp_path / "alice-root.yml", root_on_alice), extra_args=["--limit", "laptop-alice"])
    assert rc != 0
    assert said(output, "The placements of root on laptop-alice need become (sudo to root) as alice, which failed")
    assert said(output, "set ansible_become_password (or run ansible-playbook with -K)")
    assert placement_users(iam) == seeded and fleet.read_file("laptop-alice", "root") is None

    # A rotation through the same sudo login: web01's two keys are replaced in deploy's and root's files.
    rc, output = run_playbook(ROTATE, plain, {"max_age_days": 0}, ["--limit", "web01"])
    assert rc == 0, output[-3000:]
    rotated = placement_users(iam)
    for key, (_name, tags, keys) in rotated.items():
        assert (tags["canarykeys:generation"] == "2") == (key[0] == "web01") and len(keys) == 1, key
        user = "root" if key[1].startswith("/root/") else key[1].split("/")[2]
        assert keys[0] in fleet.read_file(key[0], user), key
    seeded = rotated

    # Neither --limit nor canary_target_hosts: refused in one line, nothing read or retired.
    marker = len(aws.calls())
    rc, output = run_playbook(RETIRE, plain)
    assert rc != 0 and said(output, "Name the hosts whose canaries to retire with --limit")
    assert not [call for call in aws.calls()[marker:] if call["service"] == "iam"]
    assert placement_users(iam) == seeded

    # --limit, Ansible's way of naming hosts: web02's canaries go, through sudo, and nothing else.
    rc, output = run_playbook(RETIRE, plain, extra_args=["--limit", "web02"])
    assert rc == 0, output[-3000:]
    assert set(placement_users(iam)) == {key for key in seeded if key[0] != "web02"}
    for user in ("deploy", "root"):
        parser = configparser.RawConfigParser()
        parser.read_string(fleet.read_file("web02", user) or "")
        assert parser.sections() == [], user
