# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Overlapping and killed runs on the SSH fleet against the local AWS (docs/overlap.md).

What a security team needs from two jobs that overlap, or a run killed half way: afterwards, and after
at most one plain re-run, every placement's file holds a key that is its IAM user's only active key
(a working canary), no key exists that no file holds, and no profile the seed did not plant moved.

Runs are real ansible-playbook processes, each in its own session.  A kill is a test-only callback
plugin (written into the test's tmp dir) that SIGKILLs the whole ansible-playbook process group when a
named task starts, or when the first result of a named task arrives: the product has no hook for it.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from test_lifecycle import ROTATE, placement_users, said
from test_seed_playbook import PLAYBOOK as SEED
from test_seed_playbook import assert_no_minted_secret_in, fleet_profiles, placements, preexisting_secrets, recap
from tooling.fleet import home_inside

REPO = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin" if (REPO / ".venv" / "bin").is_dir() else pathlib.Path(sys.executable).parent

KILL_CALLBACK = '''
from __future__ import annotations

import os
import signal
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: kill_run
type: aggregate
short_description: test only, SIGKILLs the whole run at a named task
description: [test only]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kill_run"
    CALLBACK_NEEDS_ENABLED = True

    def _kill(self):
        os.killpg(os.getpgrp(), signal.SIGKILL)

    def v2_playbook_on_task_start(self, task, is_conditional):
        if os.environ.get("KILL_AT_TASK_START") and task.get_name().endswith(os.environ["KILL_AT_TASK_START"]):
            self._kill()
        # Hold the run at a named task until the test lets it go: another run can then change the estate meanwhile.
        if os.environ.get("PAUSE_AT_TASK_START") and task.get_name().endswith(os.environ["PAUSE_AT_TASK_START"]):
            pause = os.environ["PAUSE_FILE"]
            open(pause + ".paused", "w").close()
            while not os.path.exists(pause + ".go"):
                time.sleep(0.2)

    # The first host's write (one module run writes all of a host's profiles), or the first item of a loop.
    def v2_runner_on_ok(self, result):
        if os.environ.get("KILL_AFTER_FIRST_RESULT") and result._task.get_name().endswith(os.environ["KILL_AFTER_FIRST_RESULT"]):
            self._kill()

    v2_runner_item_on_ok = v2_runner_on_ok
'''


@pytest.fixture
def start_playbook(aws_env, tmp_path):  # pylint: disable=unused-argument
    """start(playbook, inventory, extra_vars, env) -> Popen: ansible-playbook in a session of its own."""
    plugins = tmp_path / "callback_plugins"
    plugins.mkdir()
    (plugins / "kill_run.py").write_text(KILL_CALLBACK, encoding="utf-8")

    def start(playbook, inventory, extra_vars=None, env=None):
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(REPO / playbook)]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        run_env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", PYTHONUNBUFFERED="1",
                       ANSIBLE_CALLBACK_PLUGINS=str(plugins), ANSIBLE_CALLBACKS_ENABLED="kill_run",
                       PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {}))
        run_env.pop("ANSIBLE_FORCE_COLOR", None)
        return subprocess.Popen(argv, cwd=REPO, env=run_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)

    return start


def finish(process, timeout=900):
    output = process.communicate(timeout=timeout)[0]
    return process.returncode, output


def profile_keys(fleet):
    """{(host, path, profile): access key id} of every profile in the fleet's credentials files."""
    return {(host, f"{home_inside(user)}/.aws/credentials", profile): section.get("aws_access_key_id")
            for host, user, profile, section in fleet_profiles(fleet)}


def assert_converged(fleet, aws, before_real):
    """Every placement holds its user's only key, active; no key no file holds; real profiles as they were."""
    iam = aws.client("iam")
    held = profile_keys(fleet)
    users = placement_users(iam)
    for host, user, profile in placements(fleet):
        place = (host, f"{home_inside(user)}/.aws/credentials", profile)
        assert place in users, f"no canary user for {place}"
        name, _tags, keys = users[place]
        assert keys == [held.get(place)], f"{place}: the file holds {held.get(place)}, IAM user {name} has {keys}"
        statuses = [key["Status"] for key in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]]
        assert statuses == ["Active"], f"{place}: {statuses}"
    assert len(users) == len(list(placements(fleet))), f"canary users of no placement: {sorted(users)}"
    for place, key_id in before_real.items():
        assert held.get(place) == key_id, f"a profile the seed did not plant moved: {place}"


def real_profiles(fleet):
    ours = {(host, f"{home_inside(user)}/.aws/credentials", profile) for host, user, profile in placements(fleet)}
    return {place: key for place, key in profile_keys(fleet).items() if place not in ours}


def test_two_seeds_at_once_take_turns_and_leave_working_canaries(clean_fleet, aws, start_playbook, run_playbook):
    fleet = clean_fleet
    before_real = real_profiles(fleet)
    first = start_playbook(SEED, fleet.inventory)
    second = start_playbook(SEED, fleet.inventory)
    (rc1, out1), (rc2, out2) = finish(first), finish(second)
    assert rc1 == 0, out1[-3000:]
    assert rc2 == 0, out2[-3000:]
    assert_converged(fleet, aws, before_real)
    for output in (out1, out2):
        assert_no_minted_secret_in(output, fleet, preexisting_secrets(fleet))
    # A plain re-run finds nothing to do.
    rc, output = run_playbook(SEED, fleet.inventory)
    assert rc == 0, output[-3000:]
    assert all(stats["changed"] == 0 for stats in recap(output).values()), recap(output)


READ_TASK = "Read the access key id planted in each profile"


def task_runs(output, name):
    """The output of each run of the task called ``name`` (default callback), in order."""
    return [part for part in output.split("TASK [")[1:] if part.split("]", 1)[0].endswith(name)]


