# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rotate role's filters: every placement that got a second key is finished, the table and the
messages say what happened to each, and no secret gets into what they return."""

from __future__ import annotations

import json

from ansible_collections.canarykeys.aws.plugins.filter import placements as placement_filters  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.filter import tables  # noqa: E402

SECRET = "s3cr3t/" + "x" * 33
HOME = "/home/deploy/.aws/credentials"
ROOT = "/root/.aws/credentials"


def _read(path, profile, planted, user_name="web01-backup"):
    """A result of the role's read loop (loop_var rotate_canary)."""
    return {"path": path, "access_key_id": planted, "changed": False,
            "rotate_canary": {"path": path, "profile": profile, "user_name": user_name, "key_count": 1}}


def _begin(host, path, profile, rotation, planted=None, new=None, failed=False, age=120.4, orphans=()):
    """An entry of canary_key_batch's outcomes for action=begin, as the module returns it (a secret when minted)."""
    if failed:
        return {"host": host, "path": path, "profile": profile, "failed": True, "changed": False, "minted": False,
                "msg": "Failed to list access keys: throttled"}
    outcome = {"host": host, "path": path, "profile": profile, "user_name": f"{host}-backup", "rotation": rotation,
               "changed": rotation == "started" or bool(orphans), "minted": rotation == "started", "key_age_days": age,
               "deleted_access_key_ids": list(orphans), "generation": 2 if rotation == "started" else 1,
               "mapping": {"host": host}, "rotated_key_id": planted if rotation == "started" else None,
               "access_key_id": new if rotation == "started" else (planted if rotation == "not_due" else None)}
    if rotation == "started" and new:
        outcome["secret_access_key"] = SECRET
    return outcome


def _finish(host, path, profile, rotation, keep, failed=False):
    if failed:
        return {"host": host, "path": path, "profile": profile, "failed": True, "changed": False, "minted": False,
                "msg": "Failed to delete access key: AccessDenied"}
    return {"host": host, "path": path, "profile": profile, "rotation": rotation, "access_key_id": keep, "changed": True,
            "minted": False}


OLD1, NEW1 = "AKIAOLD0000000000001", "AKIANEW0000000000001"
OLD2, NEW2 = "AKIAOLD0000000000002", "AKIANEW0000000000002"
OLD3, NEW3 = "AKIAOLD0000000000003", "AKIANEW0000000000003"

# Two hosts in one batch: web01 has a placement due, one failing and one not planted; web02 one due and one not due.
REQUESTS = (placement_filters.rotate_requests([_read(HOME, "prod", OLD1), _read(ROOT, "backup", "AKIAOTHER00000000001"),
                                               _read("/home/x/.aws/credentials", "prod", "")], "web01")
            + placement_filters.rotate_requests([_read(ROOT, "backup", OLD2), _read(HOME, "prod", OLD3)], "web02"))
BEGIN = [
    _begin("web01", HOME, "prod", "started", OLD1, NEW1),
    _begin("web01", ROOT, "backup", None, failed=True),
    _begin("web01", "/home/x/.aws/credentials", "prod", "not_planted"),
    _begin("web02", ROOT, "backup", "started", OLD2, NEW2),
    _begin("web02", HOME, "prod", "not_due", OLD3, age=12.9, orphans=["AKIAORPHAN0000000001"]),
]


def _write(plant, failed=False, unreachable=False, msg=None):
    result = {"rotate_plant": plant, "changed": not (failed or unreachable)}
    if unreachable:
        result.update(unreachable=True, msg=msg or "Failed to connect to the host via ssh")
    elif failed:
        result.update(failed=True, msg=msg or "profile prod holds AKIAHAND0000000000001, not one of the keys it may replace")
    else:
        result["planted_access_key_id"] = plant["access_key_id"]
    return result


def _confirm(plant, held=None, unreachable=False):
    if unreachable:
        return {"rotate_plant": plant, "unreachable": True, "msg": "Failed to connect to the host via ssh"}
    return {"rotate_plant": plant, "access_key_id": held, "changed": False}


def test_requests_carry_the_module_fields_and_the_user_for_the_table():
    assert REQUESTS[0] == {"host": "web01", "path": HOME, "profile": "prod", "planted_key_id": OLD1, "user_name": "web01-backup"}
    assert REQUESTS[2]["planted_key_id"] == ""


