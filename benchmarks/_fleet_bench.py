# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the fleet benchmarks (bench_seed.py, bench_rotate.py) share; not a benchmark itself.

An N-host SSH fleet (tests/tooling/fleet.py) with the local AWS (moto behind the counting proxy),
a timed ``ansible-playbook`` run, and IAM calls counted at the wire by action.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
import typing

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from tooling import fleet as fleet_tool  # noqa: E402  pylint: disable=wrong-import-position
from tools.local_aws.server import LocalAWS  # noqa: E402  pylint: disable=wrong-import-position

BASELINE = REPO / "benchmarks" / "baseline_copy.yml"
SEED = REPO / "playbooks" / "seed_canaries.yml"
ROTATE = REPO / "playbooks" / "rotate_canaries.yml"

# Read-only IAM actions; every other action counts as a write.
READ_ACTION = re.compile(r"(Get|List|Describe|Generate)")


class PlaybookRun(typing.NamedTuple):
    elapsed: float  # seconds, wall clock
    changed: int  # sum of changed= over the play recap
    output: str


def run(playbook, inventory, env, forks, *extra):
    """Run a playbook on the fleet (``extra``: more ansible-playbook arguments); exit with its output's tail if it fails."""
    argv = [str(pathlib.Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), "-f", str(forks),
            *extra, str(playbook)]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join([playbook.name, *extra])} failed:\n{proc.stdout[-4000:]}")
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", proc.stdout))
    return PlaybookRun(elapsed, changed, proc.stdout)


def wipe_aws_dirs(fleet):
    """Remove every ~/.aws of the fleet (from outside the hosts)."""
    for host in fleet.hosts.values():
        for user in (*host.users, "root"):
            path = fleet.outside_path(host.name, user, ".aws")
            subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


def iam_calls(aws, since):
    """IAM calls since the ``since``-th call of the proxy: (count, writes, Counter by action)."""
    calls = [c for c in aws.calls()[since:] if c["service"] == "iam"]
    by_action = collections.Counter(c["action"] for c in calls)
    writes = sum(n for action, n in by_action.items() if not READ_ACTION.match(action or ""))
    return len(calls), writes, by_action


def fleet_size(hosts):
    """(webservers, laptops, placements) of an N-host benchmark fleet: webservers hold 2 placements, laptops 1."""
    webservers = hosts // 2
    laptops = hosts - webservers
    return webservers, laptops, webservers * 2 + laptops


@contextlib.contextmanager
def fleet_with_local_aws(hosts, prefix):
    """Bring up the fleet and the local AWS; yield (fleet, inventory, aws, env for ansible-playbook).

    Exits with the reason when the fleet cannot run here (not root, no sshd).  Prints the fleet line.
    """
    reason = fleet_tool.unavailable_reason()
    if reason:
        sys.exit(reason)
    webservers, laptops, placements = fleet_size(hosts)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    fleet = fleet_tool.Fleet.create(workdir / "fleet", webservers=webservers, laptops=laptops, owner_pid=os.getpid())
    started = time.perf_counter()
    fleet.up()
    print(f"fleet: {hosts} hosts ({webservers} webservers, {laptops} laptops), {placements} placements, "
          f"up in {time.perf_counter() - started:.1f}s", flush=True)
    inventory = fleet.write_inventory(workdir / "inventory.yml")
    try:
        with LocalAWS() as aws:
            env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), AWS_ENDPOINT_URL=aws.endpoint_url,
                       AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                       AWS_SHARED_CREDENTIALS_FILE=str(workdir / "none"), AWS_CONFIG_FILE=str(workdir / "none"))
            env.pop("AWS_PROFILE", None)
            yield fleet, inventory, aws, env
    finally:
        fleet.down()


def load_average():
    """The 1-minute load average now (a string, as /proc/loadavg gives it): said next to every figure."""
    with open("/proc/loadavg", encoding="ascii") as handle:
        return handle.read().split()[0]


def ratios_to_neighbours(sequence, name):
    """Each run of ``name`` in ``sequence`` [(name, seconds)] over the mean of the baselines just before and after it.

    The benchmarks interleave baseline and measured runs so that the machine's noise (2 shared cores) falls on
    both sides of each ratio; the figure they print is the median of these.
    """
    ratios = []
    for index, (label, seconds) in enumerate(sequence):
        if label != name:
            continue
        before = next((s for lab, s in reversed(sequence[:index]) if lab == "baseline"), None)
        after = next((s for lab, s in sequence[index + 1:] if lab == "baseline"), None)
        ratios.append(seconds / statistics.mean([s for s in (before, after) if s is not None]))
    return ratios


def profile_summary(output):
    """The task-time summary ansible.posix.profile_tasks prints at the end of a run."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if set(line.strip()) == {"="}]
    return "\n".join("    " + line for line in lines[starts[-1] + 1:] if line.strip()) if starts else "    (no profile_tasks summary)"
