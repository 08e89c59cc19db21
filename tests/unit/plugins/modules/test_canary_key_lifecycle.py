# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""canarykeys.aws.canary_key's lifecycle options against a real moto server, IAM calls counted at the wire.

``rotation=begin`` / ``rotation=finish`` (the two controller steps of a rotation around the write to the
host) and ``state=absent`` with ``user_name`` (retiring a canary as canary_key_info lists it).  Same
harness as test_canary_key.py, whose fixtures and helpers are reused.
"""

from __future__ import annotations

import datetime

import pytest

from test_canary_key import PLACEMENT
from test_canary_key import fixture_iam, fixture_run  # noqa: F401  pylint: disable=unused-import
from test_canary_key import cm, iam_actions, keys_of, seed, tags_of, writes


def begin(run, planted, max_age_days=0, check_mode=False):
    return run(check_mode=check_mode, rotation="begin", planted_key_id=planted, max_age_days=max_age_days, **PLACEMENT)


def finish(run, planted, rotated, **extra):
    return run(rotation="finish", planted_key_id=planted, rotated_key_id=rotated, **dict(PLACEMENT, **extra))[0]


def test_a_rotation_mints_a_second_key_and_finishing_it_deletes_the_old_one(aws, iam, run):
    first = seed(run)
    old = first["access_key_id"]
    mark = len(aws.calls())
    started, printed = begin(run, old)
    assert (started["changed"], started["minted"], started["rotation"], started["rotated_key_id"]) == (True, True, "started", old)
    assert printed.count(started["secret_access_key"]) == 1
    assert writes(iam_actions(aws, mark)) == ["CreateAccessKey"]
    new = started["access_key_id"]
    # Both keys work until the host holds the new one; the record still describes the old one.
    assert keys_of(iam, first["user_name"]) == {old: "Active", new: "Active"}
    assert started["generation"] == 2 and tags_of(iam, first["user_name"])[cm.TAG_GENERATION] == "1"

    mark = len(aws.calls())
    done = finish(run, new, old, planted_by="rotation play")
    assert (done["changed"], done["rotation"], done["access_key_id"], done["deleted_access_key_ids"]) == (True, "completed", new, [old])
    assert writes(iam_actions(aws, mark)) == ["DeleteAccessKey", "TagUser"]
    assert keys_of(iam, first["user_name"]) == {new: "Active"}
    tags = tags_of(iam, first["user_name"])
    created = next(k for k in iam.list_access_keys(UserName=first["user_name"])["AccessKeyMetadata"] if k["AccessKeyId"] == new)["CreateDate"]
    assert tags[cm.TAG_GENERATION] == "2" and done["generation"] == 2
    assert tags[cm.TAG_PLANTED_AT] == created.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert tags[cm.TAG_PLANTED_BY] == "rotation play" and done["mapping"] == cm.mapping_from_tags(tags)

    # Finishing again (a retried task) changes nothing and does not count the rotation twice.
    mark = len(aws.calls())
    again = finish(run, new, old)
    assert (again["changed"], again["rotation"], again["generation"]) == (False, "completed", 2)
    assert writes(iam_actions(aws, mark)) == []


@pytest.mark.parametrize("held", ["old", "", "AKIAIOSFODNN7EXAMPLE"])
def test_a_host_that_did_not_take_the_new_key_keeps_the_old_one_and_the_record(aws, iam, run, held):
    first = seed(run)
    old = first["access_key_id"]
    tags_before = tags_of(iam, first["user_name"])
    new = begin(run, old)[0]["access_key_id"]
    done = finish(run, old if held == "old" else held, old)
    assert (done["changed"], done["rotation"], done["access_key_id"], done["deleted_access_key_ids"]) == (True, "rolled_back", old, [new])
    assert keys_of(iam, first["user_name"]) == {old: "Active"}
    assert tags_of(iam, first["user_name"]) == tags_before


def test_a_key_younger_than_max_age_is_not_due_and_costs_three_reads(aws, iam, run):
    first = seed(run)
    mark = len(aws.calls())
    result, printed = begin(run, first["access_key_id"], max_age_days=1)
    assert (result["changed"], result["minted"], result["rotation"]) == (False, False, "not_due")
    assert result["access_key_id"] == first["access_key_id"] and result["rotated_key_id"] is None
    assert 0 <= result["key_age_days"] < 0.1
    assert "secret_access_key" not in printed
    # The third tells whether the user still carries a deny-all (canary_key_batch is told by the bulk read instead).
    assert iam_actions(aws, mark) == ["GetUser", "ListAccessKeys", "ListUserPolicies"]


def test_a_rotation_that_died_after_its_write_is_cleaned_up_by_the_next_run(aws, iam, run):
    first = seed(run)
    new = begin(run, first["access_key_id"])[0]["access_key_id"]
    # The host took the new key; the run died before finishing. The next run, with nothing due:
    result = begin(run, new, max_age_days=90)[0]
    assert (result["changed"], result["minted"], result["rotation"], result["deleted_access_key_ids"]) == (
        True, False, "not_due", [first["access_key_id"]])
    assert keys_of(iam, first["user_name"]) == {new: "Active"}


def test_a_placement_not_holding_its_key_is_left_to_the_seed(aws, iam, run):
    mark = len(aws.calls())
    nobody = begin(run, "")[0]
    assert (nobody["changed"], nobody["rotation"], nobody["user_arn"]) == (False, "not_planted", "")
    first = seed(run)
    for planted in ("", "AKIAIOSFODNN7EXAMPLE"):
        result = begin(run, planted)[0]
        assert (result["changed"], result["minted"], result["rotation"]) == (False, False, "not_planted")
    iam.update_access_key(UserName=first["user_name"], AccessKeyId=first["access_key_id"], Status="Inactive")
    assert begin(run, first["access_key_id"])[0]["rotation"] == "not_planted"
    assert writes(iam_actions(aws, mark)) == ["CreateUser", "CreateAccessKey", "TagUser"]  # the seed's, nothing more
    assert keys_of(iam, first["user_name"]) == {first["access_key_id"]: "Inactive"}


def test_an_orphan_makes_room_for_the_new_key(aws, iam, run):
    first = seed(run)
    orphan = iam.create_access_key(UserName=first["user_name"])["AccessKey"]["AccessKeyId"]
    started = begin(run, first["access_key_id"])[0]
    assert started["deleted_access_key_ids"] == [orphan]
    assert keys_of(iam, first["user_name"]) == {first["access_key_id"]: "Active", started["access_key_id"]: "Active"}


def test_check_mode_says_what_would_rotate_and_writes_nothing(aws, iam, run):
    first = seed(run)
    mark = len(aws.calls())
    result, printed = begin(run, first["access_key_id"], check_mode=True)
    assert (result["changed"], result["minted"], result["rotation"], result["access_key_id"]) == (True, True, "started", None)
    assert "secret_access_key" not in result and "SecretAccessKey" not in printed
    assert writes(iam_actions(aws, mark)) == []
    assert keys_of(iam, first["user_name"]) == {first["access_key_id"]: "Active"}


def test_rotation_arguments_are_checked(aws, iam, run):
    first = seed(run)
    refused = run(rotation="finish", planted_key_id=first["access_key_id"], **PLACEMENT)[0]
    assert refused["failed"] is True and "rotated_key_id" in refused["msg"]
    refused = run(rotation="begin", state="absent", **PLACEMENT)[0]
    assert refused["failed"] is True and refused["msg"] == "rotation works with state=present only"
    refused = begin(run, first["access_key_id"], max_age_days=-1)[0]
    assert refused["failed"] is True and "max_age_days" in refused["msg"]
    assert keys_of(iam, first["user_name"]) == {first["access_key_id"]: "Active"}


def test_absent_by_user_name_retires_a_canary_whatever_its_recorded_placement(aws, iam, run):
    # The tags hold sanitised values; the names they give back need not be the user's.
    first = seed(run)
    extra = iam.create_access_key(UserName=first["user_name"])["AccessKey"]["AccessKeyId"]
    unrelated = dict(host="other", path="/nowhere", profile_name="x")
    one = run(state="absent", user_name=first["user_name"], access_key_id=extra, **unrelated)[0]
    assert (one["changed"], one["deleted_access_key_ids"], one["user_deleted"]) == (True, [extra], False)
    whole = run(state="absent", user_name=first["user_name"], **unrelated)[0]
    assert (whole["changed"], whole["deleted_access_key_ids"], whole["user_deleted"]) == (True, [first["access_key_id"]], True)
    assert first["user_name"] not in {user["UserName"] for user in iam.list_users()["Users"]}
    gone = run(state="absent", user_name=first["user_name"], **unrelated)[0]
    assert gone["changed"] is False


def test_absent_by_user_name_refuses_a_user_that_is_not_a_canary(aws, iam, run):
    iam.create_user(UserName="alice")
    key = iam.create_access_key(UserName="alice")["AccessKey"]["AccessKeyId"]
    mark = len(aws.calls())
    result = run(state="absent", user_name="alice", **PLACEMENT)[0]
    assert result["failed"] is True and "not a canary user" in result["msg"]
    assert writes(iam_actions(aws, mark)) == []
    assert keys_of(iam, "alice") == {key: "Active"}


def test_a_rotation_begin_migrates_a_guarded_user_before_its_mint(aws, iam, run):
    first = seed(run, deny_all=True)
    assert iam.list_user_policies(UserName=first["user_name"])["PolicyNames"] == ["default"]
    mark = len(aws.calls())
    started = begin(run, first["access_key_id"])[0]
    assert started["minted"] is True and started["deny_all"] is False
    assert writes(iam_actions(aws, mark)) == ["DeleteUserPolicy", "CreateAccessKey"]
    assert iam.list_user_policies(UserName=first["user_name"])["PolicyNames"] == []
