# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The last-used detector, end to end in-process.

Canary users tagged in moto's IAM by canary_mapping.mapping_tags, as the seed leaves them.  A key is
*used* by a real signed request with that key (sts:GetCallerIdentity, s3:ListBuckets...): moto
records the key's last use (time, service, region) for every request signed with a key it knows,
exactly where IAM's GetAccessKeyLastUsed reads it; nothing is set behind the API's back.  Alerts are
received by a real HTTP server (generic webhook) and an SQS queue subscribed to the SNS topic.  The
detector runs through its real entry point.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import subprocess
import sys
import time
import types
import uuid

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

import alert_channels
import alert_payload
import canary_mapping
import iam_reads
import last_used_detector
import scan_cursor

ACCOUNT = "123456789012"
PATH = "/home/deploy/.aws/credentials"
REMINDER = "web03 deploy user - planted by seed_canaries.yml - do not use"
SECRET = "whsec-last-used-test-8b1e"  # the webhook signing secret of these tests
TAG = canary_mapping.TAG_LAST_USED_REPORTED
REPO = pathlib.Path(__file__).resolve().parents[3]
ROLE_TASKS = REPO / "roles" / "detection" / "tasks" / "last_used_detector.yml"
PAYLOAD_FIELDS = ["detector", "alert", "account", "account_id", "iam_user", "access_key_id", "host", "path", "profile", "reminder",
                  "planted_at", "count", "first_seen", "last_seen", "events"]


@pytest.fixture(autouse=True)
def detector(aws, monkeypatch):
    """moto for every test, no IAM client left over from another test's mock, and no waiting.

    The pace (CANARY_IAM_CALLS_PER_SECOND) is tested on its own; here it would only slow the tests.
    """
    monkeypatch.setenv("CANARY_IAM_CALLS_PER_SECOND", "10000")
    monkeypatch.setattr(last_used_detector, "REPORT_POLL_SECONDS", 0.01)
    last_used_detector.reset_state()
    yield last_used_detector
    last_used_detector.reset_state()


@pytest.fixture
def iam():
    return boto3.client("iam")


class Planted:
    """A canary user with one key (or more). The secret stays in this object: nothing may print it.

    A canary's key is named on the user (key-id tags) as canary_key leaves it; ``add_key`` makes a key
    nobody named (a rotation that crashed before it tagged, a key made by hand).
    """

    def __init__(self, iam, user, iam_path="/", **mapping):
        self.iam = iam
        self.user = user
        self.keys = {}
        if mapping:
            tags = canary_mapping.mapping_tags(planted_by="seed_canaries.yml", **mapping)
            iam.create_user(UserName=user, Path=iam_path, Tags=[{"Key": key, "Value": value} for key, value in tags.items()])
        else:
            iam.create_user(UserName=user, Path=iam_path)
        self.key_id = self.add_key(named=bool(mapping))

    def add_key(self, named=False):
        created = self.iam.create_access_key(UserName=self.user)["AccessKey"]
        self.keys[created["AccessKeyId"]] = created["SecretAccessKey"]
        if named:
            tags = canary_mapping.planted_key_tags(created["AccessKeyId"], created["CreateDate"])
            self.iam.tag_user(UserName=self.user, Tags=[{"Key": key, "Value": value} for key, value in tags.items()])
        return created["AccessKeyId"]

    def use(self, key_id=None, service="sts", region="us-east-1"):
        """One real call signed with the key, as an attacker holding the planted file would make."""
        key_id = key_id or self.key_id
        session = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=self.keys[key_id], region_name=region)
        if service == "sts":
            session.client("sts").get_caller_identity()
        elif service == "s3":
            session.client("s3").list_buckets()
        elif service == "sqs":
            session.client("sqs").list_queues()
        # moto stamps the use with the wall clock; a later use must be strictly later.
        time.sleep(0.002)
        return self.last_used(key_id)

    def last_used(self, key_id=None):
        """What IAM says, read with the test's own credentials (which are no canary's)."""
        return self.iam.get_access_key_last_used(AccessKeyId=key_id or self.key_id)["AccessKeyLastUsed"]

    def reported(self):
        tags = canary_mapping.tags_list_to_dict(self.iam.list_user_tags(UserName=self.user)["Tags"])
        return tags.get(TAG)


