# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The full loop on the SSH fleet: seed, a user takes a planted profile, one alert names the host;
the estate report and the scheduled last-used detector see the same uses.

The local AWS records CloudTrail (``LocalAWS(record=True)``: IAM enforced, every call signed by an
IAM user's key written to the trail's log group and delivered to the subscription's Lambda, which is
this collection's ``lambda/alert_handler.py`` run with the deployed function's environment).  The
detection stack is deployed into it by ``playbooks/deploy_detection.yml`` with its generic webhook
pointed at a local sink; the fleet is seeded by ``playbooks/seed_canaries.yml``.  A user on one host
then runs the real AWS CLI (``awscli`` from PyPI, the fleet's host tools) with the profile the seed
planted in that user's own ~/.aws.  The time from the calls to the alert is printed (``-s``), not
asserted: here delivery is forced right after the attack, on AWS it takes CloudTrail ~5 minutes.

Every AWS CLI use is remembered on the module's ``Loop`` (``loop.used``), so the last two tests know
which placements were used whichever of the tests ran before them; their own use comes from the
``used`` fixture.  ``playbooks/report_canaries.yml`` then runs against the fleet's inventory and must
list every planted placement and flag exactly the used ones, with the last use moto recorded for the
key (moto sets it on every request signed with a known key).  Finally the schedule rule of the
last-used detector is fired as EventBridge would (``LocalAWS.fire_schedules()``, which runs the
deployed function from ``lambda/last_used_detector.py`` only if the role gave EventBridge the
permission): one ``last-used`` alert per used key reaches the same signed webhook, and a second scan
sends nothing.

Then the detection of changes to canaries (docs/alerts.md, "Tamper alerts"): the collection's own
rotation of every key and retirement of one host (``own_runs``, after the seed) reach the tamper rule's
Lambda and raise nothing, since the role trusts the principal it was deployed with; an administrator
who is not the controller attaching a policy to a canary, giving it a console password and deactivating
its key raises one ``tamper`` alert per change naming the canary's host, file and profile (and one
``unknown-iam-user`` alert for the administrator's own calls, from the trail); an AWS Health
``AWS_RISK_CREDENTIALS_EXPOSED`` event for a planted key raises one ``exposed`` alert naming its host,
file and profile with AWS's description; and the same alerts read in Slack.

Finally several canary accounts: side by side with the first deployment, the detection stack is also
deployed into two more accounts of the local AWS by one run with two ``canary_accounts`` entries, each a
``role_arn`` into its account (moto gives every account id its own IAM); a key planted for a host in
each account (``canarykeys.aws.canary_key`` with its ``account`` option) and used once raises one alert
from that account's own stack, naming the host, the account's name and its id.
"""

from __future__ import annotations

import configparser
import csv
import datetime
import html.parser
import io
import json
import os
import pathlib
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest

from test_seed_playbook import canary_users, fleet_profiles, planted_secrets, preexisting_secrets, recap
from tooling.fleet import home_inside
from tools.alert_sink import AlertSink
from tools.local_aws import eventbridge
from tools.local_aws.server import LocalAWS

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
# What anyone who finds an AWS key tries first, and the CloudTrail event names of those calls.
ATTACK = (["sts", "get-caller-identity"], ["s3", "ls"], ["iam", "list-users"])
EVENT_NAMES = ["GetCallerIdentity", "ListBuckets", "ListUsers"]
# The ``used`` fixture's own use: one call in a region nothing else uses, so the report and the
# last-used alert must carry this key's own service and region, not some other key's.
QUIET_USE = (["sts", "get-caller-identity", "--region", "eu-north-1"],)
REPORT_PLAYBOOK = "playbooks/report_canaries.yml"
LAST_USED_RULE = "audit-key-last-used-schedule"
# The canary accounts of the multi-account deployment: (entry name, account id), each reached through the
# role DEPLOYER that its administrator made for the controller.
CANARY_ACCOUNTS = (("canary-east", "111111111111"), ("canary-west", "222222222222"))
DEPLOYER = "canarykeys-controller"


@dataclass
class Use:
    """A placement used with the AWS CLI: where, and the CloudTrail record of its last call."""

    host: str
    user: str
    profile: str
    key_id: str
    last_record: dict

    @property
    def path(self):
        return f"{home_inside(self.user)}/.aws/credentials"


@dataclass
class Loop:
    fleet: object
    aws: LocalAWS
    sink: AlertSink
    env: dict
    workdir: pathlib.Path
    # Everything the runs printed, for the secret check.
    outputs: list = field(default_factory=list)
    # access key id -> Use, for every attack() so far in this module.
    used: dict = field(default_factory=dict)


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
    """Start every (playbook, inventory, extra vars[, name]) at once (they do not depend on each other);
    {name (default: the playbook): (rc, output)}."""
    started = {}
    for playbook, inventory, extra_vars, *name in runs:
        name = name[0] if name else playbook
        log = workdir / (pathlib.Path(name).stem + ".log")
        argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(REPO / playbook), "-e", json.dumps(extra_vars)]
        with open(log, "wb") as handle:
            started[name] = (subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=handle,
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


def canary_account_entries():
    """The canary_accounts of the multi-account deployment."""
    return [{"name": name, "role_arn": f"arn:aws:iam::{account}:role/{DEPLOYER}"} for name, account in CANARY_ACCOUNTS]


def make_deployer_roles(aws):
    """In each canary account, the role its administrator makes for the controller (the local AWS's operator,
    its account's root): trusted by the controller, allowed what the collection does there."""
    for _name, account in CANARY_ACCOUNTS:
        iam = aws.client("iam", account_id=account)
        iam.create_role(RoleName=DEPLOYER, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{aws.account_id}:root"}, "Action": "sts:AssumeRole"}]}))
        iam.put_role_policy(RoleName=DEPLOYER, PolicyName="canarykeys", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))


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
            env = playbook_env(aws, workdir / "controller-aws")
            make_deployer_roles(aws)
            detection = {"detection_webhook_url": sink.url("/generic"), "detection_webhook_secret": webhook_secret}
            results = run_side_by_side([
                ("playbooks/deploy_detection.yml", fleet.inventory, dict(detection, detection_lambda_build_dir=str(workdir / "build"))),
                ("playbooks/seed_canaries.yml", fleet.inventory, {}),
                # The same stack in two more accounts, in one play (the tests at the end of this module).
                ("playbooks/deploy_detection.yml", fleet.inventory, dict(
                    detection, detection_lambda_build_dir=str(workdir / "build-accounts"), canary_accounts=canary_account_entries()),
                 "deploy_detection_accounts"),
            ], env, workdir)
            sys.stdout.write(f"\n[end to end] detection deployed and fleet seeded, side by side, in {time.monotonic() - started:.0f} s\n")
            for playbook, (rc, output) in results.items():
                assert rc == 0, f"{playbook}:\n{output[-4000:]}"
                assert all(stats["failed"] == 0 and stats["unreachable"] == 0 for stats in recap(output).values()), recap(output)
            aws.recorder.flush()
            # The operator's deploy and seed calls are not IAM users' calls (its changes to canaries are
            # recorded as the root user's): nothing to alert on yet.
            assert sink.received() == [] and [r for r in aws.recorder.records() if r["userIdentity"]["type"] != "Root"] == []
            yield Loop(fleet, aws, sink, env, workdir, [output for _rc, output in results.values()])
    finally:
        fleet.restore()


def planted_key(fleet, host, user, profile):
    parser = configparser.RawConfigParser()
    parser.read_string(fleet.read_file(host, user))
    return parser[profile]["aws_access_key_id"]


def attack(loop, host, user, profile, commands=ATTACK):
    """``user`` on ``host`` runs the AWS CLI with the profile the seed planted in its own ~/.aws."""
    loop.sink.clear()
    marker = len(loop.aws.recorder.records())
    key_id = planted_key(loop.fleet, host, user, profile)
    first = time.time()
    results = [loop.fleet.aws_cli(host, user, *args, "--profile", profile, endpoint_url=loop.aws.endpoint_url) for args in commands]
    last = time.time()
    loop.outputs += [result.stdout + result.stderr for result in results]
    loop.aws.recorder.flush()
    records = [record for record in loop.aws.recorder.records()[marker:] if record["userIdentity"].get("accessKeyId") == key_id]
    if records:
        loop.used[key_id] = Use(host, user, profile, key_id, records[-1])
    # The handler posts inside flush(); the wait only covers a slow sink thread.
    alerts = [item for item in loop.sink.wait(lambda item: item.alert is not None, timeout=10) if item.alert is not None]
    if alerts:
        arrived = alerts[0].received_at
        sys.stdout.write(f"\n[end to end] {host} {home_inside(user)}/.aws/credentials [{profile}]: alert {arrived - first:.2f} s after the "
                         f"first call, {arrived - last:.2f} s after the last ({len(commands)} AWS CLI calls in {last - first:.1f} s; delivery "
                         "forced by recorder.flush(), on AWS CloudTrail takes ~5 min)\n")
    return results, alerts, [record for record in loop.aws.recorder.records()[marker:] if record["userIdentity"]["type"] != "Root"]


def assert_cli_saw_a_denied_canary(results, iam_user):
    identity, buckets, users = results
    assert identity.returncode == 0, identity.stderr
    assert json.loads(identity.stdout)["Arn"].endswith(f":user/{iam_user}")
    for result, action in ((buckets, "ListBuckets"), (users, "ListUsers")):
        assert result.returncode != 0, result.stdout
        assert "AccessDenied" in result.stderr and action in result.stderr, result.stderr
        # As a least-privilege user's key: no policy, so no explicit deny to give the canary away.
        assert "because no identity-based policy allows" in result.stderr and "explicit deny" not in result.stderr, result.stderr


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
    # Exactly one alert, for this key: none for the other five canaries of the fleet.
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


# -- the estate report and the scheduled last-used detector ----------------------------------------


@pytest.fixture(scope="module")
def used(loop):
    """A placement used with the AWS CLI by this fixture, on top of what earlier tests used: ``loop.used``.

    The report and detector tests depend on this, never on the tests above having run first.
    """
    host, user, profile = "web02", "root", "backup"
    results, alerts, _records = attack(loop, host, user, profile, commands=QUIET_USE)
    assert results[0].returncode == 0, results[0].stderr
    key_id = planted_key(loop.fleet, host, user, profile)
    assert key_id in loop.used and loop.used[key_id].last_record["awsRegion"] == "eu-north-1"
    assert [item.alert["access_key_id"] for item in alerts] == [key_id]
    return loop.used


def planted_placements(fleet):
    """{key id: (host, file, profile)} of every profile in the fleet's files that the fleet did not start with."""
    preexisting = set()
    for text in fleet.preexisting.values():
        parser = configparser.RawConfigParser()
        parser.read_string(text)
        preexisting |= {parser[section].get("aws_access_key_id") for section in parser.sections()}
    planted = {}
    for host, user, profile, section in fleet_profiles(fleet):
        key_id = section.get("aws_access_key_id")
        if key_id and key_id not in preexisting:
            planted[key_id] = (host, f"{home_inside(user)}/.aws/credentials", profile)
    return planted


def iam_placements(aws):
    """{key id: (host, file, profile, IAM user)} of every canary user in IAM, each with its one key."""
    iam = aws.client("iam", direct=True)
    placements = {}
    for user_name, tags in canary_users(iam).items():
        keys = [key["AccessKeyId"] for key in iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]]
        assert len(keys) == 1, (user_name, keys)
        placements[keys[0]] = (tags["canarykeys:host"], tags["canarykeys:path"], tags["canarykeys:profile"], user_name)
    return placements


def moto_last_use(aws, key_id):
    """(date, service, region) of the key's last use as IAM (moto) answers it; date None when never used."""
    record = aws.client("iam", direct=True).get_access_key_last_used(AccessKeyId=key_id)["AccessKeyLastUsed"]
    date = record.get("LastUsedDate")
    return (date.astimezone(datetime.timezone.utc) if date else None), record.get("ServiceName"), record.get("Region")


class HtmlRows(html.parser.HTMLParser):
    """(class, [cell texts]) of every row of the report's HTML table body."""

    def __init__(self):
        super().__init__()
        self.rows, self._in_body, self._cell = [], False, None

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows.append((dict(attrs).get("class") or "", []))
        elif self._in_body and tag == "td":
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1][1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


MARKDOWN_COLUMNS = ("flags", "host", "account", "path", "profile", "iam_user", "key_id", "status", "age_days", "last_used", "service", "region")


def markdown_rows(markdown):
    """The cells of every row of the Markdown table (header and separator left out)."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| Flags |")]
    return [[cell.strip().strip("`") for cell in line.strip().strip("|").split("|")] for line in lines]


def assert_csv_report(text, in_iam, expected_use, used):
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(row["access_key_id"] for row in rows) == sorted(in_iam)
    for row in rows:
        key_id = row["access_key_id"]
        assert (row["host"], row["file"], row["profile"], row["iam_user"]) == in_iam[key_id], row
        assert row["in_inventory"] == "yes" and row["key_status"] == "Active" and row["key_count"] == "1"
        assert row["account"] == "" and re.fullmatch(r"\d{12}", row["account_id"]), row
        date, service, region = expected_use[key_id]
        if key_id in used:
            assert row["used"] == "USED", row
            # The report keeps whole seconds of IAM's time.
            assert datetime.datetime.fromisoformat(row["last_used"]) == date.replace(microsecond=0), (row["last_used"], date)
            assert (row["last_used_service"], row["last_used_region"]) == (service, region)
        else:
            assert (row["used"], row["last_used"], row["last_used_service"], row["last_used_region"]) == ("", "never", "", ""), row


def assert_markdown_report(markdown, planted, expected_use, used):
    table = [dict(zip(MARKDOWN_COLUMNS, cells)) for cells in markdown_rows(markdown)]
    assert sorted(row["key_id"] for row in table) == sorted(planted)
    for row in table:
        assert (row["host"], row["path"], row["profile"]) == planted[row["key_id"]]
        # Without canary_accounts the account is the controller's own, named by its id.
        assert re.fullmatch(r"\d{12}", row["account"]), row
        if row["key_id"] in used:
            assert (row["flags"], row["service"], row["region"]) == ("USED", *expected_use[row["key_id"]][1:])
        else:
            assert (row["flags"], row["last_used"], row["service"], row["region"]) == ("", "never", "-", "-")
    head = markdown.split("| Flags |")[0]
    assert f"**USED: {len(used)} canary placement(s) have been used." in head
    for use in used.values():
        _date, service, region = expected_use[use.key_id]
        assert re.search(rf"- \*\*USED\*\* {re.escape(use.host)} \(\d{{12}}\) `{re.escape(use.path)}` \[{use.profile}\], key `{use.key_id}`, ", head)
        assert f"({service}, {region})" in head
    assert "NOT IN INVENTORY" not in markdown


def assert_html_report(page, planted, used):
    parser = HtmlRows()
    parser.feed(page)
    assert sorted(cells[6] for _css, cells in parser.rows) == sorted(planted)
    assert sorted(cells[6] for css, cells in parser.rows if css == "used") == sorted(used)
    assert all(cells[9] == "never" for css, cells in parser.rows if css != "used")


def test_report_lists_every_placement_and_flags_exactly_the_used_ones(loop, used):
    planted = planted_placements(loop.fleet)
    in_iam = iam_placements(loop.aws)
    # The seed's placements (2 per webserver, 1 per laptop), each in IAM with the key its file holds.
    assert len(planted) == 2 * len(loop.fleet.webservers) + len(loop.fleet.laptops)
    assert {key_id: placement[:3] for key_id, placement in in_iam.items()} == planted
    assert set(used) < set(planted)
    expected_use = {key_id: moto_last_use(loop.aws, key_id) for key_id in planted}
    # moto recorded the last call of each used key (its own service and region), and nothing for the others.
    for key_id, (date, service, region) in expected_use.items():
        if key_id in used:
            record = used[key_id].last_record
            assert date is not None and (service, region) == (record["eventSource"].split(".")[0], record["awsRegion"]), key_id
        else:
            assert date is None, (key_id, planted[key_id])

    reports = loop.workdir / "reports"
    results = run_side_by_side([(REPORT_PLAYBOOK, loop.fleet.inventory, {"report_dir": str(reports)})], loop.env, loop.workdir)
    rc, output = results[REPORT_PLAYBOOK]
    loop.outputs.append(output)
    assert rc == 0, output[-4000:]
    assert set(recap(output)) == {"localhost"}, "the report contacted a host"
    assert f"USED: {len(used)} canary key(s) used, on " in output
    assert all(use.host in output for use in used.values()) and "NOT IN INVENTORY" not in output

    assert sorted(path.name for path in reports.iterdir()) == ["canary_estate.csv", "canary_estate.html", "canary_estate.md"]
    assert_csv_report((reports / "canary_estate.csv").read_text(), in_iam, expected_use, used)
    assert_markdown_report((reports / "canary_estate.md").read_text(), planted, expected_use, used)
    assert_html_report((reports / "canary_estate.html").read_text(), planted, used)
    loop.outputs += [path.read_text(errors="replace") for path in sorted(reports.iterdir())]
    assert_no_secret_printed(loop)


def test_the_scheduled_detector_alerts_once_per_used_key_then_stays_quiet(loop, used):
    planted = planted_placements(loop.fleet)
    loop.aws.recorder.flush()
    loop.sink.clear()

    # As EventBridge when the schedule comes due; every region, as a misplaced rule would be missed otherwise.
    # This account's schedules: the other canary accounts have theirs (the tests at the end of the module).
    fired = loop.aws.fire_schedules(accounts=[loop.aws.account_id])

    # Only the detector's rule is a schedule (the fast path is off); the role gave EventBridge its permission.
    assert [(entry["rule"], entry["error"]) for entry in fired] == [(LAST_USED_RULE, None)]
    [scan] = fired
    assert scan["destination"].endswith(":function:audit-key-last-used")
    assert scan["event"]["detail-type"] == "Scheduled Event" and scan["event"]["resources"] == [scan["rule_arn"]]
    assert (scan["result"]["canaries"], scan["result"]["alerts"], scan["result"]["recorded"]) == (len(planted), len(used), len(used))
    # The handler posts inside the invocation: everything it sent has arrived.
    received = loop.sink.received()
    assert all(item.path == "/generic" and item.signature_ok is True for item in received), [item.path for item in received]
    alerts = [item.alert for item in received]
    assert sorted(alert["access_key_id"] for alert in alerts) == sorted(used), "one last-used alert per used key, none for the others"
    for alert in alerts:
        use = used[alert["access_key_id"]]
        date, service, region = moto_last_use(loop.aws, use.key_id)
        assert (alert["alert"], alert["detector"], alert["count"]) == ("canary", "last-used", 1)
        assert (alert["host"], alert["path"], alert["profile"]) == (use.host, use.path, use.profile)
        assert alert["iam_user"] == use.last_record["userIdentity"]["userName"]
        [event] = alert["events"]
        assert datetime.datetime.fromisoformat(event["eventTime"]) == date == datetime.datetime.fromisoformat(alert["last_seen"])
        assert (event["eventSource"], event["awsRegion"]) == (f"{service}.amazonaws.com", region)
    loop.outputs += [item.body.decode("utf-8", "replace") for item in received] + [json.dumps(fired, default=str)]
    # The detector's own IAM calls are the operator's: nothing for the CloudTrail detector to report.
    loop.aws.recorder.flush()
    assert len(loop.sink.received()) == len(used)

    # The next scan finds every use already reported (the tag on each canary): no alert at all.
    loop.sink.clear()
    [again] = loop.aws.fire_schedules(accounts=[loop.aws.account_id])
    assert again["error"] is None and (again["result"]["alerts"], again["result"]["used_keys"]) == (0, len(used))
    loop.aws.recorder.flush()
    assert loop.sink.received() == []
    assert_no_secret_printed(loop)


# -- the collection's own runs, someone else's changes to a canary, AWS's exposed-key signal --------

ROTATE_PLAYBOOK = "playbooks/rotate_canaries.yml"
RETIRE_PLAYBOOK = "playbooks/retire_canaries.yml"
FUNCTION = "audit-event-forwarder"
TAMPER_RULE, EXPOSED_RULE = "iam-user-changes", "aws-credentials-exposed"
# The host the collection's own retire run clears; the rotation takes every other host.
RETIRED_HOST = "laptop-bob"
# An administrator of the canary account who is not the controller (an IAM user: the local AWS records
# no assumed-role sessions, docs/local_aws.md).
ADMIN = "it-admin"
# What the administrator gives a canary: a managed policy of the account (moto loads none of AWS's) and a
# console password, which must appear in no alert.
ADMIN_POLICY = "ops-read-only"
CONSOLE_PASSWORD = "Tamper-" + secrets.token_hex(8)


@dataclass
class OwnRuns:
    """What the collection's own rotate and retire runs left: their records, the EventBridge deliveries."""

    records: list
    routed: list
    received: list


@pytest.fixture(scope="module")
def own_runs(loop):
    """Every key of the fleet rotated and the canaries of one host retired, by the collection's playbooks,
    side by side (different hosts), then recorded and delivered at once.

    The tamper tests depend on this, so that rotate and retire never meet a canary they tampered with.
    """
    loop.aws.recorder.flush()
    loop.sink.clear()
    marker, routed = len(loop.aws.recorder.records()), len(loop.aws.recorder.routed())
    results = run_side_by_side([
        (ROTATE_PLAYBOOK, loop.fleet.inventory, {"max_age_days": 0, "canary_target_hosts": f"all:!localhost:!{RETIRED_HOST}"}),
        (RETIRE_PLAYBOOK, loop.fleet.inventory, {"canary_target_hosts": RETIRED_HOST}),
    ], loop.env, loop.workdir)
    for playbook, (rc, output) in results.items():
        loop.outputs.append(output)
        assert rc == 0, f"{playbook}:\n{output[-4000:]}"
        assert all(stats["failed"] == 0 and stats["unreachable"] == 0 for stats in recap(output).values()), recap(output)
    loop.aws.recorder.flush()
    return OwnRuns(loop.aws.recorder.records()[marker:], loop.aws.recorder.routed()[routed:], loop.sink.received())


def placement_on(loop, host):
    """(key id, (host, file, profile, IAM user)) of the first canary of ``host`` in IAM (by file, then profile)."""
    found = sorted((placement, key_id) for key_id, placement in iam_placements(loop.aws).items() if placement[0] == host)
    assert found, f"no canary on {host}"
    placement, key_id = found[0]
    return key_id, placement


@pytest.fixture(scope="module")
def admin(loop):
    """(IAM client, principal ARN, access key id) of an administrator who is not the controller."""
    import boto3  # pylint: disable=import-outside-toplevel

    iam = loop.aws.client("iam")
    iam.create_user(UserName=ADMIN)
    iam.put_user_policy(UserName=ADMIN, PolicyName="administer-iam", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}))
    iam.create_policy(PolicyName=ADMIN_POLICY, PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:List*", "s3:Get*"], "Resource": "*"}]}))
    key = iam.create_access_key(UserName=ADMIN)["AccessKey"]
    session = boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], region_name="us-east-1")
    return session.client("iam", endpoint_url=loop.aws.endpoint_url), f"arn:aws:iam::{loop.aws.account_id}:user/{ADMIN}", key["AccessKeyId"]


