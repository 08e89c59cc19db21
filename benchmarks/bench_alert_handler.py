# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of the alert Lambda on one batch of 1,000 CloudTrail records.

The batch goes through the real CloudWatch Logs subscription payload (gzip + base64) and the real
handler; IAM is moto's server on 127.0.0.1 (a separate process, so its work is not billed to the
handler, as AWS's is not on Lambda), with 10 canary users tagged by canary_mapping.mapping_tags.
The records are the test fixtures (tests/unit/lambda/fixtures): the canary users' calls (plain
keys and GetSessionToken sessions) mixed with other principals (AWSService, AssumedRole, Root) that
the handler must pass over.  The alerts go to the log channel (a handler writing to /dev/null).

Printed: records/s, CPU seconds (time.process_time) per batch, IAM lookups per invocation, peak
Python memory of one invocation (tracemalloc) and the process's peak RSS (boto3 included, moto not),
against a baseline that only decodes the payload and parses every record.  Targets: < 1 s CPU for
1,000 records, <= 128 MB.

    .venv/bin/python benchmarks/bench_alert_handler.py [--records 1000] [--canary-share 0.3] [--repeat 5]
"""

from __future__ import annotations

import argparse
import base64
import copy
import gzip
import json
import logging
import os
import pathlib
import random
import resource
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
import types
import urllib.request
import uuid

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "unit" / "lambda" / "fixtures"
sys.path[:0] = [str(REPO / "plugins" / "module_utils" / "_lambda_shared"), str(REPO / "lambda")]

import alert_handler  # noqa: E402  pylint: disable=wrong-import-position
import canary_mapping  # noqa: E402  pylint: disable=wrong-import-position

ACCOUNT = "123456789012"
CANARY_USERS = 10
CANARY_FIXTURES = ("iam_user_sts_get_caller_identity", "iam_user_s3_list_buckets_denied", "iam_user_session_ec2_describe_denied")
OTHER_FIXTURES = ("aws_service_sts_assume_role", "assumed_role_iam_list_user_tags", "root_console_login")
TARGET_CPU_SECONDS = 1.0
TARGET_MEMORY_MB = 128


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_moto():
    port = free_port()
    server = subprocess.Popen([str(pathlib.Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _attempt in range(100):
        try:
            with urllib.request.urlopen(url + "/moto-api/", timeout=1):
                return server, url
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("moto_server did not start")


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def plant_users(iam) -> list:
    """The canary users, as the seed leaves them: (user name, access key id)."""
    users = []
    for index in range(CANARY_USERS):
        name = f"web{index:02d}-backup"
        tags = canary_mapping.mapping_tags(f"web{index:02d}", "/home/deploy/.aws/credentials", "prod",
                                           reminder=f"web{index:02d} deploy user", planted_at="2024-05-01T10:00:00Z")
        iam.create_user(UserName=name, Tags=[{"Key": key, "Value": value} for key, value in tags.items()])
        users.append((name, iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]))
    return users


def make_records(users, total: int, canary_share: float, seed: int = 1) -> list:
    """``total`` CloudTrail records: the canary users' calls and, for the rest, other principals."""
    rng = random.Random(seed)
    templates = {name: load(name) for name in CANARY_FIXTURES + OTHER_FIXTURES + ("iam_user_sts_get_session_token",)}
    canary_count = int(total * canary_share)
    records = []
    for index in range(total):
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1715678400 + index))
        if index < canary_count:
            user, key = users[index % len(users)]
            # The first call of each user mints session credentials; later ones sometimes use them.
            name = "iam_user_sts_get_session_token" if index < len(users) else rng.choice(CANARY_FIXTURES)
            text = json.dumps(templates[name]).replace("web03-backup", user).replace("AKIAVRUVQ3KTEXAMPLE1", key)
            text = text.replace("ASIAVRUVQ3KTSESSION1", "ASIA" + key[4:])
            record = json.loads(text)
        else:
            record = copy.deepcopy(templates[rng.choice(OTHER_FIXTURES)])
        record["eventTime"] = when
        record["eventID"] = str(uuid.UUID(int=rng.getrandbits(128)))
        records.append(record)
    rng.shuffle(records)
    return records


def cloudwatch_logs_event(records) -> dict:
    document = {
        "messageType": "DATA_MESSAGE",
        "owner": ACCOUNT,
        "logGroup": "org-audit-trail",
        "logStream": f"{ACCOUNT}_CloudTrail_us-east-1",
        "subscriptionFilters": ["iam-user-activity"],
        "logEvents": [{"id": str(38226153431466318617406520458125468107548301312065421312 + index), "timestamp": 1715678400000 + index,
                       "message": json.dumps(record, separators=(",", ":"))} for index, record in enumerate(records)],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(document).encode("utf-8"))).decode("ascii")}}


def baseline(event) -> int:
    """The least any handler must do: decode the payload and parse every record."""
    document = json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))
    return len([json.loads(log_event["message"]) for log_event in document["logEvents"]])


