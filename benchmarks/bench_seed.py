# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: seeding N SSH hosts against a baseline that only copies a static file.

    .venv/bin/python benchmarks/bench_seed.py [--hosts 50] [--forks 20]

Both playbooks touch the same placements (webservers: deploy and root; laptops: the
person) on the same fleet in the same run, so the ratios cancel out this machine's
speed and noise.  Prints wall times, the ratios seed/baseline for a first run and a
re-run, and IAM calls per placement counted at the wire by the local AWS proxy.
Targets (issue 2): first run <= 1.5x, re-run <= 1.2x, re-run IAM writes = 0.
Needs root (the fleet); see docs/performance.md.
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from tooling import fleet as fleet_tool  # noqa: E402  pylint: disable=wrong-import-position
from tools.local_aws.server import LocalAWS  # noqa: E402  pylint: disable=wrong-import-position

BASELINE = REPO / "benchmarks" / "baseline_copy.yml"
SEED = REPO / "playbooks" / "seed_canaries.yml"


def run(playbook, inventory, env, forks):
    argv = [str(pathlib.Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), "-f", str(forks), str(playbook)]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{playbook.name} failed:\n{proc.stdout[-4000:]}")
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", proc.stdout))
    return elapsed, changed


def wipe_aws_dirs(fleet):
    for host in fleet.hosts.values():
        for user in (*host.users, "root"):
            path = fleet.outside_path(host.name, user, ".aws")
            subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def iam_calls(aws, since):
    calls = [c for c in aws.calls()[since:] if c["service"] == "iam"]
    by_action = collections.Counter(c["action"] for c in calls)
    writes = sum(n for action, n in by_action.items() if not re.match(r"(Get|List|Describe|Generate)", action or ""))
    return len(calls), writes, by_action


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--forks", type=int, default=20)
    args = parser.parse_args()
    reason = fleet_tool.unavailable_reason()
    if reason:
        sys.exit(reason)

    webservers = args.hosts // 2
    laptops = args.hosts - webservers
    placements = webservers * 2 + laptops
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="bench-seed-", dir="/var/tmp"))
    fleet = fleet_tool.Fleet.create(workdir / "fleet", webservers=webservers, laptops=laptops, owner_pid=os.getpid())
    started = time.perf_counter()
    fleet.up()
    print(f"fleet: {args.hosts} hosts ({webservers} webservers, {laptops} laptops), {placements} placements, "
          f"up in {time.perf_counter() - started:.1f}s")
    inventory = fleet.write_inventory(workdir / "inventory.yml")
    try:
        with LocalAWS() as aws:
            env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), AWS_ENDPOINT_URL=aws.endpoint_url,
                       AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                       AWS_SHARED_CREDENTIALS_FILE=str(workdir / "none"), AWS_CONFIG_FILE=str(workdir / "none"))
            env.pop("AWS_PROFILE", None)
            # Warm-up: SSH control sockets and Python bytecode caches, for both playbooks alike.
            run(BASELINE, inventory, env, args.forks)
            wipe_aws_dirs(fleet)

            base_first = run(BASELINE, inventory, env, args.forks)[0]
            base_rerun, base_rerun_changed = run(BASELINE, inventory, env, args.forks)
            wipe_aws_dirs(fleet)

            mark = len(aws.calls())
            seed_first = run(SEED, inventory, env, args.forks)[0]
            first_calls, first_writes, first_actions = iam_calls(aws, mark)
            mark = len(aws.calls())
            seed_rerun, seed_rerun_changed = run(SEED, inventory, env, args.forks)
            rerun_calls, rerun_writes, rerun_actions = iam_calls(aws, mark)
    finally:
        fleet.down()

    print(f"baseline copy: first {base_first:.1f}s, re-run {base_rerun:.1f}s (changed={base_rerun_changed})")
    print(f"seed:          first {seed_first:.1f}s, re-run {seed_rerun:.1f}s (changed={seed_rerun_changed})")
    print(f"ratio seed/baseline: first run {seed_first / base_first:.2f}x (target <= 1.5), "
          f"re-run {seed_rerun / base_rerun:.2f}x (target <= 1.2)")
    print(f"IAM calls per placement: first run {first_calls / placements:.2f} ({first_writes} writes), "
          f"re-run {rerun_calls / placements:.2f} ({rerun_writes} writes, target 0)")
    print(f"  first run by action: {dict(sorted(first_actions.items()))}")
    print(f"  re-run by action:    {dict(sorted(rerun_actions.items()))}")


if __name__ == "__main__":
    main()
