# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seed role's filters never let a secret into what they return."""

from __future__ import annotations

import json


from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared.canary_mapping import placement_id  # noqa: E402

from ansible_collections.canarykeys.aws.plugins.filter import placements as placement_filters  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.filter import tables  # noqa: E402

SECRET = "s3cr3t/" + "x" * 33


def _request(host, path, profile, planted=""):
    return {"host": host, "path": path, "profile": profile, "planted_key_id": planted, "reminder": "r", "planted_by": "play",
            "user": "deploy", "region": "eu-west-1"}


def _outcome(host, path, profile, minted, failed=False, key="AKIAEXAMPLE000000001"):
    """An entry of canary_key_batch's outcomes, as the module returns it (a secret when minted)."""
    if failed:
        return {"host": host, "path": path, "profile": profile, "failed": True, "changed": False, "minted": False, "msg": "boom"}
    outcome = {"host": host, "path": path, "profile": profile, "user_name": "web01-backup", "access_key_id": key,
               "minted": minted, "changed": minted}
    if minted:
        outcome["secret_access_key"] = SECRET
    return outcome


# Two hosts in one batch, in the order the play gathered them.
REQUESTS = [
    _request("web01", "/home/deploy/.aws/credentials", "prod"),
    _request("web01", "/root/.aws/credentials", "backup", planted="AKIAOLD0000000000001"),
    _request("web02", "/root/.aws/credentials", "backup"),
    _request("web01", "/home/x/.aws/credentials", "prod"),
]
OUTCOMES = [
    _outcome("web01", "/home/deploy/.aws/credentials", "prod", minted=False),
    _outcome("web01", "/root/.aws/credentials", "backup", minted=True),
    _outcome("web02", "/root/.aws/credentials", "backup", minted=True, key="AKIAWEB02000000000001"),
    _outcome("web01", "/home/x/.aws/credentials", "prod", minted=False, failed=True),
]


def test_seed_outcomes_pick_this_hosts_placements_with_their_batch_index_and_no_secret():
    mine = placement_filters.seed_outcomes(OUTCOMES, REQUESTS, "web01")
    assert [(o["index"], o["profile"], o["minted"], o["failed"]) for o in mine] == [
        (0, "prod", False, False), (1, "backup", True, False), (3, "prod", False, True)]
    assert mine[2]["msg"] == "boom"
    [other] = placement_filters.seed_outcomes(OUTCOMES, REQUESTS, "web02")
    assert (other["index"], other["access_key_id"]) == (2, "AKIAWEB02000000000001")
    assert SECRET not in json.dumps(mine + [other])


def test_batch_placements_carry_only_the_modules_fields():
    placements = placement_filters.batch_placements(REQUESTS)
    assert set(placements[0]) == {"host", "path", "profile_name", "planted_key_id", "reminder", "planted_by"}
    assert [p["host"] for p in placements] == ["web01", "web01", "web02", "web01"]


def test_seed_plants_carry_index_and_no_secret():
    items = placement_filters.seed_plants(placement_filters.seed_outcomes(OUTCOMES, REQUESTS, "web01"))
    assert [item["index"] for item in items] == [1]
    assert items[0]["replaceable_key_ids"] == ["AKIAOLD0000000000001"]
    assert items[0]["region"] == "eu-west-1" and items[0]["user"] == "deploy"
    assert SECRET not in json.dumps(items)


def test_seed_rows_and_table_have_no_secret():
    rows = tables.seed_rows(placement_filters.seed_outcomes(OUTCOMES, REQUESTS, "web01"), "web01")
    assert [row["status"] for row in rows] == ["unchanged", "minted"]
    table = tables.reminder_table(rows)
    assert table[0].split() == ["host", "account", "file", "profile", "IAM", "user", "access", "key", "id", "status"]
    assert len(table) == 4
    assert SECRET not in json.dumps(rows) + "\n".join(table)
    # Sorted by host, then path: /home before /root.
    assert "/home/deploy" in table[2] and "/root" in table[3]


def test_failed_results_include_unreachable():
    results = [{"changed": True}, {"failed": True}, {"unreachable": True}]
    assert placement_filters.failed_results(results) == results[1:]


def test_fill_reminder_keeps_unknown_and_stray_braces():
    fields = {"host": "web01", "path": "/p", "profile": "prod", "user": "deploy"}
    assert placement_filters.fill_reminder("{host}:{path} [{profile}] {team}", fields) == "web01:/p [prod] {team}"
    assert placement_filters.fill_reminder("odd { brace", fields) == "odd { brace"


