# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters between the roles and credentials_profiles (one module run per host), and the outcomes grouped once."""

from __future__ import annotations

import datetime
import json

from test_seed_filters import OUTCOMES, REQUESTS, SECRET  # pylint: disable=import-error

from ansible_collections.canarykeys.aws.plugins.filter import estate as estate_filters
from ansible_collections.canarykeys.aws.plugins.filter import host_profiles
from ansible_collections.canarykeys.aws.plugins.filter import placements as placement_filters
from ansible_collections.canarykeys.aws.plugins.filter import tables

PLACEMENTS = [{"user": "deploy", "profile": "prod", "region": "us-east-1"}, {"user": "root", "profile": "backup"}]


def _query_result(*outcomes):
    return {"changed": False, "outcomes": list(outcomes), "summary": {"profiles": len(outcomes)}}


def test_query_profiles_take_the_user_or_the_owner_of_the_recorded_file():
    assert host_profiles.query_profiles(PLACEMENTS) == [
        {"owner": "deploy", "profile": "prod", "state": "query"}, {"owner": "root", "profile": "backup", "state": "query"}]
    rows = [{"path": "/home/mira/.aws/credentials", "profile": "deploy"}, {"path": "/srv/app/credentials", "profile": "x"}]
    owners = [entry["owner"] for entry in host_profiles.query_profiles(rows, False, "admin")]
    assert owners == ["mira", "admin"]
    assert host_profiles.query_profiles(rows[1:], True, "admin")[0]["owner"] == "root"


def test_profile_reads_pair_each_outcome_with_its_placement_as_a_loop_would():
    result = _query_result({"access_key_id": "AKIA1", "path": "/home/deploy/.aws/credentials", "failed": False},
                           {"access_key_id": None, "path": "/root/.aws/credentials", "failed": False})
    reads = host_profiles.profile_reads(result, PLACEMENTS, "seed_placement")
    assert [r["seed_placement"]["profile"] for r in reads] == ["prod", "backup"]
    assert reads[0]["access_key_id"] == "AKIA1"
    # A run that never reached its host fails every placement; a skipped run read nothing.
    lost = host_profiles.profile_reads({"unreachable": True, "msg": "ssh: no route"}, PLACEMENTS, "p")
    assert [(r["failed"], r["unreachable"], r["msg"]) for r in lost] == [(True, True, "ssh: no route")] * 2
    assert host_profiles.profile_reads({"skipped": True}, PLACEMENTS, "p") == []


def test_read_problems_say_what_to_set_for_become_then_each_profile_then_the_controllers_own():
    sudo = host_profiles.read_problems({"failed": True, "msg": "Missing sudo password"}, host_profiles.query_profiles(PLACEMENTS), True,
                                       "deploy", "web01")
    assert sudo == ["The placements of root on web01 need become (sudo to root) as deploy, which failed (Missing sudo password): "
                    "give that user passwordless sudo, or set ansible_become_password (or run ansible-playbook with -K)."]
    assert host_profiles.read_problems({"failed": True, "msg": "boom"}, PLACEMENTS, False) == ["boom"]
    bad = _query_result({"failed": False, "path": "/a"}, {"failed": True, "msg": "/root/.aws/credentials: duplicate section"})
    assert host_profiles.read_problems(bad, PLACEMENTS) == ["/root/.aws/credentials: duplicate section"]
    own = _query_result({"failed": False, "path": "/home/deploy/.aws/credentials"}, {"failed": False, "path": "/root/.aws/credentials"})
    assert host_profiles.read_problems(own, PLACEMENTS) == []
    [refusal] = host_profiles.read_problems(own, PLACEMENTS, refused_path="/root/.aws/credentials", refused_profile="backup")
    assert refusal.startswith("Refusing to plant a canary into /root/.aws/credentials [backup]")
    assert host_profiles.read_problems(own, PLACEMENTS, refused_path="/root/.aws/credentials", refused_profile="prod") == []


def test_plant_profiles_take_each_secret_by_index_and_only_they_carry_one():
    plants = placement_filters.seed_plants(placement_filters.seed_outcomes(OUTCOMES, REQUESTS, "web01"))
    assert SECRET not in json.dumps(plants)
    [entry] = host_profiles.plant_profiles(plants, OUTCOMES, True)
    assert entry == {"owner": "deploy", "path": "/root/.aws/credentials", "profile": "backup", "access_key_id": "AKIAEXAMPLE000000001",
                     "secret_access_key": SECRET, "replaceable_key_ids": ["AKIAOLD0000000000001"], "backup": True, "state": "present",
                     "region": "eu-west-1"}
    rotated = [{"index": 2, "path": "/home/mira/.aws/credentials", "profile": "deploy", "access_key_id": "AKIANEW", "rotated_key_id": "AKIAOLD"}]
    [entry] = host_profiles.plant_profiles(rotated, OUTCOMES, False, "rotated_key_id")
    assert (entry["owner"], entry["replaceable_key_ids"]) == ("mira", ["AKIAOLD"])


