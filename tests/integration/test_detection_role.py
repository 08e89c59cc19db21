# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/deploy_detection.yml (the canarykeys.aws.detection role) against the local AWS.

Every resource exists with the configuration the design asks for (read back from the local AWS, not
from the role's output), a change of settings changes only what it names, ``state: absent`` leaves
exactly what was there before, and an IAM user's call travels trail -> log group -> subscription
filter -> alert Lambda -> SNS topic.  moto gaps (docs/local_aws.md) are named where a test steps around them.
That a second run changes nothing and writes nothing is the Molecule scenario's (extensions/molecule/detection),
which deploys the same way; this file does not deploy a second time for it.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PLAYBOOK = "playbooks/deploy_detection.yml"
ZIP_TOOL = REPO / "roles" / "detection" / "files" / "lambda_zip.py"
ACCOUNT = "123456789012"
REGION = "us-east-1"
ARN = f"arn:aws:%s:{REGION}:{ACCOUNT}:%s"

TRAIL, LOG_GROUP, BUCKET = "org-audit-trail", "org-audit-trail", f"org-audit-trail-{ACCOUNT}"
TRAIL_ROLE, FUNCTION, TOPIC = "org-audit-trail-delivery", "audit-event-forwarder", "security-alerts"
DLQ, ALARM, RULE, FILTER = "audit-event-forwarder-dlq", "audit-event-forwarder-errors", "iam-user-api-calls", "iam-user-activity"
TAMPER_RULE, EXPOSED_RULE = "iam-user-changes", "aws-credentials-exposed"
TAMPER_CALLS = ["AttachUserPolicy", "PutUserPolicy", "DeleteUserPolicy", "AddUserToGroup", "PutUserPermissionsBoundary",
                "DeleteUserPermissionsBoundary", "CreateLoginProfile", "UpdateLoginProfile", "DeleteLoginProfile",
                "CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey", "DeleteUser", "TagUser", "UntagUser"]
FUNCTION_ARN = ARN % ("lambda", f"function:{FUNCTION}")
TOPIC_ARN = ARN % ("sns", TOPIC)
DLQ_ARN = ARN % ("sqs", DLQ)
LOG_GROUP_ARN = ARN % ("logs", f"log-group:{LOG_GROUP}")
# Written into the Lambda's environment; must never appear in what a run prints.
WEBHOOK_URL = "https://hooks.example.invalid/services/T000/B000/" + "w3bh00kt0ken" * 2
WEBHOOK_SECRET = "hmac-" + "5ecr3t" * 6
# Another controller (AWX) whose changes to canaries must not alert either.
AWX_SESSIONS = f"arn:aws:sts::{ACCOUNT}:assumed-role/awx-canary-controller/*"
# The role the stack is deployed with once, from a session of it.
DEPLOYER_ROLE = "canary-deployer"


def recap(output):
    match = re.search(r"^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", output, re.M)
    assert match, output[-3000:]
    ok, changed, unreachable, failed = map(int, match.groups())
    return {"ok": ok, "changed": changed, "unreachable": unreachable, "failed": failed}


@pytest.fixture
def deploy(aws, run_playbook, tmp_path):
    """deploy(**extra_vars) -> (recap, output); fails the test on a failed run unless expect_failure."""

    def run(expect_failure=False, extra_args=(), **extra_vars):
        variables = {"detection_lambda_build_dir": str(tmp_path / "build"), **extra_vars}
        started = time.monotonic()
        rc, output = run_playbook(PLAYBOOK, "localhost,", variables, extra_args=extra_args)
        run.seconds.append(round(time.monotonic() - started, 1))
        if expect_failure:
            assert rc != 0, output[-3000:]
            return None, output
        assert rc == 0, output[-5000:]
        return recap(output), output

    run.seconds = []
    run.package = tmp_path / "build" / "detection-lambda.zip"
    return run


def account_inventory(aws):
    """Names of everything in the local account that the role could create or remove."""
    c = aws.client
    return {
        "buckets": sorted(b["Name"] for b in c("s3").list_buckets()["Buckets"]),
        # moto's describe_trails ignores name filters: list them all, by name.
        "trails": sorted(t["Name"] for t in c("cloudtrail").describe_trails()["trailList"]),
        "log_groups": sorted(g["logGroupName"] for g in c("logs").describe_log_groups()["logGroups"]),
        "roles": sorted(r["RoleName"] for r in c("iam").list_roles()["Roles"]),
        "functions": sorted(f["FunctionName"] for f in c("lambda").list_functions()["Functions"]),
        "topics": sorted(t["TopicArn"] for t in c("sns").list_topics()["Topics"]),
        "subscriptions": sorted(s["SubscriptionArn"] for s in c("sns").list_subscriptions()["Subscriptions"]),
        "queues": sorted(c("sqs").list_queues().get("QueueUrls", [])),
        "alarms": sorted(a["AlarmName"] for a in c("cloudwatch").describe_alarms()["MetricAlarms"]),
        "rules": sorted(r["Name"] for r in c("events").list_rules()["Rules"]),
    }


def create_bystanders(aws):
    """Resources the role must not touch: same kinds, other names (no trail: see account_inventory)."""
    c = aws.client
    c("s3").create_bucket(Bucket="team-data-exports")
    c("logs").create_log_group(logGroupName="/app/web")
    c("iam").create_role(RoleName="app-runtime", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    c("sns").create_topic(Name="ops-notifications")
    c("sqs").create_queue(QueueName="app-jobs")


def statements(document):
    document = json.loads(document) if isinstance(document, str) else document
    return {statement.get("Sid", str(index)): statement for index, statement in enumerate(document["Statement"])}


def as_list(value):
    return value if isinstance(value, list) else [value]


def assert_least_privilege(policy):
    for statement in policy.values():
        assert statement["Effect"] == "Allow"
        assert all("*" not in action for action in as_list(statement["Action"])), statement
        assert all(resource != "*" for resource in as_list(statement["Resource"])), statement


def assert_stack(aws, package, fast_path, trusted, routes=True):
    c = aws.client

    # -- the bucket: private, encrypted, writable by this trail only, expiring
    s3 = c("s3")
    encryption = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert encryption["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"].values())
    bucket_policy = statements(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])
    trail_arn = ARN % ("cloudtrail", f"trail/{TRAIL}")
    assert bucket_policy["CloudTrailWrite"]["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert bucket_policy["CloudTrailWrite"]["Resource"] == f"arn:aws:s3:::{BUCKET}/AWSLogs/{ACCOUNT}/*"
    assert bucket_policy["CloudTrailWrite"]["Condition"]["StringEquals"]["aws:SourceArn"] == trail_arn
    assert bucket_policy["CloudTrailAclCheck"]["Action"] == "s3:GetBucketAcl"
    assert bucket_policy["DenyInsecureTransport"]["Effect"] == "Deny"
    [lifecycle] = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert (lifecycle["Status"], lifecycle["Expiration"]["Days"]) == ("Enabled", 365)

    # -- the trail: all regions, global events, validation, into the log group through its role
    cloudtrail = c("cloudtrail")
    trail = cloudtrail.get_trail(Name=TRAIL)["Trail"]
    assert trail["IsMultiRegionTrail"] and trail["IncludeGlobalServiceEvents"] and trail["LogFileValidationEnabled"]
    assert trail["S3BucketName"] == BUCKET
    assert trail["CloudWatchLogsLogGroupArn"] == LOG_GROUP_ARN + ":*"
    assert trail["CloudWatchLogsRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{TRAIL_ROLE}"
    assert cloudtrail.get_trail_status(Name=TRAIL)["IsLogging"]
    selectors = cloudtrail.get_event_selectors(TrailName=TRAIL)["AdvancedEventSelectors"]
    assert selectors[0]["FieldSelectors"] == [{"Field": "eventCategory", "Equals": ["Management"]}]
    data_fields = {field["Field"]: field for field in selectors[1]["FieldSelectors"]}
    assert data_fields["resources.type"]["Equals"] == ["AWS::S3::Object"]
    assert data_fields["userIdentity.arn"]["StartsWith"] == [f"arn:aws:iam::{ACCOUNT}:user/"]

    logs = c("logs")
    groups = {g["logGroupName"]: g for g in logs.describe_log_groups()["logGroups"]}
    assert groups[LOG_GROUP]["retentionInDays"] == 30
    assert groups[f"/aws/lambda/{FUNCTION}"]["retentionInDays"] == 90

    iam = c("iam")
    trust = statements(iam.get_role(RoleName=TRAIL_ROLE)["Role"]["AssumeRolePolicyDocument"])
    assert [s["Principal"] for s in trust.values()] == [{"Service": "cloudtrail.amazonaws.com"}]
    assert iam.list_role_policies(RoleName=TRAIL_ROLE)["PolicyNames"] == ["write-trail-log-group"]
    assert iam.list_attached_role_policies(RoleName=TRAIL_ROLE)["AttachedPolicies"] == []
    trail_policy = statements(iam.get_role_policy(RoleName=TRAIL_ROLE, PolicyName="write-trail-log-group")["PolicyDocument"])
    assert_least_privilege(trail_policy)
    assert sorted(trail_policy["WriteTrailLogStreams"]["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert trail_policy["WriteTrailLogStreams"]["Resource"] == f"{LOG_GROUP_ARN}:log-stream:{ACCOUNT}_CloudTrail_*"

    # -- the alert Lambda, its role, its dead-letter destination, its alarm
    lam = c("lambda")
    config = lam.get_function_configuration(FunctionName=FUNCTION)
    assert (config["Runtime"], config["Handler"]) == ("python3.12", "alert_handler.handler")
    assert config["CodeSha256"] == base64.b64encode(hashlib.sha256(package.read_bytes()).digest()).decode()
    # The controller's own changes to canaries make no tamper alert: the deploying principal and the ones listed.
    assert config["Environment"]["Variables"] == {
        "CANARY_SNS_TOPIC_ARN": TOPIC_ARN, "CANARY_WEBHOOK_FORMAT": "slack",
        "CANARY_WEBHOOK_URL": WEBHOOK_URL, "CANARY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "CANARY_TRUSTED_PRINCIPALS": ",".join(trusted),
    }
    role_name = config["Role"].rsplit("/", 1)[1]
    assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []
    fn_policy = statements(iam.get_role_policy(RoleName=role_name, PolicyName="least-privilege")["PolicyDocument"])
    assert_least_privilege(fn_policy)
    assert {sid: (sorted(as_list(s["Action"])), s["Resource"]) for sid, s in fn_policy.items()} == {
        "WriteOwnLogs": (["logs:CreateLogStream", "logs:PutLogEvents"], ARN % ("logs", f"log-group:/aws/lambda/{FUNCTION}:log-stream:*")),
        "ReadCanaryMapping": (["iam:ListAccessKeys", "iam:ListUserTags"], f"arn:aws:iam::{ACCOUNT}:user/*"),
        "FindKeyOwner": (["iam:GetAccessKeyLastUsed"], f"arn:aws:iam::{ACCOUNT}:user/*"),
        "PublishAlerts": (["sns:Publish"], TOPIC_ARN),
        "DeadLetter": (["sqs:SendMessage"], DLQ_ARN),
    }
    invoke_config = lam.get_function_event_invoke_config(FunctionName=FUNCTION)
    assert invoke_config["DestinationConfig"]["OnFailure"]["Destination"] == DLQ_ARN
    assert invoke_config["MaximumRetryAttempts"] == 2

    permissions = statements(lam.get_policy(FunctionName=FUNCTION)["Policy"])
    logs_permission = permissions["cloudwatch-logs-invoke"]
    assert logs_permission["Principal"] == {"Service": "logs.amazonaws.com"}
    assert logs_permission["Action"] == "lambda:InvokeFunction"
    assert logs_permission["Condition"]["ArnLike"]["AWS:SourceArn"] == LOG_GROUP_ARN + ":*"

    [subscription] = logs.describe_subscription_filters(logGroupName=LOG_GROUP)["subscriptionFilters"]
    assert subscription["filterName"] == FILTER
    assert subscription["filterPattern"] == '{ $.userIdentity.type = "IAMUser" }'
    assert subscription["destinationArn"] == FUNCTION_ARN

    [alarm] = c("cloudwatch").describe_alarms(AlarmNames=[ALARM])["MetricAlarms"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/Lambda", "Errors", "Sum")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": FUNCTION}]
    assert alarm["AlarmActions"] == [TOPIC_ARN]

    # -- the alert topic and its e-mail subscription
    sns = c("sns")
    topic_subscriptions = sns.list_subscriptions_by_topic(TopicArn=TOPIC_ARN)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in topic_subscriptions] == [("email", "security@example.com")]

    # -- the EventBridge routes to the alert Lambda, or their absence
    assert_route(c, permissions, TAMPER_RULE, "eventbridge-tamper-invoke", routes, state="ENABLED", pattern={
        "source": ["aws.iam"], "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {"eventSource": ["iam.amazonaws.com"], "eventName": TAMPER_CALLS}})
    assert_route(c, permissions, EXPOSED_RULE, "eventbridge-exposed-invoke", routes, state="ENABLED", pattern={
        "source": ["aws.health"], "detail": {"eventTypeCode": ["AWS_RISK_CREDENTIALS_EXPOSED"]}})
    assert_route(c, permissions, RULE, "eventbridge-invoke", fast_path, state="ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
                 pattern={"detail-type": ["AWS API Call via CloudTrail"], "detail": {"userIdentity": {"type": ["IAMUser"]}}})


def assert_route(c, permissions, rule_name, statement_id, wanted, state, pattern):
    """One EventBridge rule that sends its events to the alert Lambda, with the permission for that rule only."""
    events = c("events")
    rules = [rule["Name"] for rule in events.list_rules()["Rules"]]
    if not wanted:
        assert rule_name not in rules
        assert statement_id not in permissions
        return
    rule = events.describe_rule(Name=rule_name)
    assert rule["State"] == state
    assert json.loads(rule["EventPattern"]) == pattern
    assert [(t["Id"], t["Arn"]) for t in events.list_targets_by_rule(Rule=rule_name)["Targets"]] == [("alert-forwarder", FUNCTION_ARN)]
    events_permission = permissions[statement_id]
    assert events_permission["Principal"] == {"Service": "events.amazonaws.com"}
    assert events_permission["Action"] == "lambda:InvokeFunction"
    assert events_permission["Condition"]["ArnLike"]["AWS:SourceArn"] == ARN % ("events", f"rule/{rule_name}")


def role_session(aws, role_name):
    """AWS_* credentials of a session of ``role_name`` (moto does not check who may assume it)."""
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/{role_name}"
    credentials = aws.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="deploy-0001")["Credentials"]
    return {"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"]}


def test_deploy_rerun_toggle_and_remove(aws, deploy, monkeypatch):
    create_bystanders(aws)
    aws.client("iam").create_role(RoleName=DEPLOYER_ROLE, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]}))
    # The operator, as GetCallerIdentity names it (moto says user/moto).
    operator = aws.client("sts").get_caller_identity()["Arn"]
    before = account_inventory(aws)
    settings = {"detection_alert_emails": ["security@example.com"], "detection_fast_path": True,
                "detection_webhook_url": WEBHOOK_URL, "detection_webhook_secret": WEBHOOK_SECRET,
                "detection_webhook_format": "slack", "detection_trusted_principals": [AWX_SESSIONS]}
    printed = []

    stats, output = deploy(**settings)
    printed.append(output)
    assert stats["changed"] > 0
    assert_stack(aws, deploy.package, fast_path=True, trusted=[operator, AWX_SESSIONS])

    # Idempotence (a re-run reports changed=0, sends AWS reads only and prints no secret at -v) is proven by
    # the Molecule scenario extensions/molecule/detection on the same settings: its idempotence and check
    # steps, and its verify, which reads the local AWS's call log and the Ansible log of every step.

    # Turning the fast path off removes the rule and its permission, and only those.
    stats, output = deploy(**dict(settings, detection_fast_path=False))
    printed.append(output)
    assert stats["changed"] == 2, output[-5000:]  # the rule and the permission (one looped task each)
    assert_stack(aws, deploy.package, fast_path=False, trusted=[operator, AWX_SESSIONS])

    # So does turning off the tamper and exposed-key routes. Deployed from a role session this time: every
    # session of that role is trusted, not the one session (the function's environment changes too).
    for name, value in role_session(aws, DEPLOYER_ROLE).items():
        monkeypatch.setenv(name, value)
    stats, output = deploy(**dict(settings, detection_fast_path=False, detection_tamper_alerts=False,
                                  detection_exposed_key_alerts=False))
    printed.append(output)
    assert stats["changed"] == 3, output[-5000:]
    assert_stack(aws, deploy.package, fast_path=False, routes=False,
                 trusted=[f"arn:aws:sts::{ACCOUNT}:assumed-role/{DEPLOYER_ROLE}/*", AWX_SESSIONS])
    for name, value in aws.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN")

    stats, output = deploy(detection_state="absent")
    printed.append(output)
    assert stats["changed"] > 0
    assert account_inventory(aws) == before

    for text in printed:
        assert WEBHOOK_SECRET not in text and "w3bh00kt0ken" not in text
    print(f"detection playbook runs (s): {deploy.seconds}")


def test_an_iam_user_call_reaches_the_alert_topic(aws, deploy, monkeypatch):
    """The deployed path end to end, on the recording local AWS (docs/local_aws.md).

    A canary key's denied calls (one management event, one S3 data event that only the role's
    advanced event selector lets into the trail) become CloudTrail records in the trail's log group;
    the role's subscription filter delivers them to the role's Lambda (the handler imported from
    lambda/, with the function's environment); the alert reaches an SQS queue subscribed to the
    role's topic through detection_alert_subscriptions.
    """
    import boto3  # pylint: disable=import-outside-toplevel
    from botocore.exceptions import ClientError  # pylint: disable=import-outside-toplevel

    from tools.local_aws.server import LocalAWS  # pylint: disable=import-outside-toplevel

    spec = importlib.util.spec_from_file_location("canary_mapping", REPO / "plugins" / "module_utils" / "_lambda_shared" / "canary_mapping.py")
    canary_mapping = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(canary_mapping)

    with LocalAWS(record=True, delivery_interval=3600) as recording:
        for name, value in recording.operator_env().items():
            monkeypatch.setenv(name, value)
        operator = recording.client
        inbox_url = operator("sqs").create_queue(QueueName="alert-inbox")["QueueUrl"]
        inbox_arn = operator("sqs").get_queue_attributes(QueueUrl=inbox_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        operator("s3").create_bucket(Bucket="payroll-exports")
        operator("s3").put_object(Bucket="payroll-exports", Key="2024/05.csv", Body=b"name,amount\n")

        deploy(detection_alert_subscriptions=[{"protocol": "sqs", "endpoint": inbox_arn}])
        recording.recorder.flush()

        tags = canary_mapping.mapping_tags("web03", "/root/.aws/credentials", "backup", reminder="web03 root backup profile")
        iam = operator("iam")
        iam.create_user(UserName="web03-backup", Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        key = iam.create_access_key(UserName="web03-backup")["AccessKey"]
        attacker = boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                                 region_name=REGION)
        with pytest.raises(ClientError, match="AccessDenied"):
            attacker.client("iam", endpoint_url=recording.endpoint_url).list_users()
        with pytest.raises(ClientError, match="AccessDenied"):
            attacker.client("s3", endpoint_url=recording.endpoint_url).get_object(Bucket="payroll-exports", Key="2024/05.csv")
        recording.recorder.flush()

        ours = [d for d in recording.recorder.deliveries() if d["filter"] == FILTER]
        assert ours and all(d["error"] is None for d in ours), recording.recorder.deliveries()
        assert {d["destination"] for d in ours} == {FUNCTION_ARN}
        messages = operator("sqs").receive_message(QueueUrl=inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        alerts = [json.loads(m["Body"]) for m in messages]
        alerts = [a for a in alerts if a.get("TopicArn") == TOPIC_ARN and "web03-backup" in a.get("Message", "")]
        assert len(alerts) == 1, messages
        text = alerts[0]["Message"]
        for fact in ("/root/.aws/credentials", "backup", key["AccessKeyId"], "ListUsers", "GetObject"):
            assert fact in text


def test_eventbridge_routes_need_us_east_1(aws, deploy):
    output = deploy(expect_failure=True, canary_aws={"region": "eu-west-1"})[1]
    assert "detection_tamper_alerts, detection_exposed_key_alerts needs the stack in us-east-1" in output
    assert account_inventory(aws)["functions"] == []


def test_trusted_principals_must_be_arns(aws, deploy):
    output = deploy(expect_failure=True, detection_trusted_principals=[AWX_SESSIONS, "awx-canary-controller", "arn:aws:iam::1:user/a,b"])[1]
    assert "detection_trusted_principals must list ARNs or ARN patterns" in output
    assert "not: awx-canary-controller, arn:aws:iam::1:user/a,b" in output
    assert account_inventory(aws)["functions"] == []


def test_package_is_deterministic(tmp_path):
    sources = sorted((REPO / "lambda").glob("*.py")) + sorted((REPO / "plugins" / "module_utils" / "_lambda_shared").glob("[!_]*.py"))
    copies = tmp_path / "src"
    copies.mkdir()
    outputs = []
    for round_number, mode in enumerate((0o600, 0o755)):
        copied = []
        for source in reversed(sources):  # another order on the command line
            target = copies / source.name
            target.write_bytes(source.read_bytes())
            target.chmod(mode)
            os.utime(target, (1_000_000_000 + round_number * 86400,) * 2)
            copied.append(str(target))
        output = tmp_path / f"package{round_number}.zip"
        result = subprocess.run([sys.executable, str(ZIP_TOOL), "--output", str(output), *copied],
                                capture_output=True, text=True, check=True)
        report = json.loads(result.stdout)
        assert report["code_sha256"] == base64.b64encode(hashlib.sha256(output.read_bytes()).digest()).decode()
        outputs.append(output.read_bytes())
    assert outputs[0] == outputs[1]
    with zipfile.ZipFile(tmp_path / "package0.zip") as archive:
        names = [info.filename for info in archive.infolist()]
        assert names == sorted(source.name for source in sources)
        assert "alert_handler.py" in names and "canary_mapping.py" in names
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}

    # An unchanged package is not rewritten; two sources with one name are refused.
    again = subprocess.run([sys.executable, str(ZIP_TOOL), "--output", str(tmp_path / "package0.zip"), *map(str, sources)],
                           capture_output=True, text=True, check=True)
    assert json.loads(again.stdout)["written"] is False
    (tmp_path / "other").mkdir()
    clash = tmp_path / "other" / "alert_handler.py"
    clash.write_text("x = 1\n")
    refused = subprocess.run([sys.executable, str(ZIP_TOOL), "--output", str(tmp_path / "clash.zip"), str(sources[0].parent / "alert_handler.py"),
                              str(clash)], capture_output=True, text=True, check=False)
    assert refused.returncode == 1 and "two sources" in refused.stderr
