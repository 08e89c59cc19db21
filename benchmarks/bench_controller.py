# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the controller side at several estate sizes, seconds and IAM calls per placement (no SSH).

    .venv/bin/python benchmarks/bench_controller.py [--sizes 500,2000,10000] [--concurrency 4] [--no-report-last-used]

Prints figures; it is no timed test.  For each size N (N/2 hosts of two placements each, as
bench_faults.py names them), against a fresh local AWS (moto behind the counting proxy, IAM calls
counted at the wire by action), one step after the other on the estate the previous steps left:

    mint          canary_key_batch action=ensure for the N new placements (the seed's batch)
    info report   canary_key_info key_source=credential_report over the N/2 hosts (the seed's bulk read)
    info keys     canary_key_info key_source=list_access_keys over the N/2 hosts (the rotate and retire roles' read)
    per-host      the filters of the seed and rotate roles, in process, with the results above, as the roles run
                  them: once for the play the groupings by host (group_by_host of the bulk reads,
                  seed_outcomes_by_host, rotate_outcomes_by_host), the rotation table's rows and every host's
                  rotate_errors (rotate_errors_by_host), then for every host its own filters on its own entry
                  (seed_requests, seed_plants, due_placements): no Ansible templating around them, so a lower bound
    pick play     with --per-host-play: the rotate role's per-host pick of its rows (due_placements) through
    pick base     ansible-playbook on every host (local connections), and the same play picking nothing
    begin         canary_key_batch action=begin max_age_days=0 for every placement, with what the
                  rotate role passes (the planted key id, the user name and inline policies of "info keys")
    finish        canary_key_batch action=finish for every placement, the host holding the new key
    report        ansible-playbook playbooks/report_canaries.yml on localhost with an inventory of the
                  N/2 hosts (none contacted): the report role as it runs, canary_key_info with last use,
                  its missing_canaries filter and the three templates (last: the slowest step on moto)

The modules run as AnsiballZ runs them (benchmarks/_module_process.py: a fresh interpreter running the
module's main on its JSON arguments).  Each step prints wall seconds, the CPU seconds of its process
(the collection's own cost, whatever moto does) and of moto (the local AWS's cost: moto looks a key id
up by scanning every user's keys, so each GetAccessKeyLastUsed costs it O(N), which AWS does not), IAM
calls, all three per placement, and the peak RSS of the process.  Then the growth of each per-placement
figure from the smallest size to the largest (flat = 1.0).  The load average is printed with every step:
the machine is shared, so rely on the ratios of CPU seconds and on the call counts.

IAM allows 5,000 users in an account: past that, an estate spans several accounts.  moto has no such
limit, so the mint passes ``user_quota`` N + 100 to measure one account of N users.  No secret is
printed or kept: the minted secrets are dropped from each outcome as soon as it is parsed.
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / ".collections"), str(REPO / "benchmarks")]

from _module_process import process_cpu, run_module, run_process  # noqa: E402  pylint: disable=wrong-import-position,import-error
from bench_canary_key_info import iam_calls  # noqa: E402  pylint: disable=wrong-import-position,import-error
from bench_faults import placements  # noqa: E402  pylint: disable=wrong-import-position,import-error

from ansible_collections.canarykeys.aws.plugins.filter import estate as estate_filters  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.canarykeys.aws.plugins.filter import placements as placement_filters  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.canarykeys.aws.plugins.filter import tables  # noqa: E402  pylint: disable=wrong-import-position
from tools.local_aws.server import LocalAWS  # noqa: E402  pylint: disable=wrong-import-position

REPORT = REPO / "playbooks" / "report_canaries.yml"
# The rotate role's per-host pick of its rows (roles/rotate/tasks/main.yml) after its one bulk read, on
# every host of an inventory of local connections: only the controller works.  BASELINE_PICK is the same
# play with a pick that does not look at the estate; the difference is what the filter costs through Ansible.
PER_HOST_PLAY = """
- name: Pick each host's placements from one bulk read, as the rotate role does
  hosts: all
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
  tasks:
    - name: Read the estate once
      canarykeys.aws.canary_key_info:
        host: "{{{{ ansible_play_hosts }}}}"
      delegate_to: localhost
      run_once: true
      register: bench_estate
    - name: Pick this host's rows
      ansible.builtin.set_fact:
        bench_due: "{pick}"
"""
FILTER_PICK = "{{ bench_estate.placements | canarykeys.aws.due_placements(inventory_hostname, 0) | length }}"
BASELINE_PICK = "{{ bench_estate.summary.canaries }}"
SEED_TEMPLATE = "{host} {path} {profile}"


class Step(collections.namedtuple("Step", "name placements elapsed cpu moto_cpu calls by_action max_rss_mb load")):
    def per(self, field):
        return getattr(self, field) / self.placements


def role_request(placement, **fields):
    """One placement as the seed and rotate roles' request filters give it (canary_key_batch's through batch_placements)."""
    host, path, profile = placement
    return dict(host=host, path=path, profile=profile, reminder=SEED_TEMPLATE, planted_by="bench_controller", **fields)


def without_secrets(outcomes):
    """The outcomes with every secret dropped, before anything else looks at them."""
    return [{key: value for key, value in outcome.items() if key != "secret_access_key"} for outcome in outcomes]


class Bench:
    """The steps of one size against one local AWS, each measured the same way."""

    def __init__(self, aws, size, concurrency):
        self.aws = aws
        self.size = size
        self.concurrency = concurrency
        self.everything = placements(size // 2)
        self.hosts = sorted({host for host, _path, _profile in self.everything})
        self.env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", **aws.operator_env())
        self.env.pop("AWS_PROFILE", None)
        self.steps = []
        # moto's own process: its CPU is the local AWS's cost, kept apart from the collection's.
        self.moto_pid = aws._proc.pid  # pylint: disable=protected-access

    def measure(self, name, function):
        since, moto_before = len(self.aws.calls()), process_cpu(self.moto_pid)
        run, result = function()
        calls = iam_calls(self.aws, since)
        step = Step(name, len(self.everything), run.elapsed, run.cpu, process_cpu(self.moto_pid) - moto_before,
                    sum(calls.values()), calls, run.max_rss_mb, os.getloadavg()[0])
        self.steps.append(step)
        print(f"  {name:<12} {step.elapsed:8.1f} s {step.per('elapsed') * 1000:7.2f} ms/pl  cpu {step.per('cpu') * 1000:6.2f} ms/pl  "
              f"moto {step.per('moto_cpu') * 1000:6.2f} ms/pl  IAM {step.calls:6d} = {step.per('calls'):5.2f}/pl  "
              f"rss {step.max_rss_mb:6.0f} MiB  load {step.load:4.1f}  {dict(sorted(calls.items()))}", flush=True)
        return result

    def batch(self, action, requests, **options):
        args = dict(placements=placement_filters.batch_placements(requests), action=action, concurrency=self.concurrency, **options)
        run, result = run_module("canary_key_batch", args, self.env)
        outcomes = without_secrets(result["outcomes"])
        failed = [outcome.get("msg") for outcome in outcomes if outcome.get("failed")]
        if failed:
            sys.exit(f"{action}: {len(failed)} placements failed, first: {failed[0]}")
        return run, outcomes

    def info(self, key_source, last_used=False):
        return run_module("canary_key_info", dict(host=self.hosts, key_source=key_source, last_used=last_used,
                                                  concurrency=self.concurrency), self.env)

    def report(self, last_used):
        with tempfile.TemporaryDirectory() as tree:
            inventory = pathlib.Path(tree, "inventory.ini")
            inventory.write_text("[web]\n" + "\n".join(self.hosts) + "\n")
            argv = [str(pathlib.Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(REPORT),
                    "-e", f"report_dir={tree}/reports", "-e", f"report_last_used={last_used}"]
            run = run_process(argv, self.env)
            if run.returncode != 0:
                sys.exit(f"the report failed:\n{run.stdout.decode(errors='replace')[-3000:]}")
            rows = pathlib.Path(tree, "reports", "canary_estate.csv").read_text().count("\n") - 1
        if rows != len(self.everything):
            sys.exit(f"the report has {rows} rows, not {len(self.everything)}")
        return run, None

    def per_host_filters(self, known, listed, minted):
        """The per-host filters of the seed and rotate roles, for every host, in process (CPU of this process).

        Each host's inputs are made before the clock starts: only the filters are timed, each on its own.
        """
        held = {(o["host"], o["path"], o["profile"]): o["access_key_id"] for o in minted}
        seed_reqs = [role_request(p, planted_key_id="") for p in self.everything]
        reads, begin_reqs = collections.defaultdict(list), collections.defaultdict(list)
        for placement in self.everything:
            host, path, profile = placement
            reads[host].append({"path": path, "access_key_id": held[placement],
                                "seed_placement": {"profile": profile, "reminder": SEED_TEMPLATE}})
            begin_reqs[host].append(role_request(placement, planted_key_id=held[placement]))
        # As the roles run them: once for the play, the bulk read grouped by host and the batches' outcomes grouped by host
        # (timed each, by its own name); then each host's filters on its own entry only.
        hosts_begin_reqs = [request for host in self.hosts for request in begin_reqs[host]]
        once = {
            "group_by_host": lambda: (estate_filters.group_by_host(known["canaries"], self.hosts),
                                      estate_filters.group_by_host(listed["placements"], self.hosts)),
            "seed_outcomes_by_host": lambda: placement_filters.seed_outcomes_by_host(minted, seed_reqs, self.hosts),
            "rotate_outcomes_by_host": lambda: placement_filters.rotate_outcomes_by_host(minted, hosts_begin_reqs, self.hosts),
        }
        spent, grouped = collections.Counter(), {}
        started = time.perf_counter()
        for name, function in once.items():
            cpu = time.process_time()
            grouped[name] = function()
            spent[name] += time.process_time() - cpu
        known_by_host, listed_by_host = grouped["group_by_host"]
        rotated = [outcome for host in self.hosts for outcome in grouped["rotate_outcomes_by_host"][host]]
        cpu = time.process_time()
        tables.rotate_rows(rotated, {"outcomes": minted})
        spent["rotate_rows"] += time.process_time() - cpu
        cpu = time.process_time()
        tables.rotate_errors_by_host(grouped["rotate_outcomes_by_host"], {}, {"outcomes": minted})
        spent["rotate_errors_by_host"] += time.process_time() - cpu
        filters = {
            "seed_requests": lambda host: placement_filters.seed_requests(reads[host], known_by_host[host], host, SEED_TEMPLATE, "bench"),
            "seed_plants": lambda host: placement_filters.seed_plants(grouped["seed_outcomes_by_host"][host]),
            "due_placements": lambda host: estate_filters.due_placements(listed_by_host[host], host, 0),
        }
        for host in self.hosts:
            for name, function in filters.items():
                cpu = time.process_time()
                answer = function(host)
                spent[name] += time.process_time() - cpu
                if name == "due_placements" and len(answer) != 2:
                    sys.exit(f"due_placements gave {len(answer)} placements for {host}, not 2")
        elapsed = time.perf_counter() - started
        print("    per-host filters, CPU ms per placement: " + ", ".join(
            f"{name} {seconds * 1000 / len(self.everything):.3f}" for name, seconds in spent.items()))
        run = type("Run", (), {"elapsed": elapsed, "cpu": sum(spent.values()), "max_rss_mb": 0.0})
        return run, None

    def per_host_play(self, pick):
        """PER_HOST_PLAY on an inventory of the N/2 hosts (local connections: nothing is contacted)."""
        with tempfile.TemporaryDirectory() as tree:
            inventory, play = pathlib.Path(tree, "inventory.ini"), pathlib.Path(tree, "play.yml")
            inventory.write_text("[web]\n" + "\n".join(self.hosts) + "\n")
            play.write_text(PER_HOST_PLAY.format(pick=pick))
            argv = [str(pathlib.Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(play)]
            run = run_process(argv, self.env)
        if run.returncode != 0:
            sys.exit(f"the per-host play failed:\n{run.stdout.decode(errors='replace')[-3000:]}")
        return run, None

    def run(self, report_last_used, per_host_play=False):
        print(f"\n== {len(self.everything)} placements on {len(self.hosts)} hosts, concurrency {self.concurrency}", flush=True)
        minted = self.measure("mint", lambda: self.batch(
            "ensure", [role_request(p, planted_key_id="") for p in self.everything], user_quota=len(self.everything) + 100))
        if sum(1 for outcome in minted if outcome.get("minted")) != len(self.everything):
            sys.exit("mint: not every placement got a key")
        known = self.measure("info report", lambda: self.info("credential_report"))
        listed = self.measure("info keys", lambda: self.info("list_access_keys"))
        for label, result in (("credential_report", known), ("list_access_keys", listed)):
            listed_ids = {key["access_key_id"] for canary in result["canaries"] for key in canary["keys"]}
            if listed_ids != {outcome["access_key_id"] for outcome in minted}:
                sys.exit(f"canary_key_info ({label}) does not list every minted key with its id")
        self.measure("per-host", lambda: self.per_host_filters(known, listed, minted))
        if per_host_play:
            self.measure("pick play", lambda: self.per_host_play(FILTER_PICK))
            self.measure("pick base", lambda: self.per_host_play(BASELINE_PICK))
        rows = {(c["mapping"]["host"], c["mapping"]["path"], c["mapping"]["profile"]): c for c in listed["canaries"]}
        begin = self.measure("begin", lambda: self.batch("begin", [
            role_request(p, planted_key_id=rows[p]["keys"][0]["access_key_id"], user_name=rows[p]["user_name"],
                         inline_policies=rows[p]["inline_policies"]) for p in self.everything], max_age_days=0))
        if sum(1 for outcome in begin if outcome.get("rotation") == "started") != len(self.everything):
            sys.exit("begin: not every placement started its rotation")
        # The host took the new key: the finish keeps it and deletes the one it rotated from.
        finish = self.measure("finish", lambda: self.batch("finish", [
            role_request((o["host"], o["path"], o["profile"]), planted_key_id=o["access_key_id"], rotated_key_id=o["rotated_key_id"])
            for o in begin]))
        if sum(1 for outcome in finish if outcome.get("rotation") == "completed") != len(self.everything):
            sys.exit("finish: not every rotation completed")
        # Last: the slowest step on moto (its O(N) GetAccessKeyLastUsed), so that the others are measured first.
        self.measure("report", lambda: self.report(report_last_used))
        return self.steps


def growth(results):
    """Per-placement figures at each size, and their ratio from the smallest size to the largest."""
    sizes = sorted(results)
    print(f"\n== per placement ({', '.join(f'{size:,}' for size in sizes)} placements) and growth {sizes[0]:,} -> {sizes[-1]:,} "
          "(flat = 1.0)")
    print(f"{'step':<12} {'wall ms/pl':>24} {'process CPU ms/pl':>24} {'moto CPU ms/pl':>24} {'IAM calls/pl':>24}  growth wall/cpu/moto/calls")
    names = [step.name for step in results[sizes[0]]]
    for index, name in enumerate(names):
        steps = [results[size][index] for size in sizes]
        cells = []
        for field, scale in (("elapsed", 1000), ("cpu", 1000), ("moto_cpu", 1000), ("calls", 1)):
            cells.append(" ".join(f"{step.per(field) * scale:7.2f}" for step in steps))
        ratios = "/".join(f"{steps[-1].per(field) / steps[0].per(field):.2f}" if steps[0].per(field) else "-"
                          for field in ("elapsed", "cpu", "moto_cpu", "calls"))
        print(f"{name:<12} {cells[0]:>24} {cells[1]:>24} {cells[2]:>24} {cells[3]:>24}  {ratios}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,2000,10000", help="placements per estate, comma-separated (even numbers)")
    parser.add_argument("--concurrency", type=int, default=4, help="canary_key_batch's and canary_key_info's concurrency (their default: 4)")
    parser.add_argument("--no-report-last-used", action="store_true",
                        help="report without last use (the role's report_last_used=false): no GetAccessKeyLastUsed per key")
    parser.add_argument("--per-host-play", action="store_true",
                        help="also run the rotate role's per-host pick of its rows through ansible-playbook, on every host "
                             "(local connections), and the same play without the filter")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    results = {}
    started = time.perf_counter()
    with LocalAWS() as aws:
        for size in sizes:
            aws.reset()
            results[size] = Bench(aws, size, args.concurrency).run(not args.no_report_last_used, args.per_host_play)
    growth(results)
    print(f"\nwhole benchmark: {time.perf_counter() - started:.0f} s; load average now {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
