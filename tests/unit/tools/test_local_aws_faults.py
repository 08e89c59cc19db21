# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local AWS's fault mode, seen by botocore through the real proxy and moto as AWS's faults would be."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import boto3
import botocore.config
import botocore.exceptions
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from tools.local_aws import faults as faults_mode
from tools.local_aws.server import LocalAWS

NO_RETRIES = botocore.config.Config(retries={"total_max_attempts": 1})
# A seed whose first draw after the request's loses the answer and whose next does not (lost_response_rate=0.5).
LOSES_FIRST = 9
# Long enough for a loaded machine to make the calls below within it.
CONSISTENCY_DELAY = 3.0
STANDARD_3 = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 3})


@pytest.fixture(scope="module")
def local_aws():
    with LocalAWS(faults={}) as aws:
        yield aws


@pytest.fixture
def aws(local_aws):  # pylint: disable=redefined-outer-name
    """The shared local AWS with no fault, no resource and no counter; faults off again afterwards."""
    local_aws.faults.config = faults_mode.FaultConfig()
    local_aws.reset()
    yield local_aws
    local_aws.faults.config = faults_mode.FaultConfig()


def client(aws, service, config=NO_RETRIES, key="testing", secret="testing"):  # pylint: disable=redefined-outer-name
    return boto3.client(service, endpoint_url=aws.endpoint_url, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret, config=config)


def error_of(call, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"].get("Message")


def wire(aws, action):  # pylint: disable=redefined-outer-name
    """(status, fault) of each call of ``action`` that reached the proxy."""
    return [(c["status"], c["fault"]) for c in aws.calls() if c["action"] == action]


def control(aws, method, path="", payload=None):  # pylint: disable=redefined-outer-name
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(aws.endpoint_url + faults_mode.CONTROL_PATH + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_throttling_is_iams_error_and_retried_by_botocore_and_amazon_aws(aws):
    aws.faults.configure(iam_rate=1, iam_burst=1)
    iam = client(aws, "iam")
    iam.list_users()
    status, code, message = error_of(iam.list_users)
    assert (status, code, message) == (400, "Throttling", "Rate exceeded")
    assert AWSRetry.found(code)  # what the collection's jittered_backoff retries
    assert wire(aws, "ListUsers") == [(200, None), (400, "throttled")]
    # Other services have no budget here.
    client(aws, "sts").get_caller_identity()

    # botocore retries it (standard mode, as AWS's Throttling) until the bucket has a token again.
    time.sleep(1.0)
    retrying = client(aws, "iam", config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 10}))
    before = len(wire(aws, "ListUsers"))
    retrying.list_users()
    retrying.list_users()
    retried = wire(aws, "ListUsers")[before:]
    assert (400, "throttled") in retried and retried[-1] == (200, None)
    assert aws.faults.counters()["injected"]["throttled"] == retried.count((400, "throttled")) + 1


def test_the_iam_budget_holds(aws):
    aws.faults.configure(iam_rate=10, iam_burst=5)
    iam = client(aws, "iam")
    started = time.monotonic()
    allowed = 0
    while time.monotonic() - started < 1.0:
        try:
            iam.list_users()
            allowed += 1
        except botocore.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] == "Throttling"
    elapsed = time.monotonic() - started
    throttled = aws.faults.counters()["injected"]["throttled"]
    assert throttled > 0
    assert 5 <= allowed <= 5 + 10 * elapsed + 1
    assert allowed + throttled == aws.count("iam", "ListUsers")


def test_a_new_user_is_not_found_by_iam_reads_until_the_delay_passed(aws):
    aws.faults.configure(consistency_delay=CONSISTENCY_DELAY)
    iam = client(aws, "iam", config=STANDARD_3)
    iam.create_user(UserName="web03-backup")
    # A write on the new user goes through (IAM's writes reach the primary).
    iam.tag_user(UserName="web03-backup", Tags=[{"Key": "k", "Value": "v"}])
    with pytest.raises(iam.exceptions.NoSuchEntityException) as caught:
        iam.get_user(UserName="web03-backup")
    assert caught.value.response["Error"] == {"Type": "Sender", "Code": "NoSuchEntity",
                                              "Message": "The user with name web03-backup cannot be found."}
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert not AWSRetry.found("NoSuchEntity")
    # Not retryable: botocore made one call.
    assert wire(aws, "GetUser") == [(404, "not_yet_consistent")]
    time.sleep(CONSISTENCY_DELAY + 0.1)
    assert iam.get_user(UserName="web03-backup")["User"]["UserName"] == "web03-backup"