def _read(path, profile, planted):
    return {"path": path, "access_key_id": planted, "seed_placement": {"user": "deploy", "profile": profile}}


def _canary(path, profile, keys, reminder):
    return {
        "user_name": "web01-backup",
        "mapping": {"placement_id": placement_id("web01", path, profile), "reminder": reminder},
        "keys": [{"access_key_id": key, "status": status} for key, status in keys],
    }


def test_only_intact_planted_canaries_are_settled():
    template = "{host}:{path} profile {profile}"
    path = "/home/deploy/.aws/credentials"
    wanted = f"web01:{path} profile prod"
    reads = [
        _read(path, "prod", "AKIAPLANTED000000001"),  # intact
        _read(path, "backup", "AKIAPLANTED000000002"),  # second key exists: orphan to clean
        _read(path, "deploy", None),  # nothing planted
        _read(path, "old", "AKIAPLANTED000000004"),  # reminder changed
        _read(path, "gone", "AKIAPLANTED000000005"),  # no canary at all
    ]
    canaries = [
        _canary(path, "prod", [("AKIAPLANTED000000001", "Active")], wanted),
        _canary(path, "backup", [("AKIAPLANTED000000002", "Active"), ("AKIAORPHAN0000000002", "Active")],
                f"web01:{path} profile backup"),
        _canary(path, "old", [("AKIAPLANTED000000004", "Active")], "an older reminder"),
    ]
    unsettled = placement_filters.unsettled_placements(reads, canaries, "web01", template)
    assert [r["seed_placement"]["profile"] for r in unsettled] == ["backup", "deploy", "old", "gone"]
    requests = placement_filters.seed_requests(reads, canaries, "web01", template, "Seed canary AWS keys")
    assert [(r["profile"], r["planted_key_id"], r["reminder"]) for r in requests] == [
        ("backup", "AKIAPLANTED000000002", f"web01:{path} profile backup"), ("deploy", "", f"web01:{path} profile deploy"),
        ("old", "AKIAPLANTED000000004", f"web01:{path} profile old"), ("gone", "AKIAPLANTED000000005", f"web01:{path} profile gone")]
    assert {(r["host"], r["path"], r["planted_by"], r["user"]) for r in requests} == {("web01", path, "Seed canary AWS keys", "deploy")}
    rows = placement_filters.seed_settled_rows(reads, canaries, "web01", template)
    assert [(r["profile"], r["access_key_id"], r["status"]) for r in rows] == [("prod", "AKIAPLANTED000000001", "unchanged")]
    # Another host with the same file and profile is another placement.
    assert len(placement_filters.unsettled_placements(reads[:1], canaries, "web02", template)) == 1


def test_inactive_planted_key_is_not_settled():
    path = "/root/.aws/credentials"
    reads = [_read(path, "backup", "AKIAPLANTED000000001")]
    canaries = [_canary(path, "backup", [("AKIAPLANTED000000001", "Inactive")], "r")]
    assert placement_filters.unsettled_placements(reads, canaries, "web01", "r") == reads


def _dead_canary(host, path, profile, dead, placement=None):
    return {"user_name": f"{host}-{profile}", "dead": dead,
            "mapping": {"host": host, "path": path, "profile": profile, "reminder": "web tier",
                        "placement_id": placement or placement_id(host, path, profile)}}


def test_dead_placements_are_the_hosts_dead_located_canaries_as_seed_placements():
    canaries = [
        _dead_canary("web01", "/home/deploy/.aws/credentials", "prod", True),
        _dead_canary("web01", "/root/.aws/credentials", "backup", False),
        _dead_canary("web02", "/home/deploy/.aws/credentials", "prod", True),
        # Tags that do not give back the placement id (sanitised): never named, never re-planted.
        _dead_canary("web01", "/srv/app/.aws/credentials", "ops", True, placement="0" * 20),
        _dead_canary("web01", "/etc/aws/credentials", "svc", True),
    ]
    assert placement_filters.dead_placements(canaries, "web01", True, "ops") == [
        {"user": "deploy", "path": "/home/deploy/.aws/credentials", "profile": "prod", "reminder": "web tier"},
        {"user": "root", "path": "/etc/aws/credentials", "profile": "svc", "reminder": "web tier"},
    ]
    assert placement_filters.dead_placements(canaries, "web01", False, "ops")[1]["user"] == "ops"
    assert placement_filters.dead_placements(canaries, "web03") == []


