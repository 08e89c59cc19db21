# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LocalAWS: moto behind the counting proxy, driven by boto3 as any client would."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request

import boto3
import botocore.exceptions
import pytest

from tools.local_aws.server import LocalAWS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(scope="module")
def local_aws():
    with LocalAWS() as aws:
        yield aws


@pytest.fixture
def aws(local_aws):  # pylint: disable=redefined-outer-name
    local_aws.reset()
    return local_aws


def client(aws, service, key="testing"):
    return boto3.client(service, endpoint_url=aws.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key="testing")


def port_open(url):
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def test_iam_calls_are_counted_by_service_action_and_key(aws):
    iam = client(aws, "iam", key="AKIDOPERATOR")
    iam.create_user(UserName="web03-backup")
    assert [user["UserName"] for user in iam.list_users()["Users"]] == ["web03-backup"]

    assert aws.count("iam") == 2
    assert aws.count("iam", "CreateUser") == 1
    assert aws.count("iam", "ListUsers") == 1
    assert aws.count("iam", writes_only=True) == 1
    assert aws.count("s3") == 0
    calls = aws.calls()
    assert [(c["service"], c["action"], c["access_key_id"], c["status"]) for c in calls] == [
        ("iam", "CreateUser", "AKIDOPERATOR", 200), ("iam", "ListUsers", "AKIDOPERATOR", 200)]


def test_reset_forgets_resources_and_calls(aws):
    iam = client(aws, "iam")
    iam.create_user(UserName="gone-after-reset")
    aws.reset()
    assert aws.calls() == []
    assert iam.list_users()["Users"] == []
    assert aws.count("iam", "ListUsers") == 1


def test_rest_json_and_query_protocols_are_named(aws):
    s3 = client(aws, "s3")
    s3.create_bucket(Bucket="backups-eu")
    s3.list_buckets()
    s3.list_objects_v2(Bucket="backups-eu")
    client(aws, "lambda").list_functions()
    client(aws, "secretsmanager").list_secrets()
    client(aws, "sqs").list_queues()
    client(aws, "ec2", key="AKIDEC2").describe_vpcs()
    client(aws, "sts").get_caller_identity()
    assert [(c["service"], c["action"]) for c in aws.calls()] == [
        ("s3", "CreateBucket"), ("s3", "ListBuckets"), ("s3", "ListObjectsV2"), ("lambda", "ListFunctions"),
        ("secretsmanager", "ListSecrets"), ("sqs", "ListQueues"), ("ec2", "DescribeVpcs"), ("sts", "GetCallerIdentity")]
    assert aws.count("ec2") == 1 and aws.calls()[6]["access_key_id"] == "AKIDEC2"


def test_bodies_and_errors_pass_through_unchanged(aws):
    s3 = client(aws, "s3")
    s3.create_bucket(Bucket="big-objects")
    payload = os.urandom(3 * 1024 * 1024 + 17)
    s3.put_object(Bucket="big-objects", Key="dump/db.sql", Body=payload)
    got = s3.get_object(Bucket="big-objects", Key="dump/db.sql")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    assert s3.head_object(Bucket="big-objects", Key="dump/db.sql")["ContentLength"] == len(payload)
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        s3.get_object(Bucket="big-objects", Key="missing")
    assert denied.value.response["Error"]["Code"] == "NoSuchKey"
    assert [(c["action"], c["status"]) for c in aws.calls()][1:] == [
        ("PutObject", 200), ("GetObject", 200), ("HeadObject", 200), ("GetObject", 404)]


def test_unsigned_requests_are_forwarded_and_logged_without_a_key(aws):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(aws.endpoint_url + "/moto-api/data.json", timeout=10) as response:
        assert response.status == 200
    assert aws.calls()[0]["service"] is None and aws.calls()[0]["access_key_id"] is None


def test_stop_kills_moto_and_the_proxy():
    aws = LocalAWS().start()
    endpoint, moto = aws.endpoint_url, aws.moto_url
    assert port_open(endpoint) and port_open(moto)
    aws.stop()
    assert not port_open(endpoint)
    assert not port_open(moto)


def test_cli_prints_the_endpoint_and_stops_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "tools.local_aws.server", "--port", "0"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        endpoint = proc.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:")
        identity = client(type("A", (), {"endpoint_url": endpoint}), "sts").get_caller_identity()
        assert identity["Account"] == "123456789012"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert not port_open(endpoint)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_concurrent_clients_are_all_counted(aws):
    def work(worker):
        sts = client(aws, "sts", key=f"AKIDWORKER{worker}")
        for _call in range(25):
            sts.get_caller_identity()

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert aws.count("sts", "GetCallerIdentity") == 200
    assert {call["access_key_id"] for call in aws.calls()} == {f"AKIDWORKER{worker}" for worker in range(8)}
