# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: rotating every canary of N SSH hosts against the seed benchmark's static-copy baseline.

    .venv/bin/python benchmarks/bench_rotate.py [--hosts 50] [--forks 20] [--repeat 3] [--no-check-mode] [--profile] [--compare DIR]

After a warm-up baseline run, the fleet is seeded once with seed_canaries.yml (timed, for reference
only).  Then, interleaved so that the machine's noise falls on both sides, ``--repeat`` times: baseline,
rotate every placement (max_age_days=0); then baseline, rotate again with max_age_days=90 (nothing is
due, so a no-op), rotate --check (max_age_days=0), baseline.  The baseline is benchmarks/baseline_copy.yml
copying its static file into a fresh ~/.aws-baseline of every placement's user (the planted files stay
where they are): the same work as the first-run baseline of bench_seed.py.  Each rotation's ratio is to
the mean of the baselines just before and just after it; the figure is the median of those ratios.
IAM calls are counted at the wire by the local AWS proxy, per placement and by action.  With ``--compare
DIR`` (another tree of the collection, e.g. main's), each round also rotates with that tree's playbook,
between baselines of its own, so that a before/after ratio is taken under the same load.

Before the figures are believed, the fleet is checked against IAM after every rotation (directly, not
counted): every placement's profile holds a new key that is its IAM user's only key, active, with a new
secret (by digest; no secret is ever printed) and the generation tag advanced by one; no key of the
run before survives; the no-op and the check run changed nothing.  Exits 1 if not.
Targets (issue 12): <= 5 IAM calls per rotated placement, <= 1.2x the baseline; re-run with nothing due
and --check make no IAM write (issue 5).  Needs root (the fleet).
"""

from __future__ import annotations

import argparse
import configparser
import dataclasses
import hashlib
import pathlib
import statistics
import subprocess

from _fleet_bench import (BASELINE, ROTATE, SEED, fleet_size, fleet_with_local_aws, iam_calls, load_average, profile_summary,
                          ratios_to_neighbours, run)

BASELINE_DIR = ".aws-baseline"
COMPARED = "rotate (--compare)"
GENERATION_TAG = "canarykeys:generation"


@dataclasses.dataclass(frozen=True)
class Placement:
    """One canary as IAM and the host's file see it; the secret only as a digest."""
    user_name: str
    keys: tuple  # ((access key id, status), ...) in IAM
    generation: str
    planted_key_id: str | None
    planted_secret_sha256: str | None


def wipe_baseline_dirs(fleet):
    for host in fleet.hosts.values():
        for user in (*host.users, "root"):
            path = fleet.outside_path(host.name, user, BASELINE_DIR)
            subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def planted(fleet, host, path, profile):
    """(access key id, sha256 of the secret) in a profile of a host's file, read from outside the host."""
    text = fleet.read_file(host, "root", path)
    parser = configparser.RawConfigParser()
    if text:
        parser.read_string(text)
    if not parser.has_section(profile):
        return None, None
    secret = parser[profile].get("aws_secret_access_key")
    return parser[profile].get("aws_access_key_id"), hashlib.sha256(secret.encode()).hexdigest() if secret else None


def estate(fleet, iam):
    """{(host, path, profile): Placement} of every canary user, from IAM and the fleet's files."""
    placements = {}
    for page in iam.get_paginator("list_users").paginate():
        for user in page["Users"]:
            name = user["UserName"]
            tags = {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=name)["Tags"]}
            if tags.get("canarykeys:managed") != "true":
                continue
            where = (tags["canarykeys:host"], tags["canarykeys:path"], tags["canarykeys:profile"])
            keys = tuple(sorted((k["AccessKeyId"], k["Status"]) for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]))
            placements[where] = Placement(name, keys, tags.get(GENERATION_TAG, ""), *planted(fleet, *where))
    return placements


def check_planted(state, count):
    """Problems with an estate where every placement should hold its user's only, active key."""
    problems = [] if len(state) == count else [f"{len(state)} canaries in IAM, {count} placements expected"]
    for where, p in sorted(state.items()):
        if p.keys != ((p.planted_key_id, "Active"),):
            problems.append(f"{where}: the profile holds {p.planted_key_id}, IAM user {p.user_name} has {p.keys}")
        if not p.planted_secret_sha256:
            problems.append(f"{where}: no secret in the profile")
    return problems


def check_rotated(seeded, rotated, count):
    """Problems with the estate after a rotation of every placement of ``seeded``."""
    problems = check_planted(rotated, count)
    old_keys = {p.planted_key_id for p in seeded.values()}
    survivors = old_keys & {key for p in rotated.values() for key, _status in p.keys}
    if survivors:
        problems.append(f"{len(survivors)} keys of the seed still exist in IAM")
    for where, before in sorted(seeded.items()):
        after = rotated.get(where)
        if after is None:
            problems.append(f"{where}: canary gone after the rotation")
            continue
        if after.planted_key_id == before.planted_key_id or after.planted_secret_sha256 == before.planted_secret_sha256:
            problems.append(f"{where}: not rotated (still {before.planted_key_id})")
        if not (before.generation.isdigit() and after.generation == str(int(before.generation) + 1)):
            problems.append(f"{where}: generation {before.generation!r} -> {after.generation!r}, expected one more")
    return problems


