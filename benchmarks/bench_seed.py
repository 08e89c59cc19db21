# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: seeding N SSH hosts against a baseline that only copies a static file, at several fleet sizes.

    .venv/bin/python benchmarks/bench_seed.py [--sizes 25 50 100] [--repeat 3] [--forks 20] [--no-rerun] [--profile]

At each size, on a fleet of its own: a warm-up baseline run, then ``--repeat`` times, interleaved so
that the machine's noise falls on both sides: the baseline's first run (every ~/.aws wiped), the seed's
first run (every ~/.aws wiped and the local AWS emptied: a first seed, every placement minted), and a
last baseline.  Each seed's ratio is to the mean of the baselines just before and just after it; the
figure is the median.  Then, once, the re-runs (nothing to do) on a seeded fleet: baseline, seed,
baseline, the baseline copying beside the seeded files (~/.aws-baseline) into files already in place.
Both playbooks touch the same placements (webservers: deploy and root; laptops: the person).  IAM
calls per placement are counted at the wire by the local AWS proxy (the last first run, the re-run).
Targets: first run <= 1.1x at every size (issue 12; <= 1.5x in issue 2), re-run <= 1.2x and 0 IAM
writes (issue 2).  Needs root (the fleet); see docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics

from _fleet_bench import (BASELINE, SEED, fleet_size, fleet_with_local_aws, iam_calls, load_average, profile_summary,
                          ratios_to_neighbours, run, wipe_aws_dirs)


def one_size(hosts, args):
    """The figures of one fleet size, printed as they come."""
    placements = fleet_size(hosts)[2]
    first, rerun, profiles = [], [], {}
    load_before = load_average()
    with fleet_with_local_aws(hosts, "bench-seed-") as (fleet, inventory, aws, env):
        if args.profile:
            env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
        # Warm-up: SSH control sockets and Python bytecode caches, for both playbooks alike.
        run(BASELINE, inventory, env, args.forks)

        beside = ("-e", "baseline_dir=.aws-baseline")

        def timed(sequence, name, playbook, *extra):
            result = run(playbook, inventory, env, args.forks, *extra)
            sequence.append((name, result.elapsed))
            print(f"  ... {hosts} hosts, {name}: {result.elapsed:.1f}s (changed={result.changed})", flush=True)
            profiles.setdefault((id(sequence), name), profile_summary(result.output))
            return result

        for _round in range(args.repeat):
            wipe_aws_dirs(fleet)
            timed(first, "baseline", BASELINE)
            wipe_aws_dirs(fleet)
            aws.reset()  # a first seed: no canary in IAM, every placement minted
            timed(first, "seed", SEED)
            first_calls = iam_calls(aws, 0)
        wipe_aws_dirs(fleet)
        timed(first, "baseline", BASELINE)
        if args.rerun:
            # The fleet holds the baseline's files now: seed once more; the re-run baselines copy beside the seeded
            # files (~/.aws-baseline, once untimed so that the timed ones find their files in place).
            wipe_aws_dirs(fleet)
            aws.reset()
            run(SEED, inventory, env, args.forks)
            run(BASELINE, inventory, env, args.forks, *beside)
            timed(rerun, "baseline", BASELINE, *beside)
            mark = len(aws.calls())
            timed(rerun, "seed", SEED)
            rerun_calls = iam_calls(aws, mark)
            timed(rerun, "baseline", BASELINE, *beside)

    lines = [f"{hosts} hosts ({placements} placements, forks {args.forks}; load average {load_before} before, {load_average()} after):"]
    for label, sequence in (("first run", first), ("re-run", rerun)):
        if not sequence:
            continue
        ratios = ratios_to_neighbours(sequence, "seed")
        target = "1.1" if label == "first run" else "1.2"
        lines.append(f"  {label}: baseline {', '.join(f'{s:.1f}' for n, s in sequence if n == 'baseline')} s; seed "
                     f"{', '.join(f'{s:.1f}' for n, s in sequence if n == 'seed')} s; ratios {', '.join(f'{r:.2f}' for r in ratios)}; "
                     f"median {statistics.median(ratios):.2f}x (target <= {target})")
    total, writes, actions = first_calls
    lines.append(f"  IAM calls per placement, first run: {total / placements:.2f} ({writes} writes) {dict(sorted(actions.items()))}")
    if rerun:
        total, writes, actions = rerun_calls
        lines.append(f"  IAM calls per placement, re-run: {total / placements:.2f} ({writes} writes, target 0) {dict(sorted(actions.items()))}")
    if args.profile:
        lines.append(f"  task times, first seed:\n{profiles[(id(first), 'seed')]}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100], help="fleet sizes (hosts)")
    parser.add_argument("--hosts", type=int, help="one size (the former option): same as --sizes N")
    parser.add_argument("--repeat", type=int, default=3, help="first runs of each playbook at each size, interleaved")
    parser.add_argument("--forks", type=int, default=20)
    parser.add_argument("--no-rerun", dest="rerun", action="store_false", help="skip the re-run (nothing to do) measurement")
    parser.add_argument("--profile", action="store_true", help="enable ansible.posix.profile_tasks and print the first seed's task times")
    args = parser.parse_args()
    summaries = [one_size(hosts, args) for hosts in ([args.hosts] if args.hosts else args.sizes)]
    print("\n".join(summaries))


if __name__ == "__main__":
    main()