def test_a_new_key_is_unknown_to_authentication_and_hidden_from_iam_reads(aws):
    aws.faults.configure(consistency_delay=CONSISTENCY_DELAY)
    iam = client(aws, "iam")
    aws.client("iam", direct=True).create_user(UserName="web03-backup")  # not new to the proxy
    key = iam.create_access_key(UserName="web03-backup")["AccessKey"]
    assert iam.list_access_keys(UserName="web03-backup")["AccessKeyMetadata"] == []
    assert error_of(iam.get_access_key_last_used, AccessKeyId=key["AccessKeyId"])[:2] == (404, "NoSuchEntity")
    sts = client(aws, "sts", config=STANDARD_3, key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    assert error_of(sts.get_caller_identity) == (403, "InvalidClientTokenId", "The security token included in the request is invalid.")
    assert wire(aws, "GetCallerIdentity") == [(403, "invalid_token")]  # not retried, as on AWS
    s3 = client(aws, "s3", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    assert error_of(s3.list_buckets)[:2] == (403, "InvalidAccessKeyId")
    secrets = client(aws, "secretsmanager", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    assert error_of(secrets.list_secrets)[:2] == (400, "UnrecognizedClientException")

    time.sleep(CONSISTENCY_DELAY + 0.1)
    assert sts.get_caller_identity()["Arn"].endswith(":user/web03-backup")
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName="web03-backup")["AccessKeyMetadata"]] == [key["AccessKeyId"]]
    injected = aws.faults.counters()["injected"]
    assert (injected["invalid_token"], injected["not_yet_consistent"]) == (3, 2)


@pytest.mark.parametrize("service, call, codes", [
    ("iam", "list_users", {500: "ServiceFailure", 503: "ServiceUnavailable"}),
    ("sts", "get_caller_identity", {500: "InternalFailure", 503: "ServiceUnavailable"}),
    ("s3", "list_buckets", {500: "InternalError", 503: "ServiceUnavailable"}),
])
def test_transient_errors_are_retried_then_raised(aws, service, call, codes):
    aws.faults.configure(error_rate=1, seed=3)
    seen = set()
    for _attempt in range(8):
        status, code, _message = error_of(getattr(client(aws, service), call))
        assert codes[status] == code
        # amazon.aws's AWSRetry does not know IAM's ServiceFailure: only botocore's own retries (on the status) cover it.
        assert AWSRetry.found(code) == (code != "ServiceFailure")
        seen.add(status)
    assert seen == {500, 503}
    before = len(aws.calls())
    with pytest.raises(botocore.exceptions.ClientError):
        getattr(client(aws, service, config=STANDARD_3), call)()
    faults = [c["fault"] for c in aws.calls()[before:]]
    assert len(faults) == 3 and set(faults) <= {"error_500", "error_503"}


def test_a_dropped_request_never_reaches_moto(aws):
    aws.faults.configure(drop_rate=1)
    iam = client(aws, "iam")
    with pytest.raises((botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError)):
        iam.create_user(UserName="web03-backup")
    aws.faults.configure(drop_rate=0)
    assert iam.list_users()["Users"] == []
    assert wire(aws, "CreateUser") == [(0, "dropped")]


def test_a_lost_response_was_done_by_aws_and_is_retried_by_botocore(aws):
    aws.faults.configure(lost_response_rate=1)
    iam = client(aws, "iam")
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        iam.create_user(UserName="web03-backup")
    aws.faults.configure(lost_response_rate=0)
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["web03-backup"]
    # botocore retries a reset connection, so a retried CreateUser meets what the lost one did.
    # The seed makes the first attempt's answer lost and the second's not.
    aws.faults.configure(lost_response_rate=0.5, seed=LOSES_FIRST)
    retrying = client(aws, "iam", config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 10}))
    assert error_of(retrying.create_user, UserName="web04-backup")[:2] == (409, "EntityAlreadyExists")
    assert wire(aws, "CreateUser")[1:] == [(200, "lost_response"), (409, None)]


def test_latency_is_added_to_the_selected_services_only(aws):
    aws.faults.configure(latency=0.3, services="iam")
    started = time.monotonic()
    client(aws, "sts").get_caller_identity()
    assert time.monotonic() - started < 0.3
    started = time.monotonic()
    client(aws, "iam").list_users()
    assert time.monotonic() - started >= 0.3
    assert aws.faults.counters()["by_action"] == {"latency": {"iam:ListUsers": 1}}


