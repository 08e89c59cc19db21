# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: canary_key_info over a large estate in the local AWS, wall time and IAM calls.

    .venv/bin/python benchmarks/bench_canary_key_info.py [--canaries 2000] [--bystanders 100] [--in-rotation 0] [--no-module]

Setup (not timed): moto behind the local AWS counting proxy, N canary users tagged as the collection
tags them (mapping tags, and the key-id tags canary_key writes after a mint), each with one key, plus
bystander users that are not canaries; ``--in-rotation`` of the canaries hold a second key (a rotation
between its mint and its finish), which the credential report cannot name; a few keys are used
(sts:GetCallerIdentity) so last-use has something to find.  Then the listing logic
(module_utils/_iam/estate.py, in-process, through the proxy) is timed for each key source, with
and without last_used, and the module itself once through `ansible localhost -m`.  IAM calls are
counted at the wire by the proxy, by action, and checked against the formula of docs/canary_key_info.md.

Issue target: IAM calls grow with pages, <= 2,000/100 + a constant, plus one last-used call per key
only when asked for.  Moto returns every user in one GetAccountAuthorizationDetails page whatever
MaxItems says, so P is 1 here; on AWS it is ceil(users / page_size).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / ".collections")]

import boto3  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.canarykeys.aws.plugins.module_utils._iam import estate  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping  # noqa: E402  pylint: disable=wrong-import-position
from tools.local_aws.server import LocalAWS  # noqa: E402  pylint: disable=wrong-import-position

USED_KEYS = 3
# The constant of the target: the credential report's Generate (+ polls) and Get.
TARGET_CONSTANT = 5


