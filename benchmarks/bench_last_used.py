# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the last-used detector's IAM calls per run, and the worst-case delay before a use is reported.

    .venv/bin/python benchmarks/bench_last_used.py [--sizes 2000 10000] [--budget 1000] [--calls-per-second 5]
                                                   [--schedule-minutes 15] [--bystanders 100]

Prints figures; it is no timed test.  For each size, against the local AWS (moto behind the counting
proxy; IAM calls counted at the wire, by action):

* the estate, as the collection leaves it (bench_canary_key_info.create_estate: each canary tagged with
  its mapping and the key-id tags canary_key writes; 1 % of them holding a second key, as a rotation
  that crashed between its mint and its finish leaves them; 3 keys used), not counted;
* **before**: the detector as it was (one ListAccessKeys per canary, one GetAccessKeyLastUsed per key,
  every run), reproduced below with the same shared reads (iam_reads.py);
* **after**: lambda/last_used_detector.process, run after run until every key was read (one cycle),
  with the budget given (CANARY_IAM_CALLS_PER_RUN).  The pace (CANARY_IAM_CALLS_PER_SECOND) is not
  slept here; the time a run takes at that pace is computed (calls / pace).

Worst-case delay before a use is reported: a key used just after its read is read again ``cycle_runs``
runs later, and the alert goes out during that run: cycle_runs x schedule + one run at the pace (+ IAM's
own update of the record, which AWS does not bound).  moto returns every user in one
GetAccountAuthorizationDetails page; on AWS it is ceil(users / 1000) pages, each one call of the budget
less for the keys: the "on AWS" column corrects for it.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import math
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / ".collections"), str(REPO / "lambda"), str(REPO / "plugins/module_utils/_lambda_shared")]

import iam_reads  # noqa: E402  pylint: disable=wrong-import-position,import-error
import last_used_detector  # noqa: E402  pylint: disable=wrong-import-position,import-error
from bench_canary_key_info import USED_KEYS, create_estate  # noqa: E402  pylint: disable=wrong-import-position,import-error

from tools.local_aws.server import LocalAWS  # noqa: E402  pylint: disable=wrong-import-position


class TakeEverything:
    """A channel that takes every alert (the channels are not what this measures)."""

    def __init__(self):
        self.alerts = []

    def deliver(self, alert):
        self.alerts.append((alert["iam_user"], alert["access_key_id"], alert["last_seen"]))
        return {"delivered": ["bench"], "failed": []}


def iam_calls(aws, since):
    return collections.Counter(c["action"] for c in aws.calls()[since:] if c["service"] == "iam")


def old_run(client, concurrency=last_used_detector.DEFAULT_CONCURRENCY):
    """The detector before: every canary's keys listed, every key's last use read, every run."""
    call = iam_reads.IAMCalls(client)
    listed, _users = iam_reads.list_canaries(call, "/")

    def keys_of(user):
        return [iam_reads.access_key_last_used(call, key["AccessKeyId"]) for key in iam_reads.list_access_keys(call, user["UserName"])]

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        uses = [use for keys in pool.map(keys_of, [user for user, _tags, _mapping in listed]) for use in keys]
    return sum(1 for use in uses if use and use["date"] is not None)


def new_cycle(aws, client, args, every_key):
    """Runs of the detector until every key was read; per run (calls at the wire, summary)."""
    read = []
    client.meta.events.register("provide-client-params.iam.GetAccessKeyLastUsed",
                                lambda params, **_kwargs: read.append(params["AccessKeyId"]))
    environ = {"CANARY_IAM_CALLS_PER_RUN": str(args.budget), "CANARY_IAM_CALLS_PER_SECOND": "100000"}
    dispatcher = TakeEverything()
    runs, seen = [], set()
    while True:
        since = len(aws.calls())
        started = time.perf_counter()
        summary = last_used_detector.process({}, None, environ=environ, iam=client, dispatcher=dispatcher)
        runs.append((iam_calls(aws, since), summary, time.perf_counter() - started))
        seen.update(read)
        if seen >= every_key or len(runs) > 100:
            break
    return runs, dispatcher.alerts, seen >= every_key