def delivered(loop, count):
    """The webhook posts once ``count`` have arrived (the handler posts inside flush and put_events)."""
    return loop.sink.wait(count=count, timeout=10)


def assert_names_the_placement(alert, placement, key_id):
    host, path, profile, user_name = placement
    assert (alert["alert"], alert["host"], alert["path"], alert["profile"], alert["iam_user"]) == ("canary", host, path, profile, user_name)
    assert alert["access_key_id"] == key_id and alert["count"] == 1 and len(alert["events"]) == 1


def test_the_collections_own_seed_rotate_and_retire_raise_no_alert(loop, own_runs):
    account = loop.aws.account_id
    # The deploying principal is trusted: here the local AWS's operator, whose changes to canaries are
    # recorded as the root user's.
    variables = loop.aws.client("lambda").get_function_configuration(FunctionName=FUNCTION)["Environment"]["Variables"]
    assert variables["CANARY_TRUSTED_PRINCIPALS"] == f"arn:aws:iam::{account}:root"

    assert own_runs.received == [], [item.json() for item in own_runs.received]
    changes = {record["eventName"] for record in own_runs.records if record["userIdentity"]["type"] == "Root"}
    assert {"CreateAccessKey", "DeleteAccessKey", "DeleteUser", "TagUser"} <= changes, changes
    assert not any(record["userIdentity"]["type"] != "Root" for record in own_runs.records)
    # The tamper rule did hand the handler every change, the seed's too (delivered when the loop began):
    # none alerted, and those to keys and users were left out as the trusted principal's.
    tamper = [entry for entry in loop.aws.recorder.routed() if entry["rule"] == TAMPER_RULE]
    assert [entry["error"] for entry in tamper if entry["error"]] == []
    assert all(entry["result"]["alerts"] == 0 for entry in tamper)
    keys_and_users = [entry for entry in tamper if entry["event"]["detail"]["eventName"] in ("CreateAccessKey", "DeleteAccessKey", "DeleteUser")]
    assert all(entry["result"]["trusted"] == 1 for entry in keys_and_users)
    # The retired host's one canary (a laptop has one placement) is gone, and its deletion went to the handler.
    retired = [record["requestParameters"]["userName"] for record in own_runs.records if record["eventName"] == "DeleteUser"]
    assert len(retired) == 1 and not any(placement[0] == RETIRED_HOST for placement in iam_placements(loop.aws).values())
    assert retired[0] in [entry["event"]["detail"]["requestParameters"]["userName"] for entry in keys_and_users
                          if entry["event"]["detail"]["eventName"] == "DeleteUser"]
    # Every key the seed and the rotation minted went to the handler: one per placement, one per rotated placement.
    seeded = 2 * len(loop.fleet.webservers) + len(loop.fleet.laptops)
    rotated = [record for record in own_runs.records if record["eventName"] == "CreateAccessKey"]
    assert len(rotated) == seeded - 1
    assert len([entry for entry in keys_and_users if entry["event"]["detail"]["eventName"] == "CreateAccessKey"]) == seeded + len(rotated)
    assert [delivery["error"] for delivery in loop.aws.recorder.deliveries() if delivery["error"]] == []
    assert_no_secret_printed(loop)


