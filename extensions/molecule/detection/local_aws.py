# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start and stop the embedded local AWS for every Molecule scenario (their create.yml / destroy.yml,
through extensions/molecule/seed/tasks/local_aws.yml).

    python local_aws.py start STATE_FILE    starts the local AWS (``serve``, below) on a free port,
                                            detached, and writes {"pid", "endpoint_url", "log", "calls"}
                                            to STATE_FILE; a server a killed run left there is stopped first
    python local_aws.py stop STATE_FILE     stops the server recorded there (its process group only,
                                            and only while that pid is still a local AWS server)
    python local_aws.py writes STATE_FILE ANSIBLE_LOG PLAY N
                                            prints (JSON) the AWS write calls the server received since
                                            the N-th start of the play PLAY in ANSIBLE_LOG (ansible's
                                            log_path, whose lines carry their time) after the server started
    python local_aws.py serve CALLS_FILE    (what start runs) tools.local_aws.server's LocalAWS in this
                                            process until SIGTERM, every call it counts appended to
                                            CALLS_FILE as one JSON line

The server outlives the create playbook, so it runs in its own session; stop signals that session,
which the server's own shutdown extends to the moto process it started. The call log is how a
scenario proves at the wire what the pytest suite proves with LocalAWS.calls(): the detection
scenario's re-runs (idempotence, check) and its verify send AWS reads only.
"""

from __future__ import annotations

import json
import os
import pathlib
import datetime
import signal
import subprocess
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[3]


def start(state_file: pathlib.Path) -> dict:
    # `molecule create` after a run that died before destroy: its server would hold a port forever.
    stop(state_file)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    log = state_file.with_suffix(".log")
    calls = state_file.with_suffix(".calls.jsonl")
    calls.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    with open(log, "wb") as stream:
        proc = subprocess.Popen([sys.executable, __file__, "serve", str(calls)], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=stream, start_new_session=True)
    # The server prints its endpoint on one line once it serves, or exits (its own start timeout).
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("http://"):
        stop_pid(proc.pid)
        raise SystemExit(f"the local AWS did not start; see {log}")
    proc.stdout.close()
    state = {"pid": proc.pid, "endpoint_url": line, "log": str(log), "calls": str(calls), "started": time.time()}
    state_file.write_text(json.dumps(state), encoding="utf-8")
    return state


def stop_pid(pid: int) -> None:
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def is_local_aws(pid: int) -> bool:
    try:
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"tools.local_aws.server" in cmdline or (pathlib.Path(__file__).name.encode() + b"\0serve\0") in cmdline


def serve(calls_file: pathlib.Path) -> int:
    # Imported here: start, stop and writes run with any Python; serve needs the repository on the path (start sets it).
    from tools.local_aws.server import LocalAWS  # pylint: disable=import-outside-toplevel

    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_args: stopping.set())
    with LocalAWS() as aws, open(calls_file, "a", encoding="utf-8") as log:
        sys.stdout.write(aws.endpoint_url + "\n")
        sys.stdout.flush()
        written = 0
        # A reader (``writes``) runs steps after the calls it looks at, so a fifth of a second behind is enough.
        while True:
            stop_now = stopping.wait(0.2)
            calls = aws.calls()
            for call in calls[written:]:
                log.write(json.dumps(call) + "\n")
            log.flush()
            written = len(calls)
            if stop_now:
                return 0


def play_starts(ansible_log: pathlib.Path, play: str) -> list:
    """Epoch times of each "PLAY [play]" line of ansible's log_path (lines begin "YYYY-mm-dd HH:MM:SS,mmm ...")."""
    starts = []
    for line in ansible_log.read_text(encoding="utf-8", errors="replace").splitlines():
        if f"PLAY [{play}] " in line:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            starts.append(stamp.timestamp())
    return starts


def writes(state_file: pathlib.Path, ansible_log: pathlib.Path, play: str, occurrence: int) -> dict:
    from tools.local_aws.operations import is_read_only  # pylint: disable=import-outside-toplevel

    state = json.loads(state_file.read_text(encoding="utf-8"))
    # The log outlives a scenario's runs (it only grows): count the plays of this server's lifetime only.
    starts = [start for start in play_starts(ansible_log, play) if start >= state["started"]]
    if len(starts) < occurrence:
        raise SystemExit(f"{ansible_log} has {len(starts)} start(s) of the play {play!r} since the local AWS started, not {occurrence}")
    since = starts[occurrence - 1]
    calls = [json.loads(line) for line in pathlib.Path(state["calls"]).read_text(encoding="utf-8").splitlines()]
    after = [call for call in calls if call["time"] >= since]
    return {"calls_since": len(after), "writes": [f"{c['service']}:{c['action']}" for c in after if not is_read_only(c["action"])]}


def stop(state_file: pathlib.Path) -> dict:
    if not state_file.exists():
        return {"stopped": False}
    state = json.loads(state_file.read_text(encoding="utf-8"))
    # After a crash or a reboot the pid may belong to someone else by now: signal only our server.
    if is_local_aws(int(state["pid"])):
        stop_pid(int(state["pid"]))
    state_file.unlink()
    return {"stopped": True, "pid": state["pid"]}


def main(argv) -> int:
    if argv[1:2] == ["serve"] and len(argv) == 3:
        return serve(pathlib.Path(argv[2]))
    if argv[1:2] == ["writes"] and len(argv) == 6:
        result = writes(pathlib.Path(argv[2]), pathlib.Path(argv[3]), argv[4], int(argv[5]))
    elif len(argv) == 3 and argv[1] in ("start", "stop"):
        action, state_file = argv[1], pathlib.Path(argv[2])
        result = start(state_file) if action == "start" else stop(state_file)
    else:
        sys.stderr.write(__doc__)
        return 2
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