@pytest.fixture
def plant(iam):
    planted = []

    def _plant(user, host=None, path=PATH, profile="prod", reminder="", iam_path="/"):
        mapping = {} if host is None else dict(host=host, path=path, profile=profile, reminder=reminder, planted_at="2024-05-01T10:00:00Z")
        canary = Planted(iam, user, iam_path, **mapping)
        planted.append(canary)
        return canary

    _plant.secrets = lambda: [secret for canary in planted for secret in canary.keys.values()]
    return _plant


@pytest.fixture
def web03(plant):
    return plant("web03-backup", "web03", reminder=REMINDER)


@pytest.fixture
def generic_webhook(monkeypatch, webhook):
    monkeypatch.setenv("CANARY_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("CANARY_WEBHOOK_FORMAT", "generic")
    monkeypatch.setenv("CANARY_WEBHOOK_SECRET", SECRET)
    return webhook


@pytest.fixture
def wire_calls(detector):
    """IAM operations as the detector's client sends them, to check the detector's own counts."""
    counts = {}

    def count(model, **_kwargs):
        counts[model.name] = counts.get(model.name, 0) + 1

    detector.iam_client().meta.events.register("before-call.iam", count)
    return counts


def stamp(value):
    return last_used_detector.iso(last_used_detector.utc(value))


# ---------------------------------------------------------------- the test


def test_a_used_key_raises_exactly_one_alert_and_none_on_the_next_run(monkeypatch, web03, generic_webhook, sns_inbox, context,
                                                                      plant, caplog, capsys):
    monkeypatch.setenv("CANARY_SNS_TOPIC_ARN", sns_inbox.topic_arn)
    used = web03.use(service="sts", region="eu-west-1")
    assert used["ServiceName"] == "sts" and used["Region"] == "eu-west-1"  # moto recorded the call itself
    when = stamp(used["LastUsedDate"])

    summary = last_used_detector.handler({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}, context)

    assert (summary["alerts"], summary["undelivered"], summary["recorded"]) == (1, 0, 1)
    ((_path, headers, body),) = generic_webhook.requests
    assert alert_channels.signature(SECRET, body) == headers["X-Canary-Signature"]
    alert = json.loads(body)
    assert list(alert) == PAYLOAD_FIELDS
    assert {key: alert[key] for key in PAYLOAD_FIELDS[:-1]} == {
        "detector": "last-used", "alert": "canary", "account": "", "account_id": ACCOUNT, "iam_user": "web03-backup", "access_key_id": web03.key_id,
        "host": "web03", "path": PATH, "profile": "prod", "reminder": REMINDER, "planted_at": "2024-05-01T10:00:00Z",
        "count": 1, "first_seen": when, "last_seen": when,
    }
    (event,) = alert["events"]
    assert {key: value for key, value in event.items() if key != "eventID"} == {
        "eventTime": when, "eventSource": "sts.amazonaws.com", "eventName": None, "awsRegion": "eu-west-1",
        "sourceIPAddress": None, "userAgent": None, "errorCode": None,
    }
    assert uuid.UUID(event["eventID"]).version == 5
    assert web03.reported() == when

    (notification,) = sns_inbox.messages()
    assert notification["Subject"] == "Canary AWS key used: web03 /home/deploy/.aws/credentials [prod]"
    message = notification["Message"]
    assert REMINDER in message and f"Last used:  {when}" in message
    # IAM's record does not say whether the call succeeded: the rendering must not claim "OK".
    call_line = next(line for line in message.splitlines() if line.startswith(f"  {when}"))
    assert call_line.split()[:5] == [when, "sts:?", "eu-west-1", "-", "?"]
    assert json.loads(message.split("as the generic webhook receives it):\n", 1)[1]) == alert

    # The next scheduled run: the same use is already reported.
    again = last_used_detector.handler({}, context)

    assert (again["alerts"], again["canaries"], again["used_keys"]) == (0, 1, 1)
    assert len(generic_webhook.requests) == 1 and sns_inbox.messages() == []

    printed = capsys.readouterr()
    for text in (caplog.text, printed.out, printed.err, body.decode(), message):
        for secret in plant.secrets() + [SECRET, "s3cr3tWebhookPathToken"]:
            assert secret not in text


def test_a_later_use_alerts_again_with_its_own_service_and_region(web03, generic_webhook, context):
    first = stamp(web03.use(service="sts")["LastUsedDate"])
    last_used_detector.handler({}, context)

    second = stamp(web03.use(service="s3", region="us-west-2")["LastUsedDate"])
    summary = last_used_detector.handler({}, context)
    last_used_detector.handler({}, context)

    assert summary["alerts"] == 1
    alerts = generic_webhook.json_bodies()
    assert [alert["last_seen"] for alert in alerts] == [first, second] and first < second
    assert (alerts[1]["events"][0]["eventSource"], alerts[1]["events"][0]["awsRegion"]) == ("s3.amazonaws.com", "us-west-2")
    assert alerts[0]["events"][0]["eventID"] != alerts[1]["events"][0]["eventID"]
    assert web03.reported() == second


def test_the_alert_names_the_canary_account_it_watches(monkeypatch, web03, generic_webhook, context):
    monkeypatch.setenv("CANARY_ACCOUNT_NAME", "canary-east")
    web03.use()

    last_used_detector.handler({}, context)

    (alert,) = generic_webhook.json_bodies()
    assert (alert["detector"], alert["account"], alert["account_id"], alert["host"]) == ("last-used", "canary-east", ACCOUNT, "web03")


# ---------------------------------------------------------------- who is read, and at what cost


def test_unused_keys_and_other_users_never_alert_at_the_documented_cost(plant, generic_webhook, context, iam, wire_calls):
    plant("web01-backup", "web01")  # planted, never used
    rotated = plant("db01-backup", "db01")
    rotated.add_key()  # a canary mid-rotation: two keys, neither used
    plant("web02-backup", "web02")
    ci = plant("ci-deployer")  # an ordinary user of the account, used: not this detector's business
    ci.use()
    plant("alice.admin").use(service="sqs")

    summary = last_used_detector.handler({}, context)
    again = last_used_detector.handler({}, context)

    assert generic_webhook.requests == []
    assert (summary["users"], summary["canaries"], summary["keys"], summary["used_keys"], summary["alerts"]) == (5, 3, 4, 0, 0)
    # ceil(U / 1000) GetAccountAuthorizationDetails + the credential report (IAM starts it, then it is
    # COMPLETE) + 1 GetAccessKeyLastUsed for each of the 2 canaries it confirms + ListAccessKeys and
    # GetAccessKeyLastUsed x 2 for the one it does not (two keys); no write.
    assert summary["iam_calls"] == {"GetAccountAuthorizationDetails": 1, "GenerateCredentialReport": 2, "GetCredentialReport": 1,
                                    "ListAccessKeys": 1, "GetAccessKeyLastUsed": 4}
    assert (summary["confirmed_by_report"], summary["listed"], summary["cycle_runs"], summary["deferred"]) == (2, 1, 1, 0)
    assert again["iam_calls"] == dict(summary["iam_calls"], GenerateCredentialReport=1)
    assert wire_calls == {name: summary["iam_calls"][name] + again["iam_calls"][name] for name in summary["iam_calls"]}
    assert iam.list_user_tags(UserName="ci-deployer")["Tags"] == [] == iam.list_user_tags(UserName="alice.admin")["Tags"]


def test_only_canaries_under_the_iam_path_are_read(monkeypatch, plant, generic_webhook, context):
    monkeypatch.setenv("CANARY_IAM_PATH", "/svc")
    inside = plant("web04-backup", "web04", iam_path="/svc/backup/")
    outside = plant("web05-backup", "web05")
    inside.use()
    outside.use()

    summary = last_used_detector.handler({}, context)

    # The function's role may read keys under the path only: a user elsewhere is not even tried.
    assert summary["iam_calls"]["GetAccessKeyLastUsed"] == 1 and summary["canaries"] == 1
    assert [alert["iam_user"] for alert in generic_webhook.json_bodies()] == ["web04-backup"]


# ---------------------------------------------------------------- keys the tags do not name


@pytest.fixture
def wire_keys(detector):
    """The access key ids of every GetAccessKeyLastUsed the detector's client sends, in order."""
    keys = []
    detector.iam_client().meta.events.register("provide-client-params.iam.GetAccessKeyLastUsed",
                                               lambda params, **_kwargs: keys.append(params["AccessKeyId"]))
    return keys


def test_a_second_key_left_by_a_crashed_rotation_is_listed_and_its_use_reported(plant, generic_webhook, context, wire_calls):
    plant("web01-backup", "web01")
    crashed = plant("db01-backup", "db01")
    leftover = crashed.add_key()  # the rotation made a key, then died before tagging or deleting anything
    when = stamp(crashed.use(leftover, service="s3")["LastUsedDate"])

    summary = last_used_detector.handler({}, context)

    assert [(alert["iam_user"], alert["access_key_id"], alert["last_seen"]) for alert in generic_webhook.json_bodies()] == [
        ("db01-backup", leftover, when)]
    # Only the canary the report does not confirm (two keys) is listed; the other's key is read directly.
    assert (summary["listed"], summary["confirmed_by_report"], summary["keys"]) == (1, 1, 3)
    assert wire_calls["ListAccessKeys"] == 1 and wire_calls["GetAccessKeyLastUsed"] == 3


def test_a_key_the_tags_do_not_name_is_listed_and_its_use_reported(plant, iam, generic_webhook, context, wire_calls):
    replaced = plant("web02-backup", "web02")
    iam.delete_access_key(UserName=replaced.user, AccessKeyId=replaced.key_id)
    time.sleep(1.1)  # the report names keys by their second of creation: another second, another key
    other = replaced.add_key()  # made by hand (or by a crashed rotation): the tags still name the deleted key
    when = stamp(replaced.use(other)["LastUsedDate"])

    summary = last_used_detector.handler({}, context)

    assert [(alert["access_key_id"], alert["last_seen"]) for alert in generic_webhook.json_bodies()] == [(other, when)]
    assert (summary["listed"], summary["confirmed_by_report"]) == (1, 0) and wire_calls["ListAccessKeys"] == 1


def test_a_named_key_gone_since_the_report_is_listed_on_the_next_run(plant, iam, generic_webhook, context, monkeypatch):
    """The report may be hours old: a planted key deleted since is retried with a listing, not lost."""
    canary = plant("web03-backup", "web03")
    stale = last_used_detector.read_report
    report = {}

    def old_report(call, wait):
        report.setdefault("first", stale(call, wait))
        return report["first"]

    monkeypatch.setattr(last_used_detector, "read_report", old_report)
    last_used_detector.handler({}, context)  # the report of this moment: one key, the named one
    iam.delete_access_key(UserName=canary.user, AccessKeyId=canary.key_id)
    newer = canary.add_key()  # a rotation that has not tagged yet
    canary.use(newer)

    first = last_used_detector.handler({}, context)
    second = last_used_detector.handler({}, context)

    assert (first["alerts"], first["listed"]) == (0, 0)
    assert (second["retried"], second["listed"], [item["access_key_id"] for item in second["sent"]]) == (1, 1, [newer])


# ---------------------------------------------------------------- the budget and the rotation


def test_the_pace_spaces_calls_whatever_the_threads():
    clock = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)

    calls = iam_reads.IAMCalls(types.SimpleNamespace(list_users=lambda: {}), rate=4, sleep=sleep, clock=lambda: clock[0])
    for _call in range(5):
        calls("list_users")

    # Five calls at once: the first now, each next one a quarter of a second after the one before.
    assert slept == [0.25, 0.5, 0.75, 1.0] and calls.counts == {"ListUsers": 5}