def test_an_admin_tampering_with_a_canary_raises_one_alert_per_change_naming_its_host(loop, own_runs, admin):  # pylint: disable=unused-argument
    iam, admin_arn, admin_key = admin
    key_id, placement = placement_on(loop, "web02")
    user_name = placement[3]
    policy_arn = f"arn:aws:iam::{loop.aws.account_id}:policy/{ADMIN_POLICY}"
    loop.aws.recorder.flush()
    loop.sink.clear()

    iam.attach_user_policy(UserName=user_name, PolicyArn=policy_arn)
    iam.create_login_profile(UserName=user_name, Password=CONSOLE_PASSWORD, PasswordResetRequired=False)
    iam.update_access_key(UserName=user_name, AccessKeyId=key_id, Status="Inactive")
    loop.aws.recorder.flush()

    received = delivered(loop, 4)
    assert all(item.path == "/generic" and item.signature_ok is True for item in received)
    tamper = {item.alert["change"]["call"]: item.alert for item in received if item.alert["detector"] == "tamper"}
    others = [item.alert for item in received if item.alert["detector"] != "tamper"]
    # One tamper alert per change (each is one EventBridge event), and nothing else for the canary.
    assert len(received) == 4 and sorted(tamper) == ["iam:AttachUserPolicy", "iam:CreateLoginProfile", "iam:UpdateAccessKey"]
    for call, alert in tamper.items():
        assert_names_the_placement(alert, placement, key_id if call == "iam:UpdateAccessKey" else None)
        assert alert["events"][0]["eventName"] == call.split(":")[1]
        change = alert["change"]
        assert (change["principal_arn"], change["principal_type"], change["source_ip"]) == (admin_arn, "IAMUser", "127.0.0.1")
        assert (change["by_aws"], change["quarantine_policy"]) == (False, None)
        assert change["request_parameters"]["userName"] == user_name
    assert tamper["iam:AttachUserPolicy"]["change"]["request_parameters"]["policyArn"] == policy_arn
    assert tamper["iam:UpdateAccessKey"]["change"]["request_parameters"]["status"] == "Inactive"
    # The administrator's own calls, seen through the trail: an IAM user that is no canary, never dropped.
    [activity] = others
    assert (activity["detector"], activity["alert"], activity["iam_user"], activity["access_key_id"]) == (
        "cloudtrail", "unknown-iam-user", ADMIN, admin_key)
    assert [event["eventName"] for event in activity["events"]] == ["AttachUserPolicy", "CreateLoginProfile", "UpdateAccessKey"]
    assert all(CONSOLE_PASSWORD not in item.body.decode("utf-8", "replace") for item in received)
    loop.outputs += [item.body.decode("utf-8", "replace") for item in received]
    assert_no_secret_printed(loop)


