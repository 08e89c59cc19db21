# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The full loop on the SSH fleet: seed, a user takes a planted profile, one alert names the host.

The local AWS records CloudTrail (``LocalAWS(record=True)``: IAM enforced, every call signed by an
IAM user's key written to the trail's log group and delivered to the subscription's Lambda, which is
this collection's ``lambda/alert_handler.py`` run with the deployed function's environment).  The
detection stack is deployed into it by ``playbooks/deploy_detection.yml`` with its generic webhook
pointed at a local sink; the fleet is seeded by ``playbooks/seed_canaries.yml``.  A user on one host
then runs the real AWS CLI (``awscli`` from PyPI, the fleet's host tools) with the profile the seed
planted in that user's own ~/.aws.  The time from the calls to the alert is printed (``-s``), not
asserted: here delivery is forced right after the attack, on AWS it takes CloudTrail ~5 minutes.
"""

from __future__ import annotations

import configparser
import json
import os
import pathlib
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest

from test_seed_playbook import planted_secrets, preexisting_secrets, recap
from tooling.fleet import home_inside
from tools.alert_sink import AlertSink
from tools.local_aws.server import LocalAWS

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
# What anyone who finds an AWS key tries first, and the CloudTrail event names of those calls.
ATTACK = (["sts", "get-caller-identity"], ["s3", "ls"], ["iam", "list-users"])
EVENT_NAMES = ["GetCallerIdentity", "ListBuckets", "ListUsers"]


@dataclass
class Loop:
    fleet: object
    aws: LocalAWS
    sink: AlertSink
    # Everything the runs printed, for the secret check.
    outputs: list = field(default_factory=list)


def playbook_env(aws, controller_dir):
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(aws.operator_env())
    env.update({
        # Never the developer's own ~/.aws.
        "AWS_SHARED_CREDENTIALS_FILE": str(controller_dir / "credentials"),
        "AWS_CONFIG_FILE": str(controller_dir / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    env.pop("ANSIBLE_FORCE_COLOR", None)
    return env


def run_side_by_side(runs, env, workdir):
    """Start every (playbook, extra vars) at once (they do not depend on each other); {playbook: (rc, output)}."""
    started = {}
    for playbook, inventory, extra_vars in runs:
        log = workdir / (pathlib.Path(playbook).stem + ".log")
        argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(REPO / playbook), "-e", json.dumps(extra_vars)]
        with open(log, "wb") as handle:
            started[playbook] = (subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=handle,
                                                  stderr=subprocess.STDOUT), log)
    results = {}
    begun, deadline = time.monotonic(), time.monotonic() + 600
    try:
        while len(results) < len(started) and time.monotonic() < deadline:
            for playbook, (process, log) in started.items():
                if playbook not in results and process.poll() is not None:
                    results[playbook] = (process.returncode, log.read_text(errors="replace"))
                    sys.stdout.write(f"\n[end to end] {playbook}: rc={process.returncode} in {time.monotonic() - begun:.0f} s")
            time.sleep(0.2)
        assert len(results) == len(started), f"still running after 600 s: {sorted(set(started) - set(results))}"
    finally:
        for process, _log in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


@pytest.fixture(scope="module")
def loop(fleet, tmp_path_factory):
    """Detection deployed into a recording local AWS, alerts to a signed local sink, the fleet seeded."""
    workdir = tmp_path_factory.mktemp("end_to_end")
    fleet.restore()
    webhook_secret = secrets.token_hex(24)
    try:
        # No background delivery: each attack is delivered as one batch by recorder.flush().
        with AlertSink(secret=webhook_secret) as sink, LocalAWS(record=True, delivery_interval=3600) as aws:
            started = time.monotonic()
            results = run_side_by_side([
                ("playbooks/deploy_detection.yml", fleet.inventory, {
                    "detection_webhook_url": sink.url("/generic"),
                    "detection_webhook_secret": webhook_secret,
                    "detection_lambda_build_dir": str(workdir / "build"),
                }),
                ("playbooks/seed_canaries.yml", fleet.inventory, {}),
            ], playbook_env(aws, workdir / "controller-aws"), workdir)
            sys.stdout.write(f"\n[end to end] detection deployed and fleet seeded, side by side, in {time.monotonic() - started:.0f} s\n")
            for playbook, (rc, output) in results.items():
                assert rc == 0, f"{playbook}:\n{output[-4000:]}"
                assert all(stats["failed"] == 0 and stats["unreachable"] == 0 for stats in recap(output).values()), recap(output)
            aws.recorder.flush()
            # The operator's deploy and seed calls are not IAM users' calls: nothing to alert on yet.
            assert sink.received() == [] and aws.recorder.records() == []
            yield Loop(fleet, aws, sink, [output for _rc, output in results.values()])
    finally:
        fleet.restore()


def planted_key(fleet, host, user, profile):
    parser = configparser.RawConfigParser()
    parser.read_string(fleet.read_file(host, user))
    return parser[profile]["aws_access_key_id"]


def attack(loop, host, user, profile):
    """``user`` on ``host`` runs the AWS CLI with the profile the seed planted in its own ~/.aws."""
    loop.sink.clear()
    marker = len(loop.aws.recorder.records())
    first = time.time()
    results = [loop.fleet.aws_cli(host, user, *args, "--profile", profile, endpoint_url=loop.aws.endpoint_url) for args in ATTACK]
    last = time.time()
    loop.outputs += [result.stdout + result.stderr for result in results]
    loop.aws.recorder.flush()
    # The handler posts inside flush(); the wait only covers a slow sink thread.
    alerts = [item for item in loop.sink.wait(lambda item: item.alert is not None, timeout=10) if item.alert is not None]
    if alerts:
        arrived = alerts[0].received_at
        sys.stdout.write(f"\n[end to end] {host} {home_inside(user)}/.aws/credentials [{profile}]: alert {arrived - first:.2f} s after the "
                         f"first call, {arrived - last:.2f} s after the last (3 AWS CLI calls in {last - first:.1f} s; delivery "
                         "forced by recorder.flush(), on AWS CloudTrail takes ~5 min)\n")
    return results, alerts, loop.aws.recorder.records()[marker:]


def assert_cli_saw_a_denied_canary(results, iam_user):
    identity, buckets, users = results
    assert identity.returncode == 0, identity.stderr
    assert json.loads(identity.stdout)["Arn"].endswith(f":user/{iam_user}")
    for result, action in ((buckets, "ListBuckets"), (users, "ListUsers")):
        assert result.returncode != 0, result.stdout
        assert "AccessDenied" in result.stderr and action in result.stderr, result.stderr


def assert_alert_names(item, host, user, profile, key_id):
    alert = item.alert
    assert item.path == "/generic" and item.signature_ok is True
    assert alert["alert"] == "canary" and alert["detector"] == "cloudtrail"
    assert (alert["host"], alert["path"], alert["profile"], alert["access_key_id"]) == (
        host, f"{home_inside(user)}/.aws/credentials", profile, key_id)
    assert alert["count"] == len(EVENT_NAMES)
    assert [event["eventName"] for event in alert["events"]] == EVENT_NAMES
    assert [event["errorCode"] for event in alert["events"]] == [None, "AccessDenied", "AccessDenied"]
    assert {event["sourceIPAddress"] for event in alert["events"]} == {"127.0.0.1"}
    assert all(event["userAgent"].startswith("aws-cli/") for event in alert["events"])


def assert_no_secret_printed(loop):
    minted = [secret for secret in planted_secrets(loop.fleet) if secret not in preexisting_secrets(loop.fleet)]
    assert minted
    printed = loop.outputs + [item.body.decode("utf-8", "replace") for item in loop.sink.received()]
    for secret in minted:
        assert all(secret not in text for text in printed), "a planted secret appears in a run's output or an alert"


def test_a_planted_profile_used_raises_one_alert_naming_its_host_and_file(loop):
    host, user, profile = "web01", "deploy", "prod"
    key_id = planted_key(loop.fleet, host, user, profile)
    results, alerts, records = attack(loop, host, user, profile)
    iam_user = {record["userIdentity"]["userName"] for record in records}
    assert len(iam_user) == 1 and {record["userIdentity"]["accessKeyId"] for record in records} == {key_id}
    assert_cli_saw_a_denied_canary(results, iam_user.pop())
    assert [d["error"] for d in loop.aws.recorder.deliveries() if d["error"]] == []
    # Exactly one alert, for this key: none for the other six canaries of the fleet.
    assert len(alerts) == 1, [item.alert for item in alerts]
    assert len(loop.sink.received()) == 1
    assert_alert_names(alerts[0], host, user, profile, key_id)
    assert_no_secret_printed(loop)


def test_an_attack_from_another_hosts_file_names_that_host(loop):
    host, user, profile = "laptop-alice", "alice", "deploy"
    key_id = planted_key(loop.fleet, host, user, profile)
    # alice's file also holds her own (fake, pre-existing) default profile: only the canary profile is used.
    results, alerts, _records = attack(loop, host, user, profile)
    assert results[0].returncode == 0, results[0].stderr
    assert len(alerts) == 1, [item.alert for item in alerts]
    assert_alert_names(alerts[0], host, user, profile, key_id)
    assert alerts[0].alert["host"] != "web01"
    assert_no_secret_printed(loop)