@pytest.mark.parametrize("budget", [9, 14])
def test_each_run_keeps_to_its_budget_and_every_key_is_read_within_the_promised_runs(
        budget, plant, generic_webhook, context, monkeypatch, wire_calls, wire_keys):
    monkeypatch.setattr(last_used_detector, "MIN_CALLS_PER_RUN", 5)
    monkeypatch.setenv("CANARY_IAM_CALLS_PER_RUN", str(budget))
    canaries = [plant(f"web{index:02d}-backup", f"web{index:02d}") for index in range(12)]
    crashed = canaries[5]
    crashed.add_key()  # one canary the report cannot confirm: 3 calls at most
    every_key = {key for canary in canaries for key in canary.keys}

    runs = []
    for run in range(12):
        if run == 4:
            used_at = stamp(canaries[0].use()["LastUsedDate"])
        before_calls, before_keys = dict(wire_calls), len(wire_keys)
        summary = last_used_detector.handler({}, context)
        made = {name: count - before_calls.get(name, 0) for name, count in wire_calls.items()}
        alert_writes = sum(1 for item in summary["sent"] if item["recorded"])
        # Reads and the cursor's write stay within the budget; an alert's record comes on top.
        assert sum(made.values()) - alert_writes <= budget
        runs.append((set(wire_keys[before_keys:]), summary))

    # The first run waits for IAM to build the report (one more call): its capacity is a call less.
    (cycle,) = {summary["cycle_runs"] for _keys, summary in runs[1:]}
    assert cycle > 1 and runs[0][1]["cycle_runs"] >= cycle
    # Whatever run one starts from, the `cycle_runs` runs from there read every key.
    for start in range(len(runs) - cycle):
        promised = runs[start][1]["cycle_runs"]
        assert set().union(*(keys for keys, _summary in runs[start:start + promised])) == every_key
    # The use is reported once, within a cycle of the run after it.
    alerts = generic_webhook.json_bodies()
    assert [(alert["iam_user"], alert["last_seen"]) for alert in alerts] == [(canaries[0].user, used_at)]
    assert next(index for index, (_keys, summary) in enumerate(runs) if summary["alerts"]) < 4 + cycle


