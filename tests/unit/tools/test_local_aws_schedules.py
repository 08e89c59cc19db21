# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``fire_schedules()``: the local AWS runs scheduled EventBridge rules' Lambda targets as EventBridge would.

moto keeps rules, targets and permissions but fires nothing.  These tests make the resources with
boto3 as the operator, fire, and read what the function (this file's HANDLER_SOURCE, run in-process
from a lambda directory of its own) was given: only enabled scheduled rules run, with EventBridge's
payload and the function's environment, and a function whose policy does not let EventBridge invoke
it for that rule is not run at all.
"""

from __future__ import annotations

import io
import json
import textwrap
import zipfile

import pytest

from tools.local_aws import eventbridge
from tools.local_aws.server import LocalAWS

ACCOUNT = "123456789012"
FUNCTION = "audit-key-last-used"

HANDLER_SOURCE = textwrap.dedent('''\
    import json
    import os


    def handler(event, context):
        seen = {"event": event, "function": context.function_name, "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
                "region": os.environ.get("AWS_REGION"), "setting": os.environ.get("CANARY_WEBHOOK_FORMAT")}
        # Appended by the function itself: the test's proof of which invocations really ran.
        with open(os.environ["SCHEDULE_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps(seen) + "\\n")
        if event.get("fail"):
            raise RuntimeError("asked to fail")
        return seen
''')


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    lambda_dir = tmp_path_factory.mktemp("lambda")
    (lambda_dir / "scheduled.py").write_text(HANDLER_SOURCE, encoding="utf-8")
    with LocalAWS(record=True, delivery_interval=3600, lambda_dir=lambda_dir) as local_aws:
        yield local_aws


@pytest.fixture
def aws(recording, tmp_path):  # pylint: disable=redefined-outer-name
    recording.reset()
    recording.log = tmp_path / "invocations.jsonl"
    return recording


def ran(aws):  # pylint: disable=redefined-outer-name
    """What the function wrote, one entry per invocation that really ran."""
    if not aws.log.exists():
        return []
    return [json.loads(line) for line in aws.log.read_text(encoding="utf-8").splitlines()]


def function(aws, name=FUNCTION, region="us-east-1"):  # pylint: disable=redefined-outer-name
    iam = aws.client("iam")
    role = iam.create_role(RoleName=f"{name}-{region}", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("scheduled.py", "def handler(event, context):\n    return None\n")
    return aws.client("lambda", region=region).create_function(
        FunctionName=name, Runtime="python3.12", Role=role["Role"]["Arn"], Handler="scheduled.handler",
        Code={"ZipFile": package.getvalue()}, Timeout=300,
        Environment={"Variables": {"CANARY_WEBHOOK_FORMAT": "generic", "SCHEDULE_LOG": str(aws.log)}})["FunctionArn"]


def schedule(aws, rule, function_arn, *, region="us-east-1", permit=True, state="ENABLED", **target):  # pylint: disable=redefined-outer-name,too-many-arguments
    """A schedule rule targeting the function, and (``permit``) the permission the detection role adds."""
    rule_arn = aws.client("events", region=region).put_rule(Name=rule, ScheduleExpression="rate(15 minutes)", State=state)["RuleArn"]
    aws.client("events", region=region).put_targets(Rule=rule, Targets=[{"Id": "detector", "Arn": function_arn, **target}])
    if permit:
        aws.client("lambda", region=region).add_permission(
            FunctionName=function_arn.split(":")[6], StatementId=f"{rule}-invoke", Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com", SourceArn=rule_arn, SourceAccount=ACCOUNT)
    return rule_arn


def test_an_enabled_schedule_runs_its_lambda_with_eventbridges_payload(aws):  # pylint: disable=redefined-outer-name
    function_arn = function(aws)
    rule_arn = schedule(aws, "audit-key-last-used-schedule", function_arn)
    before = len(aws.calls())

    [entry] = aws.fire_schedules(["us-east-1"])

    assert entry["error"] is None, entry["error"]
    assert (entry["rule"], entry["rule_arn"], entry["region"], entry["target"], entry["destination"]) == (
        "audit-key-last-used-schedule", rule_arn, "us-east-1", "detector", function_arn)
    [seen] = ran(aws)
    assert entry["result"] == seen
    event = seen["event"]
    assert sorted(event) == ["account", "detail", "detail-type", "id", "region", "resources", "source", "time", "version"]
    assert (event["version"], event["detail-type"], event["source"], event["account"], event["region"]) == (
        "0", "Scheduled Event", "aws.events", ACCOUNT, "us-east-1")
    assert event["resources"] == [rule_arn] and event["detail"] == {}
    assert event["time"].endswith("Z") and len(event["time"]) == len("2025-01-01T00:00:00Z")
    assert (seen["function"], seen["setting"], seen["endpoint"], seen["region"]) == (FUNCTION, "generic", aws.endpoint_url, "us-east-1")
    assert aws.recorder.fired() == [entry]
    # Firing reads moto directly: the proxy's call log (what tests count) sees none of it.
    assert len(aws.calls()) == before

    # Every fire is a new event (EventBridge gives each its own id); nothing remembers the last one.
    [again] = aws.fire_schedules(["us-east-1"])
    assert again["error"] is None and again["event"]["id"] != event["id"]
    assert len(ran(aws)) == 2 and len(aws.recorder.fired()) == 2


def test_without_the_permission_the_function_does_not_run(aws):  # pylint: disable=redefined-outer-name
    function_arn = function(aws)
    rule_arn = schedule(aws, "no-permission", function_arn, permit=False)
    # A permission for another rule (or another principal) does not count either.
    aws.client("lambda").add_permission(FunctionName=FUNCTION, StatementId="other-rule", Action="lambda:InvokeFunction",
                                        Principal="events.amazonaws.com", SourceArn=rule_arn + "-other")
    aws.client("lambda").add_permission(FunctionName=FUNCTION, StatementId="logs", Action="lambda:InvokeFunction",
                                        Principal="logs.amazonaws.com", SourceArn=rule_arn)

    [entry] = aws.fire_schedules(["us-east-1"])

    assert entry["result"] is None
    assert "does not let events.amazonaws.com invoke it" in entry["error"] and rule_arn in entry["error"]
    assert ran(aws) == []


def test_disabled_rules_event_patterns_and_other_targets_are_not_run(aws):  # pylint: disable=redefined-outer-name
    function_arn = function(aws)
    schedule(aws, "switched-off", function_arn, state="DISABLED")
    events = aws.client("events")
    events.put_rule(Name="fast-path", EventPattern=json.dumps({"detail-type": ["AWS API Call via CloudTrail"]}))
    events.put_targets(Rule="fast-path", Targets=[{"Id": "alerts", "Arn": function_arn}])
    topic = aws.client("sns").create_topic(Name="alerts")["TopicArn"]
    events.put_rule(Name="to-sns", ScheduleExpression="rate(1 hour)")
    events.put_targets(Rule="to-sns", Targets=[{"Id": "topic", "Arn": topic}])

    [entry] = aws.fire_schedules(["us-east-1"])

    assert entry["rule"] == "to-sns" and "not a Lambda function: not modelled" in entry["error"]
    assert entry["error"] in aws.recorder.problems()
    assert ran(aws) == []


def test_every_region_by_default_constant_input_and_a_failing_function(aws):  # pylint: disable=redefined-outer-name
    home = function(aws)
    abroad = function(aws, region="eu-west-1")
    schedule(aws, "home", home, Input=json.dumps({"fail": True}))
    abroad_rule = schedule(aws, "abroad", abroad, region="eu-west-1")

    fired = {entry["rule"]: entry for entry in aws.fire_schedules()}

    assert sorted(fired) == ["abroad", "home"]
    # The target's constant Input replaces the event, as on AWS; what the function raises is reported.
    assert fired["home"]["event"] == {"fail": True} and fired["home"]["error"] == "RuntimeError: asked to fail"
    assert fired["abroad"]["error"] is None and fired["abroad"]["region"] == "eu-west-1"
    assert fired["abroad"]["result"]["event"]["resources"] == [abroad_rule]
    assert fired["abroad"]["result"]["region"] == "eu-west-1"
    assert sorted(seen["event"].get("region", "input") for seen in ran(aws)) == ["eu-west-1", "input"]


def test_input_path_is_refused_not_guessed(aws):  # pylint: disable=redefined-outer-name
    schedule(aws, "by-path", function(aws), InputPath="$.detail")
    [entry] = aws.fire_schedules(["us-east-1"])
    assert "InputPath is not modelled" in entry["error"] and ran(aws) == []


def test_reset_forgets_what_was_fired(aws):  # pylint: disable=redefined-outer-name
    schedule(aws, "once", function(aws))
    assert aws.fire_schedules(["us-east-1"]) and aws.recorder.fired()
    aws.reset()
    assert aws.recorder.fired() == [] and aws.fire_schedules(["us-east-1"]) == []


def test_firing_needs_the_recording_local_aws():
    with LocalAWS() as plain:
        with pytest.raises(RuntimeError, match="record=True"):
            plain.fire_schedules()


# -- the permission check, alone --------------------------------------------------------------------

RULE = f"arn:aws:events:us-east-1:{ACCOUNT}:rule/audit-key-last-used-schedule"


def statement(**overrides):
    base = {"Sid": "eventbridge-schedule-invoke", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
            "Action": "lambda:InvokeFunction", "Resource": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{FUNCTION}",
            "Condition": {"ArnLike": {"AWS:SourceArn": RULE}, "StringEquals": {"AWS:SourceAccount": ACCOUNT}}}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


@pytest.mark.parametrize("statements, permitted", [
    ([statement()], True),
    ([statement(Condition=None)], True),  # any rule of any account: too broad, but AWS would invoke
    ([statement(Condition={"ArnLike": {"aws:sourcearn": RULE.replace("audit-key-last-used-schedule", "audit-*")}})], True),
    ([statement(Action=["lambda:*"])], True),
    ([statement(Principal="*")], True),
    ([statement(Condition={"ArnLike": {"AWS:SourceArn": RULE + "-other"}})], False),
    ([statement(Condition={"StringEquals": {"AWS:SourceAccount": "210987654321"}})], False),
    ([statement(Principal={"Service": "logs.amazonaws.com"})], False),
    ([statement(Action="lambda:GetFunction")], False),
    ([statement(Effect="Deny")], False),
    # A condition the local AWS cannot evaluate does not count as a grant.
    ([statement(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})], False),
    ([], False),
])
def test_invoke_permitted(statements, permitted):
    policy = json.dumps({"Version": "2012-10-17", "Id": "default", "Statement": statements})
    assert eventbridge.invoke_permitted(policy, RULE, ACCOUNT) is permitted


def test_no_policy_is_no_permission():
    assert eventbridge.invoke_permitted(None, RULE, ACCOUNT) is False


def test_target_input():
    event = eventbridge.scheduled_event(ACCOUNT, "us-east-1", RULE, when=0)
    assert event["time"] == "1970-01-01T00:00:00Z"
    assert eventbridge.target_input({"Id": "t"}, event) is event
    assert eventbridge.target_input({"Id": "t", "Input": '{"a": 1}'}, event) == {"a": 1}
    with pytest.raises(eventbridge.NotModelled, match="InputTransformer"):
        eventbridge.target_input({"Id": "t", "InputTransformer": {"InputTemplate": "{}"}}, event)