def test_aws_finding_a_key_published_raises_one_exposed_alert_naming_its_host(loop, own_runs):  # pylint: disable=unused-argument
    key_id, placement = placement_on(loop, "laptop-alice")
    loop.aws.recorder.flush()
    loop.sink.clear()

    event = eventbridge.health_event(loop.aws.account_id, key_id, user_name=placement[3])
    entries = loop.aws.recorder.put_events(event)
    # Other AWS Health events are not routed at all.
    assert loop.aws.recorder.put_events(eventbridge.health_event(loop.aws.account_id, key_id, event_type="AWS_EC2_OPERATIONAL_ISSUE")) == []

    assert [(entry["rule"], entry["error"]) for entry in entries] == [(EXPOSED_RULE, None)]
    assert entries[0]["result"]["alerts"] == 1
    [item] = delivered(loop, 1)
    assert item.path == "/generic" and item.signature_ok is True and len(loop.sink.received()) == 1
    alert = item.alert
    assert alert["detector"] == "exposed"
    assert_names_the_placement(alert, placement, key_id)
    assert alert["exposure"] == {"event_type": "AWS_RISK_CREDENTIALS_EXPOSED", "event_arn": event["detail"]["eventArn"],
                                 "description": event["detail"]["eventDescription"][0]["latestDescription"]}
    assert (alert["events"][0]["eventID"], alert["events"][0]["eventSource"]) == (event["id"], "health.amazonaws.com")
    loop.outputs.append(item.body.decode("utf-8", "replace"))
    assert_no_secret_printed(loop)


