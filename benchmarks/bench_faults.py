# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the controller side of seed, rotate and retire under AWS's faults, against the same run without.

    .venv/bin/python benchmarks/bench_faults.py [--hosts 100] [--concurrency 4] [--faults "iam_rate=20,..."]

The local AWS (moto behind the counting proxy) runs twice in this process: faults off, then faults on
(tools/local_aws/faults.py: IAM's throttling, eventual consistency, 500/503, dropped connections and
lost answers, latency; see docs/local_aws.md).  Each time, for ``--hosts`` hosts of two placements each:

    seed run 1, seed run 2      canary_key_info (the seed role's key_source, credential_report), the seed
                                role's filter of the placements that need a key, canary_key_batch
                                action=ensure for those with the key id each host holds
    rotate run 1, rotate run 2  canary_key_info (key_source list_access_keys), canary_key_batch action=begin
                                (max_age_days 0) on its listing of each user, as the rotate role passes it,
                                the host writes the new key, then action=finish with the key the host holds,
                                the one it held and the listing the begin step left
    retire run 1, retire run 2  canary_key_info (key_source list_access_keys), the host drops a profile
                                that holds one of the listed keys, then canary_key state=absent per canary

The modules' own functions run in-process (module_utils/_iam: batch.run_many, apply.ensure_absent,
estate.list_estate; the seed role's filter, plugins/filter/placements.py) on the client the modules build
(calls.iam_client): boto3 with botocore's default retries, wrapped in amazon.aws's AWSRetry.jittered_backoff
(ServiceFailure retried too), every call ``aws_retry=True``.  The hosts are a
dict (placement -> the key id its profile holds): a host write always succeeds, so everything that
goes wrong is on the controller's side.  After each run the end state is read from moto directly (not
counted, no fault): placements planted (the host's key is the user's only key and active), orphan
keys (in IAM, held by no host), dead keys (held by a host, gone from IAM), canary users, and the
placements that failed, by message.  Last, one placement seeded twice within the consistency window
(its host took no key in between) shows whether the re-run finds the user it created.  No secret is
printed or kept.
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import re
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / ".collections")]

import boto3  # noqa: E402  pylint: disable=wrong-import-position
import botocore.config  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.canarykeys.aws.plugins.filter import placements as seed_filters  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.canarykeys.aws.plugins.module_utils._iam import apply, batch, calls, estate, listed, plans  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.errors import IAMCallError, PlacementError, error_message  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping  # noqa: E402  pylint: disable=wrong-import-position
from tools.local_aws.faults import FaultConfig  # noqa: E402  pylint: disable=wrong-import-position
from tools.local_aws.server import LocalAWS  # noqa: E402  pylint: disable=wrong-import-position

# IAM answers in ~50-150 ms and throttles an account's bursts; its documented eventual consistency is
# "usually seconds".  Rates of a bad day, not of a broken one.
DEFAULT_FAULTS = ("seed=1,iam_rate=20,iam_burst=20,consistency_delay=3,error_rate=0.02,drop_rate=0.005,"
                  "lost_response_rate=0.005,latency=0.03,latency_jitter=0.04")
PLACEMENTS_PER_HOST = (("/home/deploy/.aws/credentials", "prod"), ("/root/.aws/credentials", "backup"))
RETRIED_FAULTS = ("throttled", "error_500", "error_503", "dropped", "lost_response")


def iam_client(aws):
    """The client calls.iam_client(module) gives the modules (AWSRetry.jittered_backoff, ServiceFailure retried too)."""
    client = boto3.client("iam", endpoint_url=aws.endpoint_url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing", config=botocore.config.Config(user_agent_extra="bench_faults"))
    return RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff(catch_extra_error_codes=list(calls.EXTRA_RETRY_CODES)))


def placements(hosts):
    return [(f"web{n:03d}", path, profile) for n in range(hosts) for path, profile in PLACEMENTS_PER_HOST]


def request(placement, held, **extra):
    host, path, profile = placement
    return dict(host=host, path=path, profile_name=profile, planted_key_id=held.get(placement, ""),
                reminder="bench", planted_by="bench_faults", **extra)


def normalised(message):
    """A failure message with its ids blanked, so that the same failure on many placements counts as one."""
    message = re.sub(r"AKIA[A-Z0-9]+", "AKIA...", message or "")
    message = re.sub(r"web\d{3}", "webNNN", message)
    return re.sub(r"(RequestId|request id)[:= ]+[\w-]+", r"\1 ...", message)[:300]


def run_batch(client, held, action, requests, concurrency):
    outcomes = batch.run_many(client, requests, action=action, concurrency=concurrency)
    return outcomes, [normalised(f"{action}: {o.get('msg')}") for o in outcomes if o.get("failed")]