def _read_placement(path, profile, key, **placement):
    return {"path": path, "access_key_id": key, "seed_placement": dict({"user": "deploy", "profile": profile}, **placement)}


def _listed_canary(host, path, profile, key, policies):
    return {"user_name": "web01-prod", "inline_policies": policies, "keys": [{"access_key_id": key, "status": "Active"}],
            "mapping": {"placement_id": placement_id(host, path, profile), "reminder": "r"}}


def test_a_canary_that_still_carries_the_deny_all_is_not_settled_and_its_policies_travel():
    path, key = "/home/deploy/.aws/credentials", "AKIAEXAMPLE000000001"
    reads = [_read_placement(path, "prod", key)]
    migrated = [_listed_canary("web01", path, "prod", key, [])]
    guarded = [_listed_canary("web01", path, "prod", key, ["default"])]
    # Migrated: nothing to do, no request, no IAM call.
    assert placement_filters.seed_requests(reads, migrated, "web01", "r", "play") == []
    assert len(placement_filters.seed_settled_rows(reads, migrated, "web01", "r")) == 1
    # Still guarded: a request telling the batch what the bulk read saw.
    [request] = placement_filters.seed_requests(reads, guarded, "web01", "r", "play")
    assert request["inline_policies"] == ["default"] and request["planted_key_id"] == key
    assert placement_filters.batch_placements([request])[0]["inline_policies"] == ["default"]
    assert placement_filters.seed_settled_rows(reads, guarded, "web01", "r") == []
    # With the guard asked for, the other way round.
    assert placement_filters.seed_requests(reads, guarded, "web01", "r", "play", deny_all=True) == []
    assert len(placement_filters.seed_requests(reads, migrated, "web01", "r", "play", deny_all=True)) == 1


def test_each_request_carries_its_naming_the_placement_s_over_the_host_s():
    reads = [_read_placement("/home/mira/.aws/credentials", "deploy", None),
             _read_placement("/root/.aws/credentials", "backup", None, user_name_template="{host}-{purpose}")]
    requests = placement_filters.seed_requests(reads, [], "lap-mira", "r", "play", user_name_template="{user}")
    assert [r["user_name_template"] for r in requests] == ["{user}", "{host}-{purpose}"]
    assert [p["user_name_template"] for p in placement_filters.batch_placements(requests)] == ["{user}", "{host}-{purpose}"]
    assert "user_name_template" not in placement_filters.seed_requests(reads[:1], [], "web01", "r", "play")[0]


def test_a_listed_canary_s_user_name_travels_so_that_an_old_name_is_kept():
    path = "/home/deploy/.aws/credentials"
    [request] = placement_filters.seed_requests([_read_placement(path, "prod", None)], [_listed_canary("web01", path, "prod", "AKIAX", [])],
                                                "web01", "r", "play")
    assert request["user_name"] == "web01-prod" and placement_filters.batch_placements([request])[0]["user_name"] == "web01-prod"


def test_seed_errors_by_host_names_every_failure_of_a_host_and_only_the_hosts_that_fail():
    outcomes_by_host = {
        "web01": [_outcome("web01", "/root/.aws/credentials", "backup", True),
                  _outcome("web01", "/home/deploy/.aws/credentials", "prod", False, failed=True)],
        "web02": [_outcome("web02", "/root/.aws/credentials", "backup", True)],
        "web03": [_outcome("web03", "/root/.aws/credentials", "backup", True)],
        "lap01": [],
    }
    hostvars = {"web01": {"seed_read_problems": ["web01:/etc/x [a]: malformed"]}, "web02": {}, "web03": {}, "lap01": {}}
    unplanted = [{"host": "web03", "path": "/root/.aws/credentials", "profile": "backup", "msg": "web03: file refused"}]
    errors = tables.seed_errors_by_host(outcomes_by_host, ["web01", "web02", "web03", "lap01"], hostvars, unplanted, {"changed": True})
    assert errors == {
        "web01": ["web01:/etc/x [a]: malformed", "boom"],
        "web03": ["web03: file refused", tables.UNPLANTED_DELETED],
    }
    assert SECRET not in json.dumps(errors)
    # A failed batch run fails every host, the ones that asked for nothing too, with its own message first.
    failed = tables.seed_errors_by_host(outcomes_by_host, ["web02", "lap01"], hostvars, [], {"failed": True, "msg": "quota"})
    assert failed == {"web02": ["quota"], "lap01": ["quota"]}