def test_tamper_and_exposed_alerts_read_in_slack(loop, own_runs, admin):  # pylint: disable=unused-argument
    """The same through the Slack rendering: the deployed function's webhook switched to Slack for one change
    and one Health event (as the role would set it with detection_webhook_format: slack)."""
    iam, admin_arn, _admin_key = admin
    key_id, (host, path, profile, user_name) = placement_on(loop, "web01")
    functions = loop.aws.client("lambda")
    variables = functions.get_function_configuration(FunctionName=FUNCTION)["Environment"]["Variables"]
    slack = {name: value for name, value in variables.items() if name != "CANARY_WEBHOOK_SECRET"}
    slack.update(CANARY_WEBHOOK_FORMAT="slack", CANARY_WEBHOOK_URL=loop.sink.url("/slack"))
    loop.aws.recorder.flush()
    loop.sink.clear()
    functions.update_function_configuration(FunctionName=FUNCTION, Environment={"Variables": slack})
    try:
        iam.put_user_policy(UserName=user_name, PolicyName="debug-access", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}))
        loop.aws.recorder.flush()
        event = eventbridge.health_event(loop.aws.account_id, key_id, user_name=user_name)
        loop.aws.recorder.put_events(event)
        received = delivered(loop, 3)
    finally:
        functions.update_function_configuration(FunctionName=FUNCTION, Environment={"Variables": variables})

    assert len(received) == 3 and {item.path for item in received} == {"/slack"}
    messages = {item.json()["text"].split(":")[0]: item.json() for item in received}
    assert sorted(messages) == ["Canary AWS key published, AWS says", "Canary AWS user tampered with", "Unknown IAM user activity in the canary account"]
    where = f"{host} {path} [{profile}]"
    for headline in ("Canary AWS user tampered with", "Canary AWS key published, AWS says"):
        message = messages[headline]
        assert message["blocks"][0]["text"]["text"] == f"{headline}: {where}"
        fields = [field["text"] for block in message["blocks"] if block.get("fields") for field in block["fields"]]
        assert {f"*Host*\n{host}", f"*File*\n{path}", f"*Profile*\n{profile}"} <= set(fields), fields
    tampered = json.dumps(messages["Canary AWS user tampered with"])
    assert admin_arn in tampered and "PutUserPolicy" in tampered
    exposed = json.dumps(messages["Canary AWS key published, AWS says"])
    assert json.dumps(event["detail"]["eventDescription"][0]["latestDescription"])[1:-1] in exposed
    loop.outputs += [item.body.decode("utf-8", "replace") for item in received]
    assert_no_secret_printed(loop)