def listing(client, everything, key_source):
    """canary_key_info's result for every host, or (None, the failure) when the module would fail the play."""
    try:
        return estate.list_estate(client, hosts=sorted({p[0] for p in everything}), key_source=key_source,
                                  aws_retry=True), []
    except Exception as exc:  # pylint: disable=broad-except
        # The module fails the whole play then (fail_json_aws): nothing else happens in that run.
        return None, [normalised(f"canary_key_info: {type(exc).__name__}: {exc}")]


def seed(client, held, everything, concurrency):
    """The seed role's controller side: the bulk read, its filter of unsettled placements, the batch."""
    listed, failures = listing(client, everything, estate.CREDENTIAL_REPORT)
    if listed is None:
        return failures
    unsettled = set()
    for host in sorted({p[0] for p in everything}):
        reads = [{"path": path, "access_key_id": held.get((host, path, profile), ""),
                  "seed_placement": {"profile": profile, "profile_name": profile, "reminder": "bench"}}
                 for (h, path, profile) in everything if h == host]
        unsettled.update((host, read["path"], read["seed_placement"]["profile"])
                         for read in seed_filters.unsettled_placements(reads, listed["canaries"], host, "bench"))
    requests = [request(p, held) for p in everything if p in unsettled]
    if not requests:
        return failures
    outcomes, failures = run_batch(client, held, "ensure", requests, concurrency)
    for outcome in outcomes:
        if outcome.get("minted"):
            held[(outcome["host"], outcome["path"], outcome["profile"])] = outcome["access_key_id"]
    return failures


def rotate(client, held, everything, concurrency):
    """The rotate role's controller side: the bulk read, begin on its listing of each user, finish on begin's."""
    estate_now, failures = listing(client, everything, estate.LIST_ACCESS_KEYS)
    if estate_now is None:
        return failures
    canaries = {(c["mapping"]["host"], c["mapping"]["path"], c["mapping"]["profile"]): c for c in estate_now["canaries"]}
    begin = [request(p, held, max_age_days=0, inline_policies=canaries[p]["inline_policies"], listing=listed.listing_of(canaries[p]))
             if p in canaries else request(p, held, max_age_days=0) for p in everything]
    outcomes, failures = run_batch(client, held, "begin", begin, concurrency)
    finish = []
    for placement, outcome in zip(everything, outcomes):
        if outcome.get("rotation") == plans.ROTATION_STARTED and outcome.get("access_key_id"):
            old = held.get(placement, "")
            held[placement] = outcome["access_key_id"]
            finish.append(request(placement, held, rotated_key_id=old, **({"listing": outcome["listing"]} if outcome.get("listing") else {})))
    if finish:
        outcomes, finish_failures = run_batch(client, held, "finish", finish, concurrency)
        failures += finish_failures
        # The host took the new key (held says so): a finish that keeps the old one is wrong, and the
        # rotate role reports it as "the host did not take the new key; the new key was deleted".
        failures += [normalised(f"finish: rotation {o['rotation']} although the profile holds the new key; deleted "
                                f"{len(o['deleted_access_key_ids'])} key(s)")
                     for o in outcomes if o.get("rotation") == plans.ROTATION_ROLLED_BACK]
    return failures


def retire(client, held, everything, concurrency):
    listed, failures = listing(client, everything, estate.LIST_ACCESS_KEYS)
    if listed is None:
        return failures
    for canary in listed["canaries"]:
        mapping = canary["mapping"]
        placement = (mapping["host"], mapping["path"], mapping["profile"])
        if held.get(placement) in [key["access_key_id"] for key in canary["keys"]]:
            held[placement] = ""
        try:
            apply.ensure_absent(client, plans.Placement(*placement), user_name=canary["user_name"])
        except (PlacementError, IAMCallError) as error:
            failures.append(normalised(f"absent: {error_message(error)}"))
    return failures


def end_state(aws, held, everything):
    """What IAM and the hosts hold now, read from moto directly (no fault, not counted)."""
    iam = aws.client("iam", direct=True)
    users = [u for page in iam.get_paginator("list_users").paginate() for u in page["Users"]]
    keys_of, placement_of = {}, {}
    for user in users:
        tags = canary_mapping.tags_list_to_dict(iam.list_user_tags(UserName=user["UserName"])["Tags"])
        if canary_mapping.TAG_PLACEMENT not in tags:
            continue
        placement_of[tags[canary_mapping.TAG_PLACEMENT]] = user["UserName"]
        keys_of[user["UserName"]] = iam.list_access_keys(UserName=user["UserName"])["AccessKeyMetadata"]
    all_keys = {k["AccessKeyId"]: k for keys in keys_of.values() for k in keys}
    held_ids = {key_id for key_id in held.values() if key_id}
    planted = 0
    for placement in everything:
        user = placement_of.get(canary_mapping.placement_id(*placement))
        keys = keys_of.get(user, [])
        if held.get(placement) and [k["AccessKeyId"] for k in keys] == [held[placement]] and keys[0]["Status"] == "Active":
            planted += 1
    return {"planted": planted, "users": len(keys_of), "keys": len(all_keys),
            "orphan_keys": len(set(all_keys) - held_ids), "dead_keys": len(held_ids - set(all_keys)),
            "holding": len(held_ids)}


