# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""canarykeys.aws.estate_lease through real ansible-playbook runs against the local AWS.

Each run is its own ansible-playbook process, as two operators' runs are: the action plugin names
that process, so what is tested is what a second run, a killed run and a forced break really see.
IAM calls are counted at the wire by the local AWS proxy.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.canarykeys.aws.plugins.module_utils import _lease

REPO = pathlib.Path(__file__).resolve().parents[4]
PLAYBOOK_BIN = pathlib.Path(sys.executable).parent / "ansible-playbook"

HOLD = """
- hosts: localhost
  gather_facts: false
  tasks:
    - canarykeys.aws.estate_lease: {play: holder}
    - ansible.builtin.wait_for: {path: "{{ release_file }}", timeout: 120}
    - canarykeys.aws.estate_lease: {state: absent}
"""

TAKE = """
- hosts: localhost
  gather_facts: false
  tasks:
    - canarykeys.aws.estate_lease: {wait: "{{ wait | int }}", state: "{{ state | default('present') }}", force: "{{ force | default(false) }}"}
      register: lease
    - ansible.builtin.copy: {content: "{{ lease | to_json }}", dest: "{{ result_file }}", mode: "0600"}
"""


@pytest.fixture
def play(local_aws, tmp_path):
    local_aws.reset()
    env = dict(os.environ, **local_aws.operator_env(), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    env.pop("AWS_PROFILE", None)

    def start(text, **extra):
        book = tmp_path / f"play-{time.monotonic_ns()}.yml"
        book.write_text(text)
        extra = dict(extra, ansible_python_interpreter=sys.executable, result_file=str(tmp_path / "result.json"))
        return subprocess.Popen([str(PLAYBOOK_BIN), "-c", "local", "-i", "localhost,", str(book), "-e", json.dumps(extra)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def run(text, **extra):
        process = start(text, **extra)
        output = process.communicate(timeout=300)[0]
        result = tmp_path / "result.json"
        outcome = json.loads(result.read_text()) if result.exists() else None
        if result.exists():
            result.unlink()
        return process.returncode, output, outcome

    def hold():
        release = tmp_path / "release"
        holder = start(HOLD, release_file=str(release))
        deadline = time.monotonic() + 60
        while not _lease_tags(local_aws):
            assert holder.poll() is None and time.monotonic() < deadline, "the holder never took the lease"
            time.sleep(0.3)
        return holder, release

    return type("Play", (), {"run": staticmethod(run), "hold": staticmethod(hold)})


def _lease_tags(local_aws):
    iam = local_aws.client("iam")
    try:
        policy = iam.get_policy(PolicyArn="arn:aws:iam::123456789012:policy/estate-change-lock")["Policy"]
    except iam.exceptions.NoSuchEntityException:
        return {}
    return {tag["Key"]: tag["Value"] for tag in policy.get("Tags", [])}


def test_a_second_run_stops_before_any_write_and_names_the_holder(play, local_aws):
    holder, release = play.hold()
    try:
        writes = local_aws.count(service="iam", writes_only=True)
        rc, output, _result = play.run(TAKE, wait=0)
        assert rc != 0
        assert "Another run, run " in output and "play holder" in output and "nothing was changed" in output
        assert local_aws.count(service="iam", writes_only=True) == writes
    finally:
        release.touch()
        holder.wait(timeout=120)
    assert holder.returncode == 0
    assert not _lease_tags(local_aws), "the holder released its lease at its end"


def test_a_waiting_run_takes_the_lease_once_released(play, local_aws):
    holder, release = play.hold()
    subprocess.Popen(["sh", "-c", f"sleep 12; touch {release}"])
    rc, output, result = play.run(TAKE, wait=90)
    holder.wait(timeout=120)
    assert rc == 0, output
    assert result["held_by_us"] and result["waited"] >= 1
    assert _lease_tags(local_aws)["lease:run"] == result["lease"]["run_id"]


def test_a_killed_runs_lease_is_taken_over_by_the_next_run_on_this_controller(play, local_aws):
    holder, _release = play.hold()
    killed = _lease_tags(local_aws)["lease:run"]
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    rc, output, result = play.run(TAKE, wait=0)
    assert rc == 0, output
    assert result["taken_over"]["run_id"] == killed
    assert f"Took over the estate lease of run {killed}" in output
    assert _lease_tags(local_aws)["lease:run"] == result["lease"]["run_id"] != killed


def test_another_controllers_live_lease_holds_until_forced(play, local_aws):
    iam = local_aws.client("iam")
    iam.create_policy(PolicyName="estate-change-lock", PolicyDocument=_lease.POLICY_DOCUMENT,
                      Tags=[{"Key": k, "Value": v} for k, v in {
                          "lease:run": "elsewhere0001", "lease:controller": "another-bastion", "lease:pid": "1",
                          "lease:pid-start": "x:1", "lease:started-at": "2026-01-01T00:00:00Z",
                          "lease:expires-at": "2099-01-01T00:00:00Z"}.items()])
    rc, output, _result = play.run(TAKE, wait=0)
    assert rc != 0 and "another-bastion" in output
    rc, output, result = play.run(TAKE, wait=0, state="absent")
    assert rc == 0 and not result["changed"] and "not by this run: left as it is" in output
    assert _lease_tags(local_aws)["lease:run"] == "elsewhere0001"
    rc, output, result = play.run(TAKE, wait=0, state="absent", force=True)
    assert rc == 0 and result["changed"] and result["taken_over"]["run_id"] == "elsewhere0001"
    assert not _lease_tags(local_aws)


def test_check_mode_takes_nothing(play, local_aws):
    writes = local_aws.count(service="iam", writes_only=True)
    rc, output, result = play.run(TAKE.replace("register: lease", "register: lease\n      check_mode: true"), wait=0)
    assert rc == 0, output
    assert result["changed"] and local_aws.count(service="iam", writes_only=True) == writes
    assert not _lease_tags(local_aws)


LIST_UNDER_LEASE = """
- hosts: localhost
  gather_facts: false
  tasks:
    - canarykeys.aws.canary_key: {host: "{{ item.0 }}", path: /root/.aws/credentials, profile_name: "{{ item.1 }}"}
      loop: [[web01, backup], [web01, deploy], [db01, backup]]
      no_log: true
    - canarykeys.aws.canary_key_info: {host: [web01], key_source: list_access_keys}
      register: info
    - canarykeys.aws.estate_lease: {list_hosts: [web01], play: listing}
      register: lease
    - ansible.builtin.copy: {content: "{{ {'info': info, 'lease': lease} | to_json }}", dest: "{{ result_file }}", mode: "0600"}
"""


def test_a_take_lists_the_canaries_of_its_hosts_under_the_lease_as_canary_key_info_does(play, local_aws):
    rc, output, result = play.run(LIST_UNDER_LEASE)
    assert rc == 0, output
    info, lease = result["info"], result["lease"]
    assert lease["held_by_us"] and _lease_tags(local_aws)["lease:run"] == lease["lease"]["run_id"]
    # The same rows as canary_key_info's (web01's two canaries, with their accounts), not db01's.
    assert [c["mapping"]["profile"] for c in lease["canaries"]] == ["backup", "deploy"]
    for key in ("canaries", "placements", "orphans", "summary", "key_source"):
        assert lease[key] == info[key], key
    assert lease["canaries"][0]["account_id"] == "123456789012"
    assert lease["iam_calls"] == {"GetAccountAuthorizationDetails": 1, "ListAccessKeys": 2}


def test_a_take_without_hosts_lists_nothing(play, local_aws):
    rc, output, result = play.run(TAKE, wait=0)
    assert rc == 0, output
    assert result["held_by_us"] and "canaries" not in result and "iam_calls" not in result