# -- several canary accounts ------------------------------------------------------------------------

# One host of each canary account, its user, and the file and profile the account's canary is planted in:
# a file of its own, so that the fleet's credentials files (which the report tests read) stay as the seed left them.
ACCOUNT_HOSTS = {"canary-east": ("web01", "deploy"), "canary-west": ("web02", "deploy")}
ACCOUNT_FILE = ".aws/archive-credentials"
ACCOUNT_PROFILE = "archive"
PLANT_PLAY = """---
- name: Plant one canary for a host in each canary account
  hosts: "{{ plant_hosts }}"
  gather_facts: false
  tasks:
    - name: Mint the host's canary in its account
      canarykeys.aws.canary_key:
        host: "{{ inventory_hostname }}"
        path: "{{ plant_path }}"
        profile_name: "{{ plant_profile }}"
        account: "{{ plant_accounts[inventory_hostname] }}"
        planted_by: test_end_to_end.py
      delegate_to: localhost
      become: false
      no_log: true
      register: plant_minted

    - name: Write it into the user's file
      canarykeys.aws.credentials_profile:
        owner: "{{ plant_user }}"
        path: "{{ plant_path }}"
        profile: "{{ plant_profile }}"
        access_key_id: "{{ plant_minted.access_key_id }}"
        secret_access_key: "{{ plant_minted.secret_access_key }}"
        state: present
      no_log: true
"""