def benchmark(aws, everything, concurrency, label):
    print(f"\n== {label}: {len(everything)} placements, concurrency {concurrency}, faults {aws.faults.config.active and 'on' or 'off'}")
    client = iam_client(aws)
    held = {}
    totals = {"time": 0.0, "calls": 0, "retried": 0, "failed": 0}
    for step, function in (("seed", seed), ("rotate", rotate), ("retire", retire)):
        for run in (1, 2):
            since, before = len(aws.calls()), aws.faults.counters()
            started = time.perf_counter()
            failures = function(client, held, everything, concurrency)
            elapsed = time.perf_counter() - started
            calls = sum(1 for c in aws.calls()[since:] if c["service"] == "iam")
            after = aws.faults.counters()
            injected = {kind: n - before["injected"][kind] for kind, n in after["injected"].items()
                        if kind != "latency" and n - before["injected"][kind]}
            retried = sum(injected.get(kind, 0) for kind in RETRIED_FAULTS)
            state = end_state(aws, held, everything)
            for key, value in (("time", elapsed), ("calls", calls), ("retried", retried), ("failed", len(failures))):
                totals[key] += value
            print(f"{step} run {run}: {elapsed:6.1f}s  IAM calls {calls:5d}  faulted calls {retried:4d}  "
                  f"failed placements {len(failures):3d}  | planted {state['planted']}/{len(everything)}  "
                  f"users {state['users']}  keys {state['keys']}  orphan keys {state['orphan_keys']}  "
                  f"dead keys {state['dead_keys']}", flush=True)
            if injected:
                print(f"    injected: {', '.join(f'{k} {v}' for k, v in sorted(injected.items()))}")
            for kind in ("lost_response", "dropped", "not_yet_consistent"):
                actions = {a: n - before["by_action"].get(kind, {}).get(a, 0) for a, n in after["by_action"].get(kind, {}).items()}
                if any(actions.values()):
                    print(f"    {kind}: {', '.join(f'{a} {n}' for a, n in sorted(actions.items()) if n)}")
            for message, count in collections.Counter(failures).most_common(6):
                print(f"    {count:3d} x {message}")
    return totals


def reseed_within_window(aws, delay=5.0):
    """A seed re-run seconds after the first, for a placement whose host took no key (its write failed)."""
    aws.faults.config = FaultConfig(consistency_delay=delay)
    aws.reset()
    client = iam_client(aws)
    placement = plans.Placement("web900", "/home/deploy/.aws/credentials", "prod")
    first = apply.ensure_present(client, placement, "")
    second = apply.ensure_present(client, placement, "")
    users = [u["UserName"] for u in aws.client("iam", direct=True).list_users()["Users"]]
    print(f"\n== seed re-run within the consistency window ({delay:g} s), the host holding no key: run 1 user "
          f"{first['user_name']}, run 2 user {second['user_name']} (created: {second.get('user_created')}); "
          f"IAM users of the placement: {len(users)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100, help="hosts of two placements each (default 100: 200 placements)")
    parser.add_argument("--concurrency", type=int, default=4, help="canary_key_batch's concurrency (its default: 4)")
    parser.add_argument("--faults", default=DEFAULT_FAULTS, help=f"the fault settings of the second run (default {DEFAULT_FAULTS})")
    args = parser.parse_args()
    everything = placements(args.hosts)
    with LocalAWS(faults={}) as aws:
        off = benchmark(aws, everything, args.concurrency, "faults off")
        aws.faults.config = FaultConfig.parse(args.faults)
        aws.reset()
        on = benchmark(aws, everything, args.concurrency, f"faults on ({args.faults})")
        reseed_within_window(aws)
    print("\n== faults on / off")
    for key in ("time", "calls"):
        print(f"{key}: {on[key]:.1f} / {off[key]:.1f} = x{on[key] / max(off[key], 1e-9):.2f}")
    print(f"faulted calls: {on['retried']} (off: {off['retried']}); failed placements over all runs: {on['failed']} (off: {off['failed']})")


if __name__ == "__main__":
    main()
