# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start and stop the embedded local AWS for every Molecule scenario (their create.yml / destroy.yml,
through extensions/molecule/seed/tasks/local_aws.yml).

    python local_aws.py start STATE_FILE    starts tools.local_aws.server on a free port, detached,
                                            and writes {"pid", "endpoint_url", "log"} to STATE_FILE;
                                            a server a killed run left there is stopped first
    python local_aws.py stop STATE_FILE     stops the server recorded there (its process group only,
                                            and only while that pid is still a local AWS server)

The server outlives the create playbook, so it runs in its own session; stop signals that session,
which the server's own shutdown extends to the moto process it started.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[3]


def start(state_file: pathlib.Path) -> dict:
    # `molecule create` after a run that died before destroy: its server would hold a port forever.
    stop(state_file)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    log = state_file.with_suffix(".log")
    with open(log, "wb") as stream:
        proc = subprocess.Popen([sys.executable, "-m", "tools.local_aws.server"], cwd=REPO, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=stream, start_new_session=True)
    # The server prints its endpoint on one line once it serves, or exits (its own start timeout).
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("http://"):
        stop_pid(proc.pid)
        raise SystemExit(f"the local AWS did not start; see {log}")
    proc.stdout.close()
    state = {"pid": proc.pid, "endpoint_url": line, "log": str(log)}
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
        return b"tools.local_aws.server" in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


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
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        sys.stderr.write(__doc__)
        return 2
    action, state_file = argv[1], pathlib.Path(argv[2])
    result = start(state_file) if action == "start" else stop(state_file)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
