# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure decisions of a key rotation: when a key is due, which key survives, what the record says.

The IAM side runs against moto in tests/unit/plugins/modules/test_canary_key_lifecycle.py.
"""

from __future__ import annotations

import datetime
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

REPO = pathlib.Path(__file__).resolve().parents[4]

from ansible_collections.canarykeys.aws.plugins.module_utils._iam import errors, plans  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping as cm  # noqa: E402

NOW = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.timezone.utc)
PLACEMENT = plans.Placement("web03", "/home/deploy/.aws/credentials", "prod", planted_by="rotation")
OLD, NEW, OTHER = "AKIAOLDOLDOLDOLDOLD1", "AKIANEWNEWNEWNEWNEW2", "AKIAOTHEROTHEROTHER3"


def key(key_id, days_old=0.0, status="Active"):
    return {"AccessKeyId": key_id, "Status": status, "CreateDate": NOW - datetime.timedelta(days=days_old)}


def user(generation=1, planted_at="2025-01-01T00:00:00Z", named_key=None):
    """A canary user; ``named_key``: the key its key-id tags name, as canary_key leaves them."""
    tags = cm.mapping_tags(PLACEMENT.host, PLACEMENT.path, PLACEMENT.profile, "", planted_at, "seed", generation)
    if named_key is not None:
        tags.update(cm.planted_key_tags(named_key["AccessKeyId"], named_key["CreateDate"]))
    return {"UserName": "web03-backup", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


@given(age=st.floats(min_value=0, max_value=4000, allow_nan=False), max_age=st.integers(min_value=0, max_value=4000))
def test_a_planted_key_is_due_exactly_when_it_is_at_least_max_age_days_old(age, max_age):
    planted = key(OLD, age)
    # IAM dates have microseconds at most: the age that counts is the one the date gives.
    exact = (NOW - planted["CreateDate"]).total_seconds() / 86400
    plan = plans.plan_rotation_begin([planted], OLD, max_age, NOW)
    assert plan["mint"] == (exact >= max_age)
    assert plan["rotation"] == ("started" if exact >= max_age else "not_due")
    assert plan["age_days"] == pytest.approx(age, abs=1e-6)


def test_keys_the_host_does_not_hold_go_whether_or_not_the_planted_key_is_due():
    # A rotation that died after its write leaves the old key behind: the next run, due or not, removes it.
    keys = [key(OLD, 100), key(OTHER, 1)]
    assert plans.plan_rotation_begin(keys, OLD, 90, NOW)["orphans"] == [OTHER]
    assert plans.plan_rotation_begin(keys, OLD, 365, NOW)["orphans"] == [OTHER]
    assert plans.plan_rotation_begin(keys, OTHER, 365, NOW)["orphans"] == [OLD]


@pytest.mark.parametrize("planted, keys", [
    ("", [key(OLD, 100)]),
    (OTHER, [key(OLD, 100)]),
    (OLD, [key(OLD, 100, "Inactive")]),
    (OLD, []),
])
def test_a_profile_without_its_active_key_is_not_rotated(planted, keys):
    plan = plans.plan_rotation_begin(keys, planted, 0, NOW)
    assert (plan["rotation"], plan["mint"], plan["orphans"]) == ("not_planted", False, [])


def test_the_new_key_survives_when_the_host_holds_it_and_the_record_advances():
    plan = plans.plan_rotation_finish(PLACEMENT, user(3), [key(OLD, 100), key(NEW, 0)], NEW, OLD)
    assert (plan["keep"], plan["doomed"], plan["rotation"], plan["generation"]) == (NEW, [OLD], "completed", 4)
    assert plan["tag_update"][cm.TAG_GENERATION] == "4"
    assert plan["tag_update"][cm.TAG_PLANTED_AT] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert plan["tag_update"][cm.TAG_PLANTED_BY] == "rotation"
    # The tags now name the new key, which the credential report will list created at that second.
    assert plan["tag_update"][cm.TAG_ACCESS_KEY_ID] == NEW
    assert plan["tag_update"][cm.TAG_ACCESS_KEY_CREATED] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("held", [OLD, "", OTHER])
def test_otherwise_the_old_key_survives_and_the_record_stays(held):
    plan = plans.plan_rotation_finish(PLACEMENT, user(3, named_key=key(OLD, 100)), [key(OLD, 100), key(NEW, 0)], held, OLD)
    assert (plan["keep"], plan["doomed"], plan["rotation"], plan["generation"], plan["tag_update"]) == (OLD, [NEW], "rolled_back", 3, {})


def test_a_rollback_names_the_old_key_where_the_tags_did_not():
    plan = plans.plan_rotation_finish(PLACEMENT, user(3), [key(OLD, 100), key(NEW, 0)], "", OLD)
    assert plan["rotation"] == "rolled_back" and plan["generation"] == 3
    assert plan["tag_update"] == cm.planted_key_tags(OLD, NOW - datetime.timedelta(days=100))


def test_a_repeated_finish_neither_deletes_nor_counts_again():
    plan = plans.plan_rotation_finish(PLACEMENT, user(4, named_key=key(NEW, 0)), [key(NEW, 0)], NEW, OLD)
    assert (plan["keep"], plan["doomed"], plan["rotation"], plan["tag_update"], plan["generation"]) == (NEW, [], "completed", {}, 4)


def test_a_user_holding_neither_key_is_an_error_not_a_guess():
    with pytest.raises(errors.PlacementError, match="holds neither"):
        plans.plan_rotation_finish(PLACEMENT, user(), [key(OTHER, 0)], NEW, OLD)