def test_unplanted_are_the_refused_writes_or_all_of_a_lost_host():
    plants = [{"index": 0, "path": "/a", "profile": "p"}, {"index": 1, "path": "/b", "profile": "q"}]
    written = {"outcomes": [{"failed": False}, {"failed": True, "msg": "profile q holds another key"}]}
    assert host_profiles.unplanted(written, plants) == [dict(plants[1], msg="profile q holds another key", unreachable=False)]
    assert [p["unreachable"] for p in host_profiles.unplanted({"unreachable": True}, plants)] == [True, True]
    assert host_profiles.unplanted({"skipped": True}, plants) == []
    by_host = placement_filters.seed_outcomes_by_host(OUTCOMES, REQUESTS, ["web01", "web02"])
    hostvars = {"web01": {"seed_write": {"outcomes": [{"failed": True, "msg": "refused"}]}}, "web02": {"seed_write": {"unreachable": True}}}
    failed = host_profiles.unplanted_by_host(["web01", "web02"], hostvars, by_host)
    assert [(f["host"], f["path"], f["msg"]) for f in failed] == [
        ("web01", "/root/.aws/credentials", "refused"), ("web02", "/root/.aws/credentials", "host unreachable")]
    assert SECRET not in json.dumps(failed)


def test_outcomes_grouped_once_are_what_each_host_would_pick_for_itself():
    hosts = ["web01", "web02", "web03"]
    seed = placement_filters.seed_outcomes_by_host(OUTCOMES, REQUESTS, hosts)
    assert seed == {host: placement_filters.seed_outcomes(OUTCOMES, REQUESTS, host) for host in hosts}
    assert seed["web03"] == [] and SECRET not in json.dumps(seed)
    rotate = placement_filters.rotate_outcomes_by_host(OUTCOMES, REQUESTS, hosts)
    assert rotate == {host: placement_filters.rotate_outcomes(OUTCOMES, REQUESTS, host) for host in hosts}
    rows = tables.seed_rows_by_host(seed, hosts)
    assert rows == tables.seed_rows(seed["web01"], "web01") + tables.seed_rows(seed["web02"], "web02")


def test_rotation_errors_of_every_host_at_once_are_each_hosts_own():
    hosts = ["web01", "web02"]
    by_host = placement_filters.rotate_outcomes_by_host(OUTCOMES, REQUESTS, hosts)
    finish = {"failed": True, "msg": "throttled"}
    errors = tables.rotate_errors_by_host(by_host, [], finish)
    assert errors == {host: tables.rotate_errors(by_host[host], [], finish) for host in hosts}
    assert any("boom" in line for line in errors["web01"])


def test_what_each_host_holds_after_the_write_is_recorded_once_for_the_play():
    begun = [dict(o, rotation="started", rotated_key_id="AKIAOLD") for o in OUTCOMES]
    by_host = placement_filters.rotate_outcomes_by_host(begun, REQUESTS, ["web01", "web02", "web03"])
    # web01 wrote its key; web02 was lost during the write and its confirming read; web03 got nothing.
    hostvars = {"web01": {"rotate_write": {"outcomes": [{"failed": False, "planted_access_key_id": "AKIAEXAMPLE000000001"}]}},
                "web02": {"rotate_write": {"unreachable": True}, "rotate_confirm": {"unreachable": True}}, "web03": {}}
    landed = host_profiles.rotate_landed_by_host(["web01", "web02", "web03"], hostvars, by_host)
    assert [(entry["host"], entry["held"]) for entry in landed] == [("web01", "AKIAEXAMPLE000000001"), ("web02", "")]
    assert "host unreachable" in landed[1]["why"]
    assert SECRET not in json.dumps(landed)


def _bulk(*canaries, lease_held=False):
    return {"results": [{"canaries": list(canaries), "lease_held": lease_held}]}


def _canary(host, key="AKIAOLD", created="2020-01-01T00:00:00+00:00"):
    return {"account_id": "111111111111", "user_name": f"{host}-backup", "mapping": {"host": host, "profile": "backup"},
            "keys": [{"access_key_id": key, "status": "Active", "create_date": created, "age_days": 3}]}


TAKEN = {"results": [{"held_by_us": True, "waited": 0, "taken_over": None}]}