def test_requests_carry_the_bulk_reads_listing_of_their_user():
    canary = {"user_name": "web01-backup", "user_id": "AIDAEXAMPLE", "user_arn": "arn:aws:iam::123456789012:user/web01-backup",
              "iam_path": "/", "mapping": {"placement_id": "0f3c", "host": "web01", "generation": 1}, "key_history": [OLD1],
              "inline_policies": [], "dead": False, "key_source": "list_access_keys",
              "keys": [{"access_key_id": OLD1, "status": "Active", "create_date": "2026-01-01T00:00:00+00:00", "age_days": 300,
                        "newest": True}]}
    [request] = placement_filters.rotate_requests([_read(HOME, "prod", OLD1)], "web01", [canary])
    # Cut to the module's listing suboptions: nothing it would refuse.
    assert request["listing"] == {
        "user_name": "web01-backup", "user_arn": canary["user_arn"], "iam_path": "/", "mapping": canary["mapping"],
        "key_history": [OLD1], "keys": [{"access_key_id": OLD1, "status": "Active", "create_date": "2026-01-01T00:00:00+00:00"}]}
    assert placement_filters.batch_placements([request])[0]["listing"] == request["listing"]
    # No canary of that user in the listing: no listing, the begin step reads IAM itself.
    assert "listing" not in placement_filters.rotate_requests([_read(HOME, "prod", OLD1, "web01-other")], "web01", [canary])[0]
    # A key listed without its creation date (a credential report row): no listing either, rather than a guess.
    undated = dict(canary, keys=[dict(canary["keys"][0], create_date=None)])
    assert "listing" not in placement_filters.rotate_requests([_read(HOME, "prod", OLD1)], "web01", [undated])[0]


def test_finish_placements_carry_what_the_begin_step_left():
    listing = {"user_name": "web01-backup", "mapping": {"placement_id": "0f3c"}, "keys": [{"access_key_id": NEW1}, {"access_key_id": OLD1}]}
    begun = [dict(BEGIN[0], listing=listing)] + BEGIN[1:]
    placements = placement_filters.rotate_finish_placements(begun, [])
    assert placements[0]["listing"] == listing and "listing" not in placements[1]


def test_outcomes_pick_this_hosts_placements_with_their_batch_index_and_no_secret():
    mine = placement_filters.rotate_outcomes(BEGIN, REQUESTS, "web01")
    assert [(o["index"], o["profile"], o["rotation"], o["minted"], o["failed"]) for o in mine] == [
        (0, "prod", "started", True, False), (1, "backup", None, False, True), (2, "prod", "not_planted", False, False)]
    # The planted key as read, the new key and the old one; the user from the read when begin failed.
    assert (mine[0]["planted_key_id"], mine[0]["access_key_id"], mine[0]["rotated_key_id"]) == (OLD1, NEW1, OLD1)
    assert mine[1]["user_name"] == "web01-backup" and mine[1]["msg"].startswith("Failed to list")
    assert SECRET not in json.dumps(mine) and "secret_access_key" not in json.dumps(mine)
    assert [o["index"] for o in placement_filters.rotate_outcomes(BEGIN, REQUESTS, "web02")] == [3, 4]


def test_outcomes_of_a_skipped_batch_are_empty():
    assert placement_filters.rotate_outcomes([], REQUESTS, "web01") == []


def test_plants_are_the_minted_placements_without_the_secret():
    plants = placement_filters.rotate_plants(placement_filters.rotate_outcomes(BEGIN, REQUESTS, "web01"))
    assert plants == [{"index": 0, "host": "web01", "path": HOME, "profile": "prod", "access_key_id": NEW1, "rotated_key_id": OLD1}]
    assert SECRET not in json.dumps(plants)


def test_check_mode_outcomes_have_nothing_to_plant():
    # In check mode begin reports minted with no key and no secret.
    outcome = dict(_begin("web01", HOME, "prod", "started", OLD1, None), index=0, failed=False)
    assert placement_filters.rotate_plants([outcome]) == []
    assert placement_filters.rotate_finish_placements([outcome], []) == []


def _landed(outcomes_of_host, writes, confirms):
    plants = placement_filters.rotate_plants(outcomes_of_host)
    return placement_filters.rotate_landed([w(p) for w, p in zip(writes, plants)], [c(p) for c, p in zip(confirms, plants)]), plants


def _landed_only(outcomes_of_host, writes, confirms):
    return _landed(outcomes_of_host, writes, confirms)[0]


def test_landed_the_confirming_read_decides():
    plant = {"index": 0, "host": "web01", "path": HOME, "profile": "prod", "access_key_id": NEW1, "rotated_key_id": OLD1}
    # Confirmed: the key read back.
    assert placement_filters.rotate_landed([_write(plant)], [_confirm(plant, NEW1)])[0]["held"] == NEW1
    # Written, then the profile held something else: that is what is held, and the message says so.
    other = placement_filters.rotate_landed([_write(plant)], [_confirm(plant, OLD1)])[0]
    assert other["held"] == OLD1 and other["why"] == f"the profile holds {OLD1} after the write"
    # The read could not reach the host: a write that succeeded stands for it.
    assert placement_filters.rotate_landed([_write(plant)], [_confirm(plant, unreachable=True)])[0]["held"] == NEW1
    # Neither: taken to hold the old key (empty: the finish keeps the rotated key), with the write's reason.
    lost = placement_filters.rotate_landed([_write(plant, unreachable=True)], [_confirm(plant, unreachable=True)])[0]
    assert lost["held"] == "" and lost["why"] == "Failed to connect to the host via ssh"
    refused = placement_filters.rotate_landed([_write(plant, failed=True)], [_confirm(plant, OLD1)])[0]
    assert refused["held"] == OLD1 and refused["why"].startswith("profile prod holds AKIAHAND")
    # A missing confirm result counts as unreachable.
    assert placement_filters.rotate_landed([_write(plant)], [])[0]["held"] == NEW1


