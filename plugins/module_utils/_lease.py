# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The estate lease: which run may change the canary estate of an account, as pure decisions.

Two runs that change the same estate at once (two operators, a scheduled job and a manual run) can
each mint a key for one placement and each delete the other's "orphan": the host then holds a key
IAM no longer has.  So every changing run takes the lease first, and a second run waits or stops
before its first IAM write.  The lease is an IAM customer managed policy that nothing attaches:
CreatePolicy either creates it or fails with EntityAlreadyExists, which makes taking it atomic, and
its tags say who holds it.  It lives in the canary account itself, so it needs no extra service.

A run that dies (SIGKILL, a lost controller) cannot release its lease.  Its holder record names the
controller, the process of the playbook and that process's start time: a run on the same controller
sees that the process is gone and takes the lease over at once; elsewhere, the lease expires.
Nothing here does I/O except ``process_alive`` and ``process_start`` (the local /proc).
"""

from __future__ import annotations

import datetime
import hashlib
import os

from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping

TAG_RUN = "lease:run"
TAG_CONTROLLER = "lease:controller"
TAG_PID = "lease:pid"
TAG_PID_START = "lease:pid-start"
TAG_STARTED_AT = "lease:started-at"
TAG_EXPIRES_AT = "lease:expires-at"
TAG_PLAY = "lease:play"

# Allows only what every AWS key may do anyway: attached by mistake, it grants nothing.
POLICY_DOCUMENT = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}'
DESCRIPTION = "Held while an automation run changes the users of this account; never attached."

HELD_BY_US = "ours"
FREE = "free"
STALE_EXPIRED = "expired"
STALE_PROCESS_GONE = "process_gone"
HELD = "held"


def process_start(pid: int) -> str:
    """``<boot id>:<start ticks>`` of a local process, "" when it does not exist: a pid is reused, this pair is not."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as stat:
            # Field 22 is the start time; the command name (field 2) may hold spaces, so split after it.
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            return f"{boot.read().strip()}:{fields[19]}"
    except (OSError, IndexError, ValueError):
        return ""


def process_alive(pid, start: str) -> bool:
    """Whether the process recorded as ``pid`` started at ``start`` still runs on this machine."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    current = process_start(pid)
    if not current:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # No /proc (not Linux): the pid exists, and without a start time it is taken as the same process.
        return not start
    return current == start


def run_id(controller: str, pid, pid_start: str) -> str:
    """The id of one ansible-playbook process: every task of it shares the lease."""
    digest = hashlib.sha256(f"{controller}\0{pid}\0{pid_start}".encode()).hexdigest()
    return digest[:12]


def holder_tags(holder: dict) -> dict:
    return {
        TAG_RUN: holder["run_id"],
        TAG_CONTROLLER: holder["controller"],
        TAG_PID: str(holder["pid"]),
        TAG_PID_START: holder["pid_start"],
        TAG_STARTED_AT: holder["started_at"],
        TAG_EXPIRES_AT: holder["expires_at"],
        TAG_PLAY: holder.get("play", ""),
    }


def holder_from_tags(tags: dict) -> dict:
    return {
        "run_id": tags.get(TAG_RUN, ""),
        "controller": tags.get(TAG_CONTROLLER, ""),
        "pid": tags.get(TAG_PID, ""),
        "pid_start": tags.get(TAG_PID_START, ""),
        "started_at": tags.get(TAG_STARTED_AT, ""),
        "expires_at": tags.get(TAG_EXPIRES_AT, ""),
        "play": tags.get(TAG_PLAY, ""),
    }


def standing(current: dict | None, ours: dict, now: datetime.datetime, alive=process_alive) -> str:
    """What the lease ``current`` (a holder record, None when nobody holds it) means for the run ``ours``.

    ``alive(pid, start)`` tells whether a process of this controller still runs; it is asked only
    about processes of the controller that ``ours`` runs on.
    """
    if current is None:
        return FREE
    if current["run_id"] == ours["run_id"]:
        return HELD_BY_US
    # Timestamps are the mapping record's (canary_mapping.key_timestamp); an unreadable one counts as expired.
    expires = canary_mapping.utc(current["expires_at"])
    if expires is None or expires <= now:
        return STALE_EXPIRED
    if current["controller"] == ours["controller"] and not alive(current["pid"], current["pid_start"]):
        return STALE_PROCESS_GONE
    return HELD


def describe(holder: dict) -> str:
    """One line that names a lease's holder, for messages and warnings."""
    play = f", play {holder['play']}" if holder.get("play") else ""
    return (f"run {holder['run_id']} (controller {holder['controller']}, pid {holder['pid']}{play}, "
            f"started at {holder['started_at']})")


def held_message(holder: dict, lease_name: str) -> str:
    return (f"Another run, {describe(holder)}, holds the canary estate lease {lease_name} until {holder['expires_at']}; "
            "nothing was changed. Re-run when it ends, or set canary_lease_wait to wait for it. If that run is dead, "
            "break its lease: ansible localhost -m canarykeys.aws.estate_lease -a 'state=absent force=true'")


def stale_warning(holder: dict, reason: str) -> str:
    why = "its expiry passed" if reason == STALE_EXPIRED else "its ansible-playbook process is gone from this controller"
    return f"Took over the estate lease of {describe(holder)}: {why}."