def test_the_hosts_are_read_again_unless_no_other_run_can_have_changed_anything():
    first = _bulk(_canary("web01"), _canary("web02"))
    # Only the ages moved: nothing changed.
    assert estate_filters.estate_unchanged(first, _bulk(_canary("web01"), _canary("web02")), TAKEN, ["web01", "web02"]) is True
    # Another run minted for web02 in between; or the lease was held at the first read; or we waited, or took a dead run's over.
    assert estate_filters.estate_unchanged(first, _bulk(_canary("web01"), _canary("web02", key="AKIANEW")), TAKEN) is False
    assert estate_filters.estate_unchanged(_bulk(_canary("web01"), lease_held=True), _bulk(_canary("web01")), TAKEN) is False
    assert estate_filters.estate_unchanged(_bulk(_canary("web01"), lease_held=None), _bulk(_canary("web01")), TAKEN) is False
    waited = {"results": [{"held_by_us": True, "waited": 5, "taken_over": None}]}
    taken_over = {"results": [{"held_by_us": True, "waited": 0, "taken_over": {"run_id": "dead"}}]}
    for lease in (waited, taken_over, {"skipped": True}, {}):
        assert estate_filters.estate_unchanged(first, first, lease) is False
    # A canary retired in between, unless its host left the play (unreachable at the read).
    assert estate_filters.estate_unchanged(first, _bulk(_canary("web01")), TAKEN) is False
    assert estate_filters.estate_unchanged(first, _bulk(_canary("web01")), TAKEN, ["web01"]) is True
    # IAM is eventually consistent: a key made in the last minute may be another run's that a lease look missed.
    fresh = _bulk(_canary("web01", created=datetime.datetime.now(datetime.timezone.utc).isoformat()))
    assert estate_filters.estate_unchanged(fresh, fresh, TAKEN) is False
    assert estate_filters.estate_unchanged(fresh, fresh, TAKEN, quiet_seconds=0) is True
    assert estate_filters.estate_unchanged(_bulk(), _bulk(), TAKEN) is True


def test_usable_reads_leave_out_failed_reads_and_the_controllers_own_profile():
    result = _query_result({"failed": False, "path": "/home/deploy/.aws/credentials", "access_key_id": "AKIA1"},
                           {"failed": True, "path": "/root/.aws/credentials", "msg": "duplicate section"})
    reads = host_profiles.profile_reads(result, PLACEMENTS, "seed_placement")
    assert [r["path"] for r in host_profiles.usable_reads(reads)] == ["/home/deploy/.aws/credentials"]
    assert host_profiles.usable_reads(reads, "/home/deploy/.aws/credentials", "prod") == []
    assert len(host_profiles.usable_reads(reads, "/home/deploy/.aws/credentials", "other")) == 1


def test_a_failed_bulk_read_is_one_line_that_says_what_to_set_when_credentials_are_missing():
    loop = {"failed": True, "results": [{"failed": True, "msg": "Failed to list the canary IAM users: Unable to locate credentials"}]}
    assert estate_filters.estate_read_problem(loop).startswith(
        "The controller has no usable AWS credentials (Failed to list the canary IAM users: Unable to locate credentials). Set canary_aws.profile")
    denied = {"failed": True, "msg": "AccessDenied: iam:GetAccountAuthorizationDetails"}
    assert estate_filters.estate_read_problem(denied) == (
        "The controller could not read the canary estate (AccessDenied: iam:GetAccountAuthorizationDetails); nothing was changed.")


def test_become_problem_names_the_other_owners_once_and_what_to_set():
    line = host_profiles.become_problem(" sudo: a password is required\n", ["root", "deploy", "root", "alice"], "alice", "web01")
    assert line == ("The placements of deploy, root on web01 need become (sudo to root) as alice, which failed (sudo: a password is "
                    "required): give that user passwordless sudo, or set ansible_become_password (or run ansible-playbook with -K).")


def test_a_take_that_listed_under_the_lease_is_both_the_second_read_and_the_lease():
    first = _bulk(_canary("web01"))
    take = {"results": [{"held_by_us": True, "waited": 0, "taken_over": None, "canaries": [_canary("web01")]}]}
    assert estate_filters.estate_unchanged(first, take, hosts=["web01"]) is True
    waited = {"results": [dict(take["results"][0], waited=3)]}
    assert estate_filters.estate_unchanged(first, waited, hosts=["web01"]) is False
    moved = {"results": [dict(take["results"][0], canaries=[_canary("web01", key="AKIANEW")])]}
    assert estate_filters.estate_unchanged(first, moved, hosts=["web01"]) is False