def iam_summary(label, aws, mark, placements):
    total, writes, by_action = iam_calls(aws, mark)
    target = {"rotate": ", target <= 5", "rotate, none due": ", target 0 writes", "rotate --check": ", target 0 writes"}.get(label, "")
    return (f"  {label:<18} {total / placements:.2f} per placement{target} ({total} calls: {writes} writes, {total - writes} reads)\n"
            f"  {'':<18} by action {dict(sorted(by_action.items()))}")


def main():  # pylint: disable=too-many-locals,too-many-statements
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--forks", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="rotations of every placement, each between two baselines")
    parser.add_argument("--no-check-mode", dest="check_mode", action="store_false", help="skip the rotate --check run")
    parser.add_argument("--profile", action="store_true",
                        help="enable ansible.posix.profile_tasks in every run and print the task times of the rotation runs")
    parser.add_argument("--compare", type=pathlib.Path, metavar="DIR",
                        help="another tree of the collection (e.g. main, as `git archive main` extracted, with its .collections link): "
                             "each round also rotates with its rotate_canaries.yml, between baselines, for a before/after ratio "
                             "under the same load")
    args = parser.parse_args()
    placements = fleet_size(args.hosts)[2]
    sequence, iam, changed, profiles, problems = [], {}, {}, {}, []
    load_before = load_average()
    with fleet_with_local_aws(args.hosts, "bench-rotate-") as (fleet, inventory, aws, env):
        if args.profile:
            env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
        direct_iam = aws.client("iam", direct=True)
        baseline_args = ("-e", f"baseline_dir={BASELINE_DIR}")

        def timed(name, playbook, *extra, config=None):
            if playbook == BASELINE:
                wipe_baseline_dirs(fleet)
            mark = len(aws.calls())
            result = run(playbook, inventory, dict(env, ANSIBLE_CONFIG=str(config)) if config else env, args.forks, *extra)
            sequence.append((name, result.elapsed))
            changed[name] = result.changed
            # The first rotation's calls stand for all (every one rotates the same placements the same way).
            iam.setdefault(name, iam_summary(name, aws, mark, placements))
            profiles.setdefault(name, profile_summary(result.output))
            print(f"  ... {name}: {result.elapsed:.1f}s", flush=True)

        # Warm-up: SSH control sockets and Python bytecode caches.
        run(BASELINE, inventory, env, args.forks, *baseline_args)
        timed("seed", SEED)
        before = estate(fleet, direct_iam)
        problems += [f"after the seed: {p}" for p in check_planted(before, placements)]
        if problems:
            raise SystemExit("the seed did not plant every placement:\n" + "\n".join(problems))

        for round_ in range(1, args.repeat + 1):
            runs = [("rotate", ROTATE, None)]
            if args.compare:
                runs.append((COMPARED, args.compare / "playbooks" / ROTATE.name, args.compare / "ansible.cfg"))
            for name, playbook, config in runs:
                timed("baseline", BASELINE, *baseline_args)
                timed(name, playbook, "-e", "max_age_days=0", config=config)
                rotated = estate(fleet, direct_iam)
                problems += [f"rotation {round_} ({name}): {p}" for p in check_rotated(before, rotated, placements)]
                before = rotated
        timed("baseline", BASELINE, *baseline_args)
        timed("rotate, none due", ROTATE, "-e", "max_age_days=90")
        if args.check_mode:
            timed("rotate --check", ROTATE, "--check", "-e", "max_age_days=0")
        timed("baseline", BASELINE, *baseline_args)
        final = estate(fleet, direct_iam)
    load_after = load_average()

    if final != before:
        moved = sorted(where for where in set(final) | set(before) if final.get(where) != before.get(where))
        problems.append(f"the no-op and check runs changed {len(moved)} placements, e.g. {moved[:3]}")

    baselines = [seconds for name, seconds in sequence if name == "baseline"]
    print(f"load average (1 min): {load_before} before, {load_after} after; {placements} placements, forks {args.forks}")
    print(f"baseline copy: {', '.join(f'{t:.1f}s' for t in baselines)} (median {statistics.median(baselines):.1f}s)")
    for name in ("seed", "rotate", COMPARED, "rotate, none due", "rotate --check"):
        runs = [seconds for label, seconds in sequence if label == name]
        if not runs:
            continue
        ratios = ratios_to_neighbours(sequence, name)
        target = "  (target <= 1.2x)" if name == "rotate" else ""
        print(f"{name + ':':<18} {', '.join(f'{t:.1f}s' for t in runs)}; ratio to the baselines around it "
              f"{', '.join(f'{r:.2f}x' for r in ratios)}: median {statistics.median(ratios):.2f}x{target}  (changed={changed[name]})")
    print("IAM calls (at the wire):")
    for name in ("seed", "rotate", COMPARED, "rotate, none due", "rotate --check"):
        if name in iam:
            print(iam[name])
    if args.profile:
        for name in ("rotate", COMPARED, "rotate, none due"):
            if name in profiles:
                print(f"task times, {name} (first run):\n{profiles[name]}")
    if problems:
        print(f"VERIFICATION FAILED ({len(problems)} problems):")
        print("\n".join(f"  {p}" for p in problems[:20]))
        raise SystemExit(1)
    print(f"verified: after each of the {args.repeat} rotations all {placements} placements hold a new key that is their IAM "
          "user's only, active key, generation +1; no key of the run before left; the no-op and check runs changed nothing")


if __name__ == "__main__":
    main()