def cpu_seconds(function, repeat: int) -> list:
    samples = []
    for _round in range(repeat):
        start = time.process_time()
        function()
        samples.append(time.process_time() - start)
    return samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--canary-share", type=float, default=0.3, help="share of the records made by canary users (default 0.3)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)

    server, endpoint = start_moto()
    try:
        os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
        for name in [name for name in os.environ if name.startswith("CANARY_")]:
            del os.environ[name]
        os.environ.pop("AWS_PROFILE", None)
        rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        # Setup, not timed: users and tags in IAM, the batch, the clients.
        iam = alert_handler.iam_client()
        users = plant_users(iam)
        event = cloudwatch_logs_event(make_records(users, args.records, args.canary_share))
        lookups = []
        iam.meta.events.register("before-call.iam", lambda **_kwargs: lookups.append(1))
        sink = logging.StreamHandler(open(os.devnull, "w", encoding="utf-8"))  # pylint: disable=consider-using-with
        alert_handler.LOGGER.addHandler(sink)
        alert_handler.LOGGER.propagate = False
        context = types.SimpleNamespace(invoked_function_arn=f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:audit-event-forwarder",
                                        get_remaining_time_in_millis=lambda: 30000)

        summaries = []

        def cold():
            alert_handler._MAPPING_CACHE.clear()  # pylint: disable=protected-access
            del lookups[:]
            summaries.append(alert_handler.handler(event, context))
            summaries[-1]["lookups_counted"] = len(lookups)

        def warm():
            summaries.append(alert_handler.handler(event, context))

        # The first invocation also loads botocore's IAM operation models and opens the connection.
        first_cpu = cpu_seconds(cold, 1)[0]
        base = statistics.median(cpu_seconds(lambda: baseline(event), args.repeat))
        cold_cpu = statistics.median(cpu_seconds(cold, args.repeat))
        cold_lookups = summaries[-1]["lookups_counted"]
        warm_cpu = statistics.median(cpu_seconds(warm, args.repeat))
        warm_lookups = summaries[-1]["iam_lookups"]

        tracemalloc.start()
        cold()
        _size, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        last = summaries[-1]
    finally:
        server.terminate()
        server.wait(timeout=10)

    results = {
        "records": args.records,
        "canary_records": int(args.records * args.canary_share),
        "alerts": last["alerts"],
        "ignored": last["ignored"],
        "baseline_cpu_s": round(base, 4),
        "handler_first_invocation_cpu_s": round(first_cpu, 4),
        "handler_cold_cpu_s": round(cold_cpu, 4),
        "handler_warm_cpu_s": round(warm_cpu, 4),
        "records_per_s_cold": round(args.records / cold_cpu) if cold_cpu else None,
        "records_per_s_warm": round(args.records / warm_cpu) if warm_cpu else None,
        "ratio_cold_to_baseline": round(cold_cpu / base, 2) if base else None,
        "ratio_warm_to_baseline": round(warm_cpu / base, 2) if base else None,
        "iam_lookups_cold": cold_lookups,
        "iam_lookups_warm": warm_lookups,
        "tracemalloc_peak_mb": round(peak / 2 ** 20, 2),
        "maxrss_mb": round(rss_mb, 1),
        "maxrss_at_start_mb": round(rss_before_mb, 1),
    }
    if args.json:
        print(json.dumps(results))
    else:
        print(f"alert handler, {args.records} CloudTrail records ({results['canary_records']} by {CANARY_USERS} canary users), "
              f"median of {args.repeat} rounds, Python {sys.version.split()[0]}")
        print(f"  baseline (decode + json.loads)   {base:.4f} s CPU")
        print(f"  handler, first invocation        {first_cpu:.4f} s CPU  (IAM client made beforehand, as at init)")
        print(f"  handler, cold mapping cache      {cold_cpu:.4f} s CPU  {results['records_per_s_cold']} records/s  "
              f"x{results['ratio_cold_to_baseline']} baseline  IAM lookups {cold_lookups}")
        print(f"  handler, warm mapping cache      {warm_cpu:.4f} s CPU  {results['records_per_s_warm']} records/s  "
              f"x{results['ratio_warm_to_baseline']} baseline  IAM lookups {warm_lookups}")
        print(f"  alerts per batch {last['alerts']}, records passed over {last['ignored']}")
        print(f"  peak Python memory of one invocation (tracemalloc) {results['tracemalloc_peak_mb']} MB")
        print(f"  peak RSS of the process (boto3 + batch) {results['maxrss_mb']} MB (at start {results['maxrss_at_start_mb']} MB)")
    ok = cold_cpu < TARGET_CPU_SECONDS and rss_mb <= TARGET_MEMORY_MB
    if not args.json:
        print(f"  target < {TARGET_CPU_SECONDS} s CPU and <= {TARGET_MEMORY_MB} MB: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
