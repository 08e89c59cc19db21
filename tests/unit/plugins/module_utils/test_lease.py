# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The estate lease's decisions (module_utils/_lease.py): who holds it, and when a holder is gone."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys

from ansible_collections.canarykeys.aws.plugins.module_utils import _lease

NOW = datetime.datetime(2026, 12, 3, 12, 0, 0, tzinfo=datetime.timezone.utc)


def holder(run_id="aaaaaaaaaaaa", controller="bastion", pid="100", expires="2026-12-03T13:00:00Z"):
    return {"run_id": run_id, "controller": controller, "pid": pid, "pid_start": "boot:1", "play": "Seed",
            "started_at": "2026-12-03T11:00:00Z", "expires_at": expires}


def never_alive(_pid, _start):
    return False


def always_alive(_pid, _start):
    return True


def test_free_when_nobody_holds_it():
    assert _lease.standing(None, holder(), NOW) == _lease.FREE


def test_ours_when_the_run_id_is_ours():
    assert _lease.standing(holder(), holder(pid="999"), NOW, never_alive) == _lease.HELD_BY_US


def test_held_by_a_live_run_of_this_controller():
    assert _lease.standing(holder(), holder(run_id="bbbbbbbbbbbb"), NOW, always_alive) == _lease.HELD


def test_a_dead_process_of_this_controller_frees_it_at_once():
    assert _lease.standing(holder(), holder(run_id="bbbbbbbbbbbb"), NOW, never_alive) == _lease.STALE_PROCESS_GONE


def test_another_controllers_process_is_never_checked_here():
    ours = holder(run_id="bbbbbbbbbbbb", controller="laptop")
    assert _lease.standing(holder(), ours, NOW, never_alive) == _lease.HELD


def test_expired_or_unreadable_expiry_is_stale():
    ours = holder(run_id="bbbbbbbbbbbb", controller="laptop")
    assert _lease.standing(holder(expires="2026-12-03T12:00:00Z"), ours, NOW) == _lease.STALE_EXPIRED
    assert _lease.standing(holder(expires="soon"), ours, NOW) == _lease.STALE_EXPIRED


def test_tags_round_trip():
    record = holder()
    assert _lease.holder_from_tags(_lease.holder_tags(record)) == record


def test_held_message_names_the_holder_and_the_way_out():
    message = _lease.held_message(holder(), "estate-change-lock")
    for part in ("aaaaaaaaaaaa", "bastion", "pid 100", "Seed", "2026-12-03T11:00:00Z", "2026-12-03T13:00:00Z",
                 "nothing was changed", "force=true"):
        assert part in message
    assert "\n" not in message


def test_this_process_is_alive_and_a_finished_one_is_not():
    me = os.getpid()
    assert _lease.process_alive(me, _lease.process_start(me))
    assert not _lease.process_alive(me, "another-boot:1")
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True)
    assert not _lease.process_alive(int(child.stdout), "")
    assert not _lease.process_alive("not-a-pid", "")


def test_run_id_is_stable_per_process_and_differs_between_processes():
    assert _lease.run_id("bastion", 1, "b:1") == _lease.run_id("bastion", 1, "b:1")
    assert _lease.run_id("bastion", 1, "b:1") != _lease.run_id("bastion", 1, "b:2")