@pytest.fixture(scope="module")
def account_canaries(loop):
    """{account name: (host, file, key id)}: a canary planted for a host in each canary account, not used yet."""
    playbook = loop.workdir / "plant_accounts.yml"
    playbook.write_text(PLANT_PLAY, encoding="utf-8")
    entries = {entry["name"]: entry for entry in canary_account_entries()}
    hosts = {host: entries[name] for name, (host, _user) in ACCOUNT_HOSTS.items()}
    path = f"{home_inside('deploy')}/{ACCOUNT_FILE}"
    results = run_side_by_side([(str(playbook), loop.fleet.inventory, {
        "plant_hosts": ",".join(hosts), "plant_accounts": hosts, "plant_user": "deploy", "plant_path": path,
        "plant_profile": ACCOUNT_PROFILE})], loop.env, loop.workdir)
    rc, output = results[str(playbook)]
    loop.outputs.append(output)
    assert rc == 0, output[-4000:]
    planted = {}
    for name, (host, user) in ACCOUNT_HOSTS.items():
        parser = configparser.RawConfigParser()
        parser.read_string(loop.fleet.read_file(host, user, ACCOUNT_FILE))
        planted[name] = (host, path, parser[ACCOUNT_PROFILE]["aws_access_key_id"], parser[ACCOUNT_PROFILE]["aws_secret_access_key"])
    yield {name: placement[:3] for name, placement in planted.items()}
    # The secrets are checked here, where they are known: no run's output nor alert printed one.
    printed = loop.outputs + [item.body.decode("utf-8", "replace") for item in loop.sink.received()]
    assert all(placement[3] not in text for placement in planted.values() for text in printed)