def test_random_faults_come_at_their_rates(aws):
    aws.faults.configure(error_rate=0.2, drop_rate=0.1, services="sts", seed=11)
    sts = client(aws, "sts")
    for _call in range(200):
        try:
            sts.get_caller_identity()
        except (botocore.exceptions.ClientError, botocore.exceptions.ConnectionClosedError):
            pass
    injected = aws.faults.counters()["injected"]
    errors, dropped = injected["error_500"] + injected["error_503"], injected["dropped"]
    assert 20 <= errors <= 60 and 8 <= dropped <= 32
    assert [c["fault"] for c in aws.calls()].count(None) == 200 - errors - dropped
    client(aws, "iam").list_users()  # not a selected service
    assert aws.faults.counters()["calls"] == 201 and sum(aws.faults.counters()["injected"].values()) == errors + dropped


def outcomes(aws, calls=30):  # pylint: disable=redefined-outer-name
    iam = client(aws, "iam")
    result = []
    for _n in range(calls):
        try:
            iam.list_users()
            result.append(200)
        except botocore.exceptions.ClientError as exc:
            result.append(exc.response["ResponseMetadata"]["HTTPStatusCode"])
    return result


def test_the_same_seed_gives_the_same_faults(aws):
    aws.faults.configure(error_rate=0.5, seed=7)
    first = outcomes(aws)
    aws.reset()  # counters and the random sequence start over from the seed
    assert outcomes(aws) == first
    assert {200, 500, 503} == set(first)
    aws.faults.configure(seed=8)
    assert outcomes(aws) != first


def test_the_control_endpoint_sets_rates_and_reads_counters(aws):
    status, state = control(aws, "POST", payload={"error_rate": 1, "seed": 5})
    assert status == 200 and state["config"]["error_rate"] == 1.0
    error_of(client(aws, "iam").list_users)
    status, state = control(aws, "GET")
    assert state["calls"] == 1 and sum(state["injected"].values()) == 1
    assert state["by_action"] in ({"error_500": {"iam:ListUsers": 1}}, {"error_503": {"iam:ListUsers": 1}})
    # Neither counted as an AWS call nor passed to moto.
    assert aws.count() == 1
    assert control(aws, "POST", payload={"error_rate": 2})[0] == 400
    assert control(aws, "POST", payload={"nonsense": 1})[0] == 400
    assert aws.faults.config.error_rate == 1.0  # a refused change changes nothing
    status, state = control(aws, "POST", "/reset")
    assert status == 200 and state["calls"] == 0
    assert control(aws, "DELETE")[0] == 404


def test_settings_from_the_environment_and_the_command_line():
    config = faults_mode.FaultConfig.from_env({faults_mode.ENV_VAR: "seed=4, iam_rate=20,error_rate=0.01 services=iam,sts"})
    assert (config.seed, config.iam_rate, config.error_rate, config.services) == (4, 20.0, 0.01, ("iam", "sts"))
    assert faults_mode.FaultConfig.from_env({faults_mode.ENV_VAR: '{"latency": 0.5}'}).latency == 0.5
    assert not faults_mode.FaultConfig.from_env({}).active
    with pytest.raises(ValueError, match="unknown fault setting 'rate'"):
        faults_mode.FaultConfig.parse("rate=3")
    with pytest.raises(ValueError, match="must not exceed 1"):
        faults_mode.FaultConfig.parse("error_rate=0.6,drop_rate=0.6")
    parser = argparse.ArgumentParser()
    faults_mode.add_arguments(parser)
    args = parser.parse_args(["--fault-iam-rate", "15", "--fault-consistency-delay", "2"])
    config = faults_mode.config_from_args(args, environ={faults_mode.ENV_VAR: "iam_rate=5,seed=9"})
    assert dataclasses.asdict(config) == dict(dataclasses.asdict(faults_mode.FaultConfig()), seed=9, iam_rate=15.0,
                                              consistency_delay=2.0)


def test_the_cli_flags_set_the_faults():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = dict(os.environ, **{faults_mode.ENV_VAR: "error_rate=0.5"})
    proc = subprocess.Popen([sys.executable, "-m", "tools.local_aws.server", "--fault-error-rate", "1", "--fault-seed", "3"],
                            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        endpoint = proc.stdout.readline().strip()
        with urllib.request.urlopen(endpoint + faults_mode.CONTROL_PATH, timeout=10) as response:
            assert json.loads(response.read())["config"]["error_rate"] == 1.0
        sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing", config=NO_RETRIES)
        assert error_of(sts.get_caller_identity)[0] in (500, 503)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_scripted_lost_answers_parse_and_refuse_bad_items():
    config = faults_mode.FaultConfig.parse("seed=3,lose_responses=CreateAccessKey:1,DeleteUser:2")
    assert config.active and config.scripted_losses() == {"CreateAccessKey": 1, "DeleteUser": 2}
    with pytest.raises(ValueError, match="Action:N"):
        faults_mode.FaultConfig.parse({"lose_responses": "CreateAccessKey:x"})