def measure(args, canaries):
    in_rotation = canaries // 100
    with LocalAWS() as aws:
        started = time.perf_counter()
        create_estate(aws, canaries, args.bystanders, in_rotation)
        users = canaries + args.bystanders
        keys = canaries + in_rotation
        direct = aws.client("iam", direct=True)
        every_key = {key["AccessKeyId"] for name in (f"web{n:04d}-deploy" for n in range(canaries))
                     for key in direct.list_access_keys(UserName=name)["AccessKeyMetadata"]}
        setup = time.perf_counter() - started

        since = len(aws.calls())
        started = time.perf_counter()
        used_before = old_run(aws.client("iam"))
        before_seconds = time.perf_counter() - started
        before = iam_calls(aws, since)

        runs, alerts, complete = new_cycle(aws, aws.client("iam"), args, every_key)

    pages_on_aws = max(1, math.ceil(users / 1000))
    totals = [sum(calls.values()) for calls, _summary, _seconds in runs]
    alert_writes = [sum(1 for item in summary["sent"] if item["recorded"]) for _calls, summary, _seconds in runs]
    cycle = max(summary["cycle_runs"] for _calls, summary, _seconds in runs[1:] or runs)
    # On AWS: the budget is the same, the listing P pages, so each run has P - 1 calls less for the keys.
    steady = runs[-1][1]
    listed = in_rotation  # the canaries the report cannot confirm
    whole = (canaries - listed) + listed * last_used_detector.LISTED_COST
    fixed_aws = pages_on_aws + 2 + 1  # pages, GenerateCredentialReport + GetCredentialReport (report complete), cursor
    filled_aws = args.budget - fixed_aws - (last_used_detector.LISTED_COST - 1 if listed else 0)
    cycle_aws = max(1, math.ceil(whole / filled_aws))
    run_seconds = args.budget / args.calls_per_second
    return {
        "canaries": canaries, "users": users, "keys": keys, "in_rotation": in_rotation, "setup": setup,
        "before": before, "before_total": sum(before.values()), "before_seconds": before_seconds, "used_before": used_before,
        "runs": runs, "totals": totals, "alert_writes": alert_writes, "cycle": cycle, "cycle_measured": len(runs),
        "complete": complete, "alerts": alerts, "steady": steady, "cycle_aws": cycle_aws, "pages_on_aws": pages_on_aws,
        "run_seconds": run_seconds,
        "delay_minutes": cycle * args.schedule_minutes + run_seconds / 60,
        "delay_minutes_aws": cycle_aws * args.schedule_minutes + run_seconds / 60,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--budget", type=int, default=last_used_detector.DEFAULT_CALLS_PER_RUN, help="CANARY_IAM_CALLS_PER_RUN")
    parser.add_argument("--calls-per-second", type=float, default=last_used_detector.DEFAULT_CALLS_PER_SECOND,
                        help="CANARY_IAM_CALLS_PER_SECOND (computed, not slept)")
    parser.add_argument("--schedule-minutes", type=float, default=15.0, help="the schedule, rate(N minutes)")
    parser.add_argument("--bystanders", type=int, default=100)
    args = parser.parse_args()

    print(f"budget {args.budget} IAM calls a run at {args.calls_per_second:g}/s (a run: {args.budget / args.calls_per_second:.0f} s), "
          f"schedule every {args.schedule_minutes:g} minutes\n")
    failures, rows = [], []
    for size in args.sizes:
        result = measure(args, size)
        rows.append(result)
        print(f"{size} canaries ({result['keys']} keys, {result['in_rotation']} canaries with a second key, {USED_KEYS} used) "
              f"+ {args.bystanders} bystanders; setup {result['setup']:.0f}s (not counted)")
        print(f"  before: {result['before_total']} IAM calls every run ({result['before_seconds']:.1f}s unpaced)  "
              f"{dict(sorted(result['before'].items()))}")
        for index, (calls, summary, seconds) in enumerate(result["runs"]):
            print(f"  after, run {index + 1:>2}: {sum(calls.values()):>5} IAM calls ({seconds:.1f}s unpaced), "
                  f"{summary['checked']} canaries checked ({summary['listed']} listed), cycle_runs {summary['cycle_runs']}, "
                  f"{summary['alerts']} alert(s)  {dict(sorted(calls.items()))}")
        print(f"  every key read in {result['cycle_measured']} runs (promised: {result['cycle']}); "
              f"on AWS ({result['pages_on_aws']} listing pages) {result['cycle_aws']} runs")
        print(f"  worst-case delay before a use is reported: {result['delay_minutes']:.0f} min here, "
              f"{result['delay_minutes_aws']:.0f} min on AWS (cycle x {args.schedule_minutes:g} min + one run at the pace); "
              f"before: {args.schedule_minutes:g} min + a run of {result['before_total']} calls\n")
        reads = [total - writes for total, writes in zip(result["totals"], result["alert_writes"])]
        if max(reads) > args.budget:
            failures.append(f"{size}: a run made {max(reads)} calls over the budget {args.budget}")
        if not result["complete"] or result["cycle_measured"] > result["cycle"]:
            failures.append(f"{size}: every key read in {result['cycle_measured']} runs, promised {result['cycle']}")
        if len(result["alerts"]) != USED_KEYS or result["used_before"] != USED_KEYS:
            failures.append(f"{size}: {len(result['alerts'])} alerts (before: {result['used_before']} used), expected {USED_KEYS}")

    print("calls/run after: the most any run made, alerts' records (one TagUser per alert, never held back) apart")
    print(f"{'canaries':>8} {'before: calls/run':>18} {'after: calls/run':>17} {'cycle (runs)':>13} {'on AWS':>7} "
          f"{'worst delay':>12} {'on AWS':>8}")
    for result in rows:
        reads = max(total - writes for total, writes in zip(result["totals"], result["alert_writes"]))
        print(f"{result['canaries']:>8} {result['before_total']:>18} {reads:>17} {result['cycle']:>13} "
              f"{result['cycle_aws']:>7} {result['delay_minutes']:>9.0f} min {result['delay_minutes_aws']:>5.0f} min")
    if failures:
        sys.exit(f"the detector broke its promise: {failures}")


if __name__ == "__main__":
    main()