def test_detection_is_deployed_into_each_canary_account_with_its_name_and_deployer(loop):
    home = loop.aws.client("lambda").get_function_configuration(FunctionName=FUNCTION)["Environment"]["Variables"]
    assert "CANARY_ACCOUNT_NAME" not in home, "without canary_accounts the stack is as with a single account"
    for name, account in CANARY_ACCOUNTS:
        functions = loop.aws.client("lambda", account_id=account)
        variables = {function: functions.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
                     for function in (FUNCTION, "audit-key-last-used")}
        for environment in variables.values():
            assert environment["CANARY_ACCOUNT_NAME"] == name
            assert environment["CANARY_SNS_TOPIC_ARN"] == f"arn:aws:sns:us-east-1:{account}:security-alerts"
        # The alert Lambda trusts the deployer there: every session of the role the run assumed, which the seed's
        # runs use too.
        assert variables[FUNCTION]["CANARY_TRUSTED_PRINCIPALS"] == f"arn:aws:sts::{account}:assumed-role/{DEPLOYER}/*"
        trails = loop.aws.client("cloudtrail", account_id=account).describe_trails()["trailList"]
        assert [(trail["Name"], trail["S3BucketName"]) for trail in trails] == [("org-audit-trail", f"org-audit-trail-{account}")]


def test_a_canary_used_in_each_account_raises_one_alert_naming_host_and_account(loop, account_canaries):
    for name, account in CANARY_ACCOUNTS:
        host, path, key_id = account_canaries[name]
        _host, user = ACCOUNT_HOSTS[name]
        loop.sink.clear()
        deliveries = len(loop.aws.recorder.deliveries())

        result = loop.fleet.aws_cli(host, user, "sts", "get-caller-identity", "--profile", ACCOUNT_PROFILE,
                                    endpoint_url=loop.aws.endpoint_url, env={"AWS_SHARED_CREDENTIALS_FILE": path})
        loop.outputs.append(result.stdout + result.stderr)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["Account"] == account
        loop.aws.recorder.flush()

        received = [item for item in loop.sink.wait(lambda item: item.alert is not None, timeout=10) if item.alert is not None]
        assert len(received) == 1, [item.alert for item in received]
        alert = received[0].alert
        assert received[0].path == "/generic" and received[0].signature_ok is True
        assert (alert["detector"], alert["alert"], alert["account"], alert["account_id"]) == ("cloudtrail", "canary", name, account)
        assert (alert["host"], alert["path"], alert["profile"], alert["access_key_id"]) == (host, path, ACCOUNT_PROFILE, key_id)
        assert [event["eventName"] for event in alert["events"]] == ["GetCallerIdentity"]
        # From that account's own trail and function, which read that account's IAM.
        [delivery] = loop.aws.recorder.deliveries()[deliveries:]
        assert delivery["destination"] == f"arn:aws:lambda:us-east-1:{account}:function:{FUNCTION}" and delivery["error"] is None
        loop.outputs.append(received[0].body.decode("utf-8", "replace"))