def test_a_seed_that_another_seed_overtakes_between_its_read_and_its_lease_reads_again_and_mints_nothing(
        clean_fleet, aws, start_playbook, run_playbook, tmp_path):
    """The window a run without the second read would get wrong: the other run plants after this one read the hosts."""
    fleet = clean_fleet
    before_real = real_profiles(fleet)
    pause = tmp_path / "pause"
    slow = start_playbook(SEED, fleet.inventory, env={"PAUSE_AT_TASK_START": "seed : Take the estate lease",
                                                      "PAUSE_FILE": str(pause)})
    deadline = time.monotonic() + 600
    while not pathlib.Path(f"{pause}.paused").exists():
        assert slow.poll() is None and time.monotonic() < deadline, "the first seed never reached its lease"
        time.sleep(0.5)
    rc, output = run_playbook(SEED, fleet.inventory)
    assert rc == 0, output[-3000:]
    marker = len(aws.calls())
    pathlib.Path(f"{pause}.go").touch()
    rc, slow_output = finish(slow)
    assert rc == 0, slow_output[-3000:]
    # It found the estate changed under its lease, read the hosts again, and found every placement planted.
    writes = [call["action"] for call in aws.calls()[marker:] if call["service"] == "iam" and call["action"]
              and not call["action"].startswith(("Get", "List", "Generate"))]
    assert sorted(writes) == ["CreatePolicy", "DeletePolicy"], writes
    assert "ok: [" in task_runs(slow_output, READ_TASK)[1], "the overtaken seed did not read the hosts again"
    # The run that overtook it, a first seed on an estate nobody else touched, did not need to.
    assert "ok: [" not in task_runs(output, READ_TASK)[1], "an undisturbed first seed read the hosts twice"
    assert_converged(fleet, aws, before_real)
    assert_no_minted_secret_in(slow_output, fleet, preexisting_secrets(fleet))


def test_a_run_that_meets_a_live_lease_stops_in_one_line_and_changes_nothing(clean_fleet, aws, run_playbook):
    fleet = clean_fleet
    iam = aws.client("iam")
    iam.create_policy(PolicyName="estate-change-lock", Path="/",
                      PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}',
                      Tags=[{"Key": key, "Value": value} for key, value in {
                          "lease:run": "othercontrol", "lease:controller": "ops-bastion-2", "lease:pid": "4242",
                          "lease:pid-start": "boot:1", "lease:started-at": "2026-01-01T00:00:00Z",
                          "lease:expires-at": "2099-01-01T00:00:00Z", "lease:play": "Seed canary AWS keys"}.items()])
    marker = len(aws.calls())
    rc, output = run_playbook(SEED, fleet.inventory, {"canary_lease": {"wait": 0}})
    assert rc != 0
    assert said(output, "Another run, run othercontrol (controller ops-bastion-2, pid 4242, play Seed canary AWS keys")
    assert said(output, "nothing was changed")
    writes = [call for call in aws.calls()[marker:] if call["service"] == "iam" and call["action"] not in (None,)
              and not call["action"].startswith(("Get", "List", "Generate"))]
    assert writes == [], writes
    assert not placement_users(iam)
    # Breaking the stale lease by hand, as docs/overlap.md says, lets the next run seed.
    rc, output = run_playbook_module("state=absent force=true")
    assert rc == 0, output
    rc, output = run_playbook(SEED, fleet.inventory)
    assert rc == 0, output[-3000:]


def run_playbook_module(args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    result = subprocess.run([str(VENV_BIN / "ansible"), "localhost", "-c", "local", "-e",
                             json.dumps({"ansible_python_interpreter": str(VENV_BIN / "python")}),
                             "-m", "canarykeys.aws.estate_lease", "-a", args],
                            cwd=REPO, env=env, capture_output=True, text=True, check=False)
    return result.returncode, result.stdout + result.stderr


KILLS = {
    "seed after the mint, before the write": (SEED, {}, {"KILL_AT_TASK_START": "Write each minted key into its profile"}),
    "seed during the writes": (SEED, {}, {"KILL_AFTER_FIRST_RESULT": "Write each minted key into its profile"}),
    "rotate after the mint, before the write": (ROTATE, {"max_age_days": 0}, {"KILL_AT_TASK_START": "Write each new key into its profile"}),
    "rotate between begin and finish": (
        ROTATE, {"max_age_days": 0},
        {"KILL_AT_TASK_START": "Delete the key each profile does not hold, for every placement rotated in the batch"}),
}


@pytest.mark.parametrize("step", sorted(KILLS))
def test_a_run_killed_at_each_step_converges_on_the_next_plain_run(step, clean_fleet, aws, start_playbook, run_playbook):
    fleet = clean_fleet
    before_real = real_profiles(fleet)
    playbook, extra_vars, kill = KILLS[step]
    if playbook == ROTATE:
        rc, output = run_playbook(SEED, fleet.inventory)
        assert rc == 0, output[-3000:]
    rc, output = finish(start_playbook(playbook, fleet.inventory, extra_vars, env=kill))
    assert rc == -9, f"the run was not killed at {step}: {output[-2000:]}"
    rc, output = run_playbook(playbook, fleet.inventory, extra_vars if playbook == SEED else {"max_age_days": 9999})
    assert rc == 0, output[-3000:]
    # Killed during the writes, every write may have landed already: then the next seed has nothing to
    # do and takes no lease. Every other step leaves work, so the dead run's lease must be taken over.
    if step != "seed during the writes":
        assert said(output, "Took over the estate lease of run"), "the killed run's lease was not taken over"
    assert_converged(fleet, aws, before_real)
    assert_no_minted_secret_in(output, fleet, preexisting_secrets(fleet))
