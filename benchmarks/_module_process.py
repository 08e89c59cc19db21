# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A process's wall time, CPU time and peak memory, for the controller benchmark; not a benchmark itself.

``run_module`` runs one of the collection's modules as AnsiballZ does on the controller: a fresh
interpreter that imports the module and runs its ``main()`` as ``__main__`` on the JSON arguments
(ansible-core's own debugging entry point reads them from a file), so what is measured is the
module's process (imports, argument validation, IAM calls, result) without ansible-playbook's
templating around it.  ``run_process`` does the same for any command (ansible-playbook).  The CPU
time and peak RSS are those ``wait4`` reports for the child and the children it waited for.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import typing

REPO = pathlib.Path(__file__).resolve().parents[1]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ProcessRun(typing.NamedTuple):
    elapsed: float  # seconds, wall clock
    cpu: float  # seconds of user + system CPU, the process and its waited-for children
    max_rss_mb: float  # peak resident memory of the process (or its largest waited-for child), MiB
    returncode: int
    stdout: bytes
    stderr: bytes


def run_process(argv, env, cwd=REPO) -> ProcessRun:
    """Run ``argv`` to its end; its output is kept in memory only (a module's may hold secrets)."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read()
        proc.stdout.close()
        # wait4, not wait: it also gives the child's rusage (CPU and peak RSS).
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return ProcessRun(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode, out, err.read())


def run_module(name, args, env) -> tuple[ProcessRun, dict]:
    """Run module ``canarykeys.aws.<name>`` with ``args``; exit with its message if it fails.  Returns (run, result)."""
    env = dict(env, PYTHONPATH=os.pathsep.join(filter(None, (str(REPO / ".collections"), env.get("PYTHONPATH")))))
    with tempfile.TemporaryDirectory() as tree:
        # Arguments only (key ids, never a secret); the result comes back on stdout.
        args_file = pathlib.Path(tree, "args.json")
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        run = run_process([sys.executable, "-m", f"ansible_collections.canarykeys.aws.plugins.modules.{name}", str(args_file)], env)
    try:
        result = json.loads(run.stdout)
    except ValueError:
        result = {"failed": True, "msg": run.stderr.decode(errors="replace")[-2000:]}
    if run.returncode != 0 or result.get("failed"):
        sys.exit(f"{name} failed: {result.get('msg')}")
    return run, result


def process_cpu(pid) -> float:
    """Seconds of user + system CPU that process ``pid`` used so far (itself and its reaped children)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14-17 of proc(5) (utime, stime, cutime, cstime), counted after the command's closing parenthesis.
    return sum(int(value) for value in fields[11:15]) / _CLOCK_TICKS
