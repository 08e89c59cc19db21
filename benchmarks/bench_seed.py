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

from _fleet_bench import BASELINE, SEED, fleet_size, fleet_with_local_aws, iam_calls, run, wipe_aws_dirs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--forks", type=int, default=20)
    args = parser.parse_args()
    placements = fleet_size(args.hosts)[2]
    with fleet_with_local_aws(args.hosts, "bench-seed-") as (fleet, inventory, aws, env):
        # Warm-up: SSH control sockets and Python bytecode caches, for both playbooks alike.
        run(BASELINE, inventory, env, args.forks)
        wipe_aws_dirs(fleet)

        base_first = run(BASELINE, inventory, env, args.forks).elapsed
        base_rerun, base_rerun_changed = run(BASELINE, inventory, env, args.forks)[:2]
        wipe_aws_dirs(fleet)

        mark = len(aws.calls())
        seed_first = run(SEED, inventory, env, args.forks).elapsed
        first_calls, first_writes, first_actions = iam_calls(aws, mark)
        mark = len(aws.calls())
        seed_rerun, seed_rerun_changed = run(SEED, inventory, env, args.forks)[:2]
        rerun_calls, rerun_writes, rerun_actions = iam_calls(aws, mark)

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