def test_an_alert_nobody_took_is_checked_first_by_the_next_run(plant, webhook, context, monkeypatch, retry_sleeps):
    monkeypatch.setattr(last_used_detector, "MIN_CALLS_PER_RUN", 5)
    monkeypatch.setenv("CANARY_IAM_CALLS_PER_RUN", "8")
    monkeypatch.setenv("CANARY_WEBHOOK_URL", webhook.url)
    canaries = sorted((plant(f"web{index:02d}-backup", f"web{index:02d}") for index in range(10)),
                      key=lambda canary: scan_cursor.ring_position(canary.user))
    used = canaries[0]  # first on the ring: the first run reads it
    used.use()
    webhook.statuses = [404]

    with pytest.raises(last_used_detector.AlertDeliveryFailed):
        last_used_detector.handler({}, context)
    summary = last_used_detector.handler({}, context)

    assert summary["retried"] == 1 and [item["iam_user"] for item in summary["sent"]] == [used.user]
    assert used.reported() is not None and summary["deferred"] > 0


# ---------------------------------------------------------------- failures


def test_every_channel_down_raises_and_leaves_the_use_unreported_until_a_channel_takes_it(monkeypatch, web03, webhook, sns_inbox, context,
                                                                                          retry_sleeps, caplog):
    monkeypatch.setenv("CANARY_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("CANARY_SNS_TOPIC_ARN", f"arn:aws:sns:us-east-1:{ACCOUNT}:no-such-topic")
    webhook.statuses = [502] * 10
    web03.use()

    with pytest.raises(last_used_detector.AlertDeliveryFailed):
        last_used_detector.handler({}, context)

    assert len(webhook.requests) == 3 and retry_sleeps == [0.5, 1.0]
    assert web03.reported() is None
    (logged,) = [json.loads(item.getMessage()) for item in caplog.records if item.getMessage().startswith('{"detector"')]
    assert (logged["detector"], logged["host"], logged["access_key_id"]) == ("last-used", "web03", web03.key_id)

    # The channels are back: the next scan still finds the use unreported and sends the same alert.
    monkeypatch.setenv("CANARY_SNS_TOPIC_ARN", sns_inbox.topic_arn)
    webhook.statuses = []
    summary = last_used_detector.handler({}, context)

    assert summary["recorded"] == 1 and web03.reported() == logged["last_seen"]
    assert webhook.json_bodies()[-1]["events"][0]["eventID"] == logged["events"][0]["eventID"]
    assert len(sns_inbox.messages()) == 1


def test_one_channel_taking_the_alert_is_enough_to_record_it(monkeypatch, web03, webhook, sns_inbox, context, retry_sleeps):
    monkeypatch.setenv("CANARY_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("CANARY_SNS_TOPIC_ARN", sns_inbox.topic_arn)
    webhook.statuses = [500] * 10
    web03.use()

    summary = last_used_detector.handler({}, context)

    assert summary["sent"][0]["delivered"] == ["sns:security-alerts"] and summary["sent"][0]["recorded"]
    assert web03.reported() is not None and len(sns_inbox.messages()) == 1


def test_two_used_keys_report_oldest_first_and_the_tag_never_skips_a_lost_one(plant, generic_webhook, context, retry_sleeps):
    canary = plant("db02-backup", "db02")
    newer_key = canary.add_key()
    older = stamp(canary.use()["LastUsedDate"])
    newer = stamp(canary.use(newer_key, service="s3")["LastUsedDate"])
    # The first alert goes through, the webhook then refuses the second (404: not retried).
    generic_webhook.statuses = [200, 404]

    with pytest.raises(last_used_detector.AlertDeliveryFailed):
        last_used_detector.handler({}, context)

    assert [alert["last_seen"] for alert in generic_webhook.json_bodies()] == [older, newer]
    assert canary.reported() == older

    summary = last_used_detector.handler({}, context)

    assert [item["access_key_id"] for item in summary["sent"]] == [newer_key] and canary.reported() == newer


class RefusingIam:
    """moto's IAM with two things moto does not do: fail on one user's keys (AccessDenied on the listing, as
    a policy that misses a user would; an IAM failure on the key) and page GetAccountAuthorizationDetails
    the way IAM does."""

    def __init__(self, client, refused_user, page_size):
        self.client = client
        self.refused_user = refused_user
        self.page_size = page_size

    def get_account_authorization_details(self, Filter, MaxItems, Marker=None):  # noqa: N803 (boto3's names)
        users = self.client.get_account_authorization_details(Filter=Filter, MaxItems=MaxItems)["UserDetailList"]
        start = int(Marker or 0)
        end = start + min(self.page_size, MaxItems)
        page = {"UserDetailList": users[start:end], "IsTruncated": end < len(users)}
        if page["IsTruncated"]:
            page["Marker"] = str(end)
        return page

    def list_access_keys(self, UserName):  # noqa: N803
        if UserName == self.refused_user:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "ListAccessKeys")
        return self.client.list_access_keys(UserName=UserName)

    def get_access_key_last_used(self, AccessKeyId):  # noqa: N803
        refused = [key["AccessKeyId"] for key in self.client.list_access_keys(UserName=self.refused_user)["AccessKeyMetadata"]]
        if AccessKeyId in refused:
            raise ClientError({"Error": {"Code": "ServiceFailure", "Message": "internal failure"}}, "GetAccessKeyLastUsed")
        return self.client.get_access_key_last_used(AccessKeyId=AccessKeyId)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_an_unreadable_canary_fails_the_scan_but_not_the_others(plant, generic_webhook, context, caplog):
    used = [plant(f"web0{index}-backup", f"web0{index}") for index in range(1, 6)]
    for canary in used:
        canary.use()

    with pytest.raises(last_used_detector.IncompleteScan):
        last_used_detector.process({}, context, iam=RefusingIam(boto3.client("iam"), "web03-backup", page_size=2))

    assert sorted(alert["iam_user"] for alert in generic_webhook.json_bodies()) == ["web01-backup", "web02-backup", "web04-backup", "web05-backup"]
    assert used[2].reported() is None and all(canary.reported() for canary in used if canary.user != "web03-backup")
    assert "cannot read the access keys of IAM user web03-backup" in caplog.text
    (summary,) = [json.loads(item.getMessage()) for item in caplog.records if item.getMessage().startswith('{"users"')]
    assert (summary["read_errors"], summary["recorded"], summary["iam_calls"]["GetAccountAuthorizationDetails"]) == (1, 4, 3)


def test_no_canary_is_started_without_time_for_it_and_the_next_run_resumes_there(plant, generic_webhook, context):
    canaries = sorted((plant(f"web0{index}-backup", f"web0{index}") for index in range(1, 3)),
                      key=lambda canary: scan_cursor.ring_position(canary.user))
    for canary in canaries:
        canary.use()
    # Time for the report and the plan, and for the first canary; then 5 seconds left.
    left = iter([30000, 30000, 30000])
    context.get_remaining_time_in_millis = lambda: next(left, 5000)

    with pytest.raises(last_used_detector.IncompleteScan, match="1 unchecked"):
        last_used_detector.handler({}, context)

    assert [alert["iam_user"] for alert in generic_webhook.json_bodies()] == [canaries[0].user]
    assert canaries[1].reported() is None
    context.get_remaining_time_in_millis = lambda: 30000
    summary = last_used_detector.handler({}, context)
    # It resumed with the canary left unchecked, and went on round the ring.
    assert [item["iam_user"] for item in summary["sent"]] == [canaries[1].user] and canaries[1].reported()


def test_an_unreadable_reported_tag_counts_as_nothing_reported(web03, iam, generic_webhook, context, caplog):
    when = stamp(web03.use()["LastUsedDate"])
    iam.tag_user(UserName=web03.user, Tags=[{"Key": TAG, "Value": "yesterday"}])

    last_used_detector.handler({}, context)

    assert [alert["last_seen"] for alert in generic_webhook.json_bodies()] == [when] and web03.reported() == when
    assert "is not an ISO 8601 time" in caplog.text


def test_the_reported_tag_is_read_in_any_iso_8601_form(web03, iam, generic_webhook, context):
    # A tag written by hand (or by an older version) as "+00:00" compares as the same time.
    used = last_used_detector.utc(web03.use()["LastUsedDate"])
    iam.tag_user(UserName=web03.user, Tags=[{"Key": TAG, "Value": used.isoformat()}])

    assert last_used_detector.handler({}, context)["alerts"] == 0 and generic_webhook.requests == []
    # AWS answers whole seconds (its documented example, whole minutes): CloudTrail's form, no fraction.
    minute = datetime.datetime(2024, 5, 14, 9, 21, tzinfo=datetime.timezone.utc)
    assert last_used_detector.iso(minute) == "2024-05-14T09:21:00Z" and last_used_detector.utc("2024-05-14T09:21:00Z") == minute
    assert last_used_detector.utc("N/A") is None


# ---------------------------------------------------------------- renderings and packaging


def test_chat_renderings_say_what_the_last_used_record_does_not_know(web03):
    canary = last_used_detector.Canary(web03.user, ACCOUNT, {"host": "web03", "path": PATH, "profile": "prod"}, "")
    use = last_used_detector.KeyUse(web03.key_id, "Active", last_used_detector.utc("2024-05-14T09:21:00Z"), "dynamodb", "ap-south-1")
    alert = last_used_detector.build_alert(canary, use)

    slack = alert_channels.render_slack(alert)
    assert slack["text"] == "Canary AWS key used: web03 /home/deploy/.aws/credentials [prod] (last used 2024-05-14T09:21:00Z)"
    assert "2024-05-14T09:21:00Z dynamodb:? ap-south-1 - ?" in json.dumps(slack["blocks"])
    runs = [run["text"] for block in alert_channels.render_teams(alert)["attachments"][0]["content"]["body"] for run in block["inlines"]]
    assert any("last-used record" in text for text in runs) and not any(text.split("  ")[4:5] == ["OK"] for text in runs)
    # A CloudTrail alert keeps its rendering.
    cloudtrail = alert_payload.build_alert("cloudtrail", ACCOUNT, web03.user, web03.key_id, canary.mapping, alert_payload.EventGroup())
    assert alert_channels.render_slack(cloudtrail)["text"].endswith("(0 calls)")


def test_the_detector_imports_flat_from_the_lambda_zip(tmp_path):
    sources = [str(REPO / "lambda" / f"{name}.py") for name in ("alert_payload", "alert_channels", "last_used_detector")]
    package = tmp_path / "detection-lambda.zip"
    subprocess.run([sys.executable, str(REPO / "roles/detection/files/lambda_zip.py"), "--output", str(package),
                    *sources, *map(str, sorted((REPO / "plugins/module_utils/_lambda_shared").glob("[!_]*.py")))],
                   check=True, capture_output=True)
    probe = "import sys; sys.path.insert(0, sys.argv[1]); import last_used_detector as d; print(d.DETECTOR, callable(d.handler))"
    done = subprocess.run([sys.executable, "-I", "-c", probe, str(package)], check=True, capture_output=True, text=True)
    assert done.stdout.split() == ["last-used", "True"]


def test_the_context_is_optional():
    # A manual "aws lambda invoke" and the tests pass no deadline; nothing then stops the scan early.
    assert last_used_detector._remaining_seconds(None) is None  # pylint: disable=protected-access
    assert last_used_detector._remaining_seconds(types.SimpleNamespace(get_remaining_time_in_millis=lambda: 1500))() == 1.5  # pylint: disable=protected-access


def test_the_role_grants_exactly_what_a_scan_calls(web03, plant, generic_webhook, context, wire_calls):
    (deploy,) = [task for task in yaml.safe_load(ROLE_TASKS.read_text()) if task["name"] == "Deploy the last-used detector"]
    function = deploy["vars"]
    statements = {statement["Sid"]: statement for statement in function["detection_fn_statements"]}
    granted = {action for statement in statements.values()
               for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}
    web03.use()
    plant("db01-backup", "db01").add_key()  # a key its tags do not name: listed

    last_used_detector.handler({}, context)  # lists, reads, alerts (SNS off: the webhook) and records

    assert {f"iam:{name}" for name in wire_calls} | {"sns:Publish"} == granted
    assert function["detection_fn_handler"] == "last_used_detector.handler"
    condition = statements["RecordReportedUse"]["Condition"]
    assert condition["ForAllValues:StringEquals"]["aws:TagKeys"] == [canary_mapping.TAG_LAST_USED_REPORTED, scan_cursor.TAG_LAST_USED_CURSOR]
    assert condition["StringEquals"] == {f"aws:ResourceTag/{canary_mapping.TAG_MANAGED}": canary_mapping.MANAGED_VALUE}