def test_finish_covers_every_minted_placement_of_the_batch_even_of_a_host_without_a_record():
    web01 = placement_filters.rotate_outcomes(BEGIN, REQUESTS, "web01")
    landed01 = _landed_only(web01, [_write], [lambda p: _confirm(p, NEW1)])
    # web02 recorded nothing (lost before its facts were set): its placement still gets finished, as holding the old key.
    placements = placement_filters.rotate_finish_placements(BEGIN, landed01, "Rotate canary AWS keys")
    assert placements == [
        {"host": "web01", "path": HOME, "profile_name": "prod", "planted_key_id": NEW1, "rotated_key_id": OLD1,
         "planted_by": "Rotate canary AWS keys"},
        {"host": "web02", "path": ROOT, "profile_name": "backup", "planted_key_id": "", "rotated_key_id": OLD2,
         "planted_by": "Rotate canary AWS keys"},
    ]
    assert SECRET not in json.dumps(placements)


def test_finish_ignores_records_left_by_an_earlier_rotation():
    stale = [{"host": "web01", "path": HOME, "profile": "prod", "access_key_id": "AKIAEARLIER000000001", "held": "AKIAEARLIER000000001"},
             None]
    placements = placement_filters.rotate_finish_placements(BEGIN, stale)
    assert placements[0]["planted_key_id"] == ""


def test_rows_and_errors_after_a_run():
    web01 = placement_filters.rotate_outcomes(BEGIN, REQUESTS, "web01")
    web02 = placement_filters.rotate_outcomes(BEGIN, REQUESTS, "web02")
    landed01 = _landed_only(web01, [_write], [lambda p: _confirm(p, NEW1)])
    landed02 = _landed_only(web02, [lambda p: _write(p, unreachable=True)], [lambda p: _confirm(p, unreachable=True)])
    finish = {"changed": True, "outcomes": [_finish("web01", HOME, "prod", "completed", NEW1),
                                            _finish("web02", ROOT, "backup", "rolled_back", OLD2)]}
    rows = tables.rotate_rows(web01, finish) + tables.rotate_rows(web02, finish)
    assert [(r["host"], r["profile"], r["iam_user"], r["access_key_id"], r["status"]) for r in rows] == [
        ("web01", "prod", "web01-backup", NEW1, f"rotated from {OLD1}"),
        ("web01", "backup", "web01-backup", "AKIAOTHER00000000001", "error"),
        ("web01", "prod", "web01-backup", "", "not planted, left alone"),
        ("web02", "backup", "web02-backup", OLD2, "rolled back"),
        ("web02", "prod", "web02-backup", OLD3, "not due, 12 days old, deleted unplanted AKIAORPHAN0000000001"),
    ]
    assert tables.rotate_errors(web01, landed01, finish) == [f"{ROOT} [backup]: Failed to list access keys: throttled"]
    assert tables.rotate_errors(web02, landed02, finish) == [
        f"{ROOT} [backup]: the host did not take the new key (Failed to connect to the host via ssh); the new key {NEW2} "
        f"was deleted and the profile keeps {OLD2}"]
    assert SECRET not in json.dumps(rows)


def test_a_failed_finish_keeps_both_keys_and_says_so():
    web01 = placement_filters.rotate_outcomes(BEGIN, REQUESTS, "web01")[:1]
    for finish, why in (
        ({"outcomes": [_finish("web01", HOME, "prod", None, None, failed=True)]}, "Failed to delete access key: AccessDenied"),
        ({"failed": True, "msg": "concurrency must be between 1 and 16"}, "concurrency must be between 1 and 16"),
        ({"skipped": True}, "the finish step did not run"),
    ):
        assert tables.rotate_rows(web01, finish)[0]["status"] == "error, both keys kept"
        assert tables.rotate_errors(web01, [], finish) == [
            f"{HOME} [prod]: finishing the rotation from {OLD1} to {NEW1} failed ({why}); the profile holds one of them, "
            "and both stay active until the next rotation, seed or reconciliation deletes the other"]


def test_check_mode_rows_say_what_would_happen_and_nothing_is_an_error_but_begin_failures():
    outcomes = [dict(_begin("web01", HOME, "prod", "started", OLD1, None), index=0, failed=False, planted_key_id=OLD1),
                dict(_begin("web01", ROOT, "backup", "not_due", OLD2, age=3, orphans=["AKIAORPHAN0000000001"]), index=1,
                     failed=False, planted_key_id=OLD2)]
    rows = tables.rotate_rows(outcomes, {"skipped": True}, True)
    assert [r["status"] for r in rows] == ["would rotate, 120 days old", "not due, 3 days old, would delete unplanted AKIAORPHAN0000000001"]
    assert [r["access_key_id"] for r in rows] == [OLD1, OLD2]
    assert tables.rotate_errors(outcomes, [], {"skipped": True}, True) == []


def test_nothing_looked_at_gives_no_rows_and_no_errors():
    assert tables.rotate_rows([], {"skipped": True}) == [] and tables.rotate_errors([], [], {}) == []
