# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""canarykeys.aws.logs_subscription_filter against moto's CloudWatch Logs and Lambda.

The module runs in-process (its real ``main()``, real botocore) under ``moto.mock_aws``; the pure
decisions of ``module_utils/_detection/logs_subscription.py`` are tested on their own first.
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

from ansible.module_utils.testing import patch_module_args  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.canarykeys.aws.plugins.module_utils._detection import logs_subscription  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.modules import logs_subscription_filter  # noqa: E402

REGION = "us-east-1"
GROUP = "org-audit-trail"
PATTERN = '{ $.userIdentity.type = "IAMUser" }'


# ---------------------------------------------------------------- pure logic


def test_request_leaves_out_unset_options():
    params = {"filter_pattern": PATTERN, "destination_arn": "arn:fn", "role_arn": None, "distribution": None}
    assert logs_subscription.build_request(GROUP, "f", params) == {
        "logGroupName": GROUP,
        "filterName": "f",
        "filterPattern": PATTERN,
        "destinationArn": "arn:fn",
    }


def test_fields_aws_defaults_do_not_count_when_unset():
    current = {"filterName": "f", "filterPattern": PATTERN, "destinationArn": "arn:fn", "distribution": "ByLogStream",
               "applyOnTransformedLogs": False}
    request = {"logGroupName": GROUP, "filterName": "f", "filterPattern": PATTERN, "destinationArn": "arn:fn"}
    assert logs_subscription.differences(current, request) == []
    assert logs_subscription.differences(current, dict(request, distribution="Random")) == ["distribution"]


def test_a_role_left_out_is_a_role_removed():
    current = {"filterPattern": PATTERN, "destinationArn": "arn:fn", "roleArn": "arn:role"}
    request = {"logGroupName": GROUP, "filterName": "f", "filterPattern": PATTERN, "destinationArn": "arn:fn"}
    assert logs_subscription.differences(current, request) == ["roleArn"]
    assert "roleArn" not in logs_subscription.expected_after(current, request)


def test_pick_wants_the_exact_name():
    filters = [{"filterName": "alerts-old"}, {"filterName": "alerts"}]
    assert logs_subscription.pick(filters, "alerts") == {"filterName": "alerts"}
    assert logs_subscription.pick(filters, "alert") is None


def test_pattern_longer_than_the_quota_is_refused():
    assert logs_subscription.validate({"filter_pattern": "x" * 1024}) == []
    assert "1025" in logs_subscription.validate({"filter_pattern": "x" * 1025})[0]


# ---------------------------------------------------------------- the module against moto


def _zip_bytes():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
    return buffer.getvalue()


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with moto.mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(
            RoleName="fn-role",
            AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
            }),
        )["Role"]["Arn"]
        lam = boto3.client("lambda", region_name=REGION)
        arns = [
            lam.create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="handler.handler",
                                Code={"ZipFile": _zip_bytes()})["FunctionArn"]
            for name in ("forwarder", "other")
        ]
        logs = boto3.client("logs", region_name=REGION)
        logs.create_log_group(logGroupName=GROUP)
        yield {"logs": logs, "fn": arns[0], "other_fn": arns[1]}


def run_module(capsys, check_mode=False, diff=False, **args):
    args = dict(args, region=REGION, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            logs_subscription_filter.main()
    return json.loads(capsys.readouterr().out)


def filters_of(aws, group=GROUP):
    return aws["logs"].describe_subscription_filters(logGroupName=group)["subscriptionFilters"]


def present(aws, **extra):
    args = {"log_group_name": GROUP, "filter_name": "iam-user-activity", "filter_pattern": PATTERN, "destination_arn": aws["fn"]}
    args.update(extra)
    return args


def test_create_then_nothing_to_do(aws, capsys):
    first = run_module(capsys, **present(aws))
    assert first["changed"] is True
    assert first["subscription_filter"]["filter_pattern"] == PATTERN
    assert first["subscription_filter"]["destination_arn"] == aws["fn"]
    assert first["subscription_filter"]["creation_time"]
    [stored] = filters_of(aws)
    assert (stored["filterName"], stored["filterPattern"], stored["destinationArn"]) == ("iam-user-activity", PATTERN, aws["fn"])

    second = run_module(capsys, **present(aws))
    assert second["changed"] is False
    assert second["changed_fields"] == []
    assert second["subscription_filter"] == first["subscription_filter"]


def test_check_mode_predicts_and_writes_nothing(aws, capsys):
    result = run_module(capsys, check_mode=True, diff=True, **present(aws))
    assert result["changed"] is True
    assert result["subscription_filter"]["destination_arn"] == aws["fn"]
    assert result["diff"]["before"] == {}
    assert filters_of(aws) == []

    run_module(capsys, **present(aws))
    result = run_module(capsys, check_mode=True, state="absent", log_group_name=GROUP, filter_name="iam-user-activity")
    assert result["changed"] is True
    assert len(filters_of(aws)) == 1


def test_update_in_place_reports_the_fields(aws, capsys):
    run_module(capsys, **present(aws))
    result = run_module(capsys, diff=True, **present(aws, filter_pattern="", destination_arn=aws["other_fn"]))
    assert result["changed"] is True
    assert result["changed_fields"] == ["destinationArn", "filterPattern"]
    assert result["diff"]["before"]["destination_arn"] == aws["fn"]
    assert result["diff"]["after"]["destination_arn"] == aws["other_fn"]
    [stored] = filters_of(aws)
    assert (stored["filterPattern"], stored["destinationArn"]) == ("", aws["other_fn"])


def test_absent_deletes_only_its_filter(aws, capsys):
    run_module(capsys, **present(aws))
    run_module(capsys, **present(aws, filter_name="keep-me"))
    result = run_module(capsys, state="absent", log_group_name=GROUP, filter_name="iam-user-activity")
    assert result["changed"] is True
    assert result["subscription_filter"] == {}
    assert [f["filterName"] for f in filters_of(aws)] == ["keep-me"]
    again = run_module(capsys, state="absent", log_group_name=GROUP, filter_name="iam-user-activity")
    assert again["changed"] is False


def test_absent_with_no_log_group_is_not_an_error(aws, capsys):
    result = run_module(capsys, state="absent", log_group_name="no-such-group", filter_name="x")
    assert result["changed"] is False
    assert not result.get("failed")


def test_present_needs_the_log_group(aws, capsys):
    result = run_module(capsys, **present(aws, log_group_name="no-such-group"))
    assert result["failed"] is True
    assert "does not exist" in result["msg"]


def test_a_third_filter_fails_with_a_clear_message(aws, capsys):
    for name in ("one", "two"):
        assert run_module(capsys, **present(aws, filter_name=name))["changed"] is True
    result = run_module(capsys, **present(aws, filter_name="three"))
    assert result["failed"] is True
    assert "maximum of two" in result["msg"]


def test_present_requires_pattern_and_destination(aws, capsys):
    result = run_module(capsys, log_group_name=GROUP, filter_name="f")
    assert result["failed"] is True
    assert "filter_pattern" in result["msg"] and "destination_arn" in result["msg"]


def test_pattern_over_quota_fails_before_any_call(aws, capsys):
    result = run_module(capsys, **present(aws, filter_pattern="x" * 1025))
    assert result["failed"] is True
    assert filters_of(aws) == []