def create_estate(aws, canaries, bystanders, in_rotation=0, workers=8):
    """Canary users with one key each (two for ``in_rotation`` of them) and some bystanders, straight to moto (not counted, not timed)."""
    iam = aws.client("iam", direct=True)

    def canary(n):
        host = f"web{n:04d}"
        tags = canary_mapping.mapping_tags(host, "/home/deploy/.aws/credentials", "prod", reminder=f"{host} deploy prod",
                                           planted_at="2025-01-01T00:00:00Z", planted_by="bench")
        name = f"{host}-deploy"
        iam.create_user(UserName=name, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        key = iam.create_access_key(UserName=name)["AccessKey"]
        named = canary_mapping.planted_key_tags(key["AccessKeyId"], key["CreateDate"])
        iam.tag_user(UserName=name, Tags=[{"Key": k, "Value": v} for k, v in named.items()])
        if n < in_rotation:
            iam.create_access_key(UserName=name)
        return key

    def bystander(n):
        iam.create_user(UserName=f"svc-{n:04d}", Tags=[{"Key": "team", "Value": "platform"}])

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        keys = list(pool.map(canary, range(canaries)))
        list(pool.map(bystander, range(bystanders)))
    for key in keys[:USED_KEYS]:
        boto3.client("sts", endpoint_url=aws.moto_url, region_name="eu-west-1", aws_access_key_id=key["AccessKeyId"],
                     aws_secret_access_key=key["SecretAccessKey"]).get_caller_identity()
    # Only ids leave this function: the secrets are never needed again, nor printed.
    return [key["AccessKeyId"] for key in keys]


def iam_calls(aws, since):
    return collections.Counter(c["action"] for c in aws.calls()[since:] if c["service"] == "iam")


def expected(key_source, last_used, users, canaries, keys, page_size, generate_calls, not_covered):
    """(P, the formula's IAM calls on AWS) of docs/canary_key_info.md; ``not_covered``: F, listed with ListAccessKeys."""
    pages = max(1, math.ceil(users / page_size))
    if key_source == estate.LIST_ACCESS_KEYS:
        total = pages + canaries
    else:
        total = pages + generate_calls + 1 + not_covered
    return pages, total + (keys if last_used else 0)


def run_logic(aws, label, **options):
    client = aws.client("iam")
    since = len(aws.calls())
    started = time.perf_counter()
    result = estate.list_estate(client, **options)
    elapsed = time.perf_counter() - started
    return label, elapsed, iam_calls(aws, since), result


def run_module(aws, args):
    """The module through Ansible (ad-hoc on localhost), as a playbook task would run it."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", **aws.operator_env())
    ansible = pathlib.Path(sys.executable).with_name("ansible")
    with tempfile.TemporaryDirectory() as tree:
        argv = [str(ansible), "localhost", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}", "-t", tree,
                "-m", "canarykeys.aws.canary_key_info", "-a", json.dumps(args)]
        since = len(aws.calls())
        started = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"the module failed: {proc.stderr[-2000:]}")
        result = json.loads(pathlib.Path(tree, "localhost").read_text())
    return elapsed, iam_calls(aws, since), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, default=2000)
    parser.add_argument("--bystanders", type=int, default=100)
    parser.add_argument("--in-rotation", type=int, default=0, help="canaries holding a second key")
    parser.add_argument("--page-size", type=int, default=estate.MAX_PAGE_SIZE)
    parser.add_argument("--concurrency", type=int, default=estate.DEFAULT_CONCURRENCY)
    parser.add_argument("--no-module", action="store_true", help="skip the run through Ansible")
    args = parser.parse_args()

    with LocalAWS() as aws:
        started = time.perf_counter()
        key_ids = create_estate(aws, args.canaries, args.bystanders, args.in_rotation)
        users = args.canaries + args.bystanders
        keys = args.canaries + args.in_rotation
        print(f"setup: {args.canaries} canaries (1 key each, {args.in_rotation} with a second key, {USED_KEYS} used) + "
              f"{args.bystanders} bystanders in {time.perf_counter() - started:.1f}s (not timed below)")
        print(f"target: IAM calls without last_used <= {args.canaries}/100 + {TARGET_CONSTANT} = "
              f"{args.canaries // 100 + TARGET_CONSTANT}; with last_used, + 1 GetAccessKeyLastUsed per key\n")

        runs = []
        for key_source in estate.KEY_SOURCES:
            for last_used in (False, True):
                label = f"{key_source:<17} last_used={str(last_used):<5} concurrency={args.concurrency}"
                runs.append(run_logic(aws, label, key_source=key_source, last_used=last_used, page_size=args.page_size,
                                      concurrency=args.concurrency))
        runs.append(run_logic(aws, f"{'list_access_keys':<17} last_used=False concurrency=1", last_used=False,
                              key_source=estate.LIST_ACCESS_KEYS,
                              page_size=args.page_size, concurrency=1))

        print(f"{'run':<56} {'wall':>7} {'IAM calls':>9} {'on AWS':>8}  by action (moto: 1 page)")
        failures = []
        for label, elapsed, calls, result in runs:
            key_source = result["key_source"]
            last_used = "last_used=True" in label
            pages, total = expected(key_source, last_used, users, args.canaries, keys, args.page_size,
                                    calls.get("GenerateCredentialReport", 0), args.in_rotation)
            measured = sum(calls.values())
            # moto serves one page whatever MaxItems says; the formula counts IAM's pages.
            moto_total = total - pages + calls.get("GetAccountAuthorizationDetails", 0)
            print(f"{label:<56} {elapsed:>6.2f}s {measured:>9} {total:>8}  {dict(sorted(calls.items()))}")
            if measured != moto_total or dict(calls) != result["iam_calls"] or len(result["canaries"]) != args.canaries:
                failures.append(label)
            # Whatever the source, every planted key is listed with its id.
            listed = [key["access_key_id"] for canary in result["canaries"] for key in canary["keys"]]
            if len(listed) != keys or None in listed or not set(key_ids) <= set(listed):
                failures.append(f"{label}: the listed key ids are not every key with its id")
            if last_used and result["summary"]["used"] != USED_KEYS:
                failures.append(f"{label}: {result['summary']['used']} used, expected {USED_KEYS}")

        if not args.no_module:
            elapsed, calls, result = run_module(aws, {"last_used": False})
            print(f"{'module via ansible, default key_source, last_used=False':<56} {elapsed:>6.2f}s {sum(calls.values()):>9} "
                  f"{'':>8}  {dict(sorted(calls.items()))}")
            if len(result["canaries"]) != args.canaries:
                failures.append("module")

        pages_on_aws = max(1, math.ceil(users / args.page_size))
        print(f"\nformula (U={users} users, S={args.canaries} canaries, K={keys} keys, F={args.in_rotation} canaries the report "
              f"cannot name, P=ceil(U/{args.page_size})={pages_on_aws} on AWS, 1 on moto):")
        print(f"  credential_report: P + G + 1 + F [+ K] = {pages_on_aws} + 1..(1+polls) + 1 + {args.in_rotation} [+ {keys}]")
        print(f"  list_access_keys : P + S [+ K]         = {pages_on_aws} + {args.canaries} [+ {keys}]")
        report_calls = pages_on_aws + 2 + args.in_rotation
        target = args.canaries // 100 + TARGET_CONSTANT
        print(f"  target (<= {target} without last_used): credential_report (the default) "
              f"{'met' if report_calls <= target else 'NOT met'} with {report_calls} calls at best on AWS; "
              f"list_access_keys not met ({pages_on_aws + args.canaries})")
        if failures:
            sys.exit(f"measured calls differ from the formula or the result is wrong: {failures}")


if __name__ == "__main__":
    main()
