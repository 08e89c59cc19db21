# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A rotation's two steps deciding on the bulk read's listing (module_utils/_iam/listed.py), against the local AWS.

The begin step makes only its mint and the finish step only its delete and tag, when the listing is
right; when it is not (a key IAM had not listed yet, a profile holding a key the listing does not name,
another placement's listing), the step reads IAM and ends where the reading path ends.  IAM calls are
counted at the wire by the local AWS proxy.
"""

from __future__ import annotations

import collections
import dataclasses

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper  # noqa: E402

from ansible_collections.canarykeys.aws.plugins.module_utils._iam import apply, calls, estate, listed  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.plans import Placement  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping as cm  # noqa: E402

WEB = Placement("web01", "/home/deploy/.aws/credentials", "prod", reminder="web tier", planted_by="seed")
ROOT = Placement("web01", "/root/.aws/credentials", "backup", reminder="web root", planted_by="seed")


@pytest.fixture(name="client")
def fixture_client(aws):
    return RetryingBotoClientWrapper(aws.client("iam"), AWSRetry.jittered_backoff())


@pytest.fixture(name="iam")
def fixture_iam(aws):
    return aws.client("iam", direct=True)


def rotating(placement):
    """The placement as the rotate role names it: no reminder (the recorded one stays), its own play."""
    return dataclasses.replace(placement, reminder="", planted_by="rotate")


def seeded(client, *placements):
    return {p: apply.ensure_present(client, p) for p in placements}


def listings(iam):
    """Each canary's listing, by user name, as the rotate role takes it from canary_key_info."""
    canaries = estate.list_estate(iam, key_source=estate.LIST_ACCESS_KEYS)["canaries"]
    return {canary["user_name"]: listed.listing_of(canary) for canary in canaries}


def iam_actions(aws, since):
    return collections.Counter(c["action"] for c in aws.calls()[since:] if c["service"] == "iam")


def keys_of(iam, user_name):
    return {key["AccessKeyId"]: key["Status"] for key in iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]}


def tags_of(iam, user_name):
    return cm.tags_list_to_dict(iam.list_user_tags(UserName=user_name)["Tags"])


def test_the_listing_gives_back_the_users_tags(client, iam):
    seed = seeded(client, WEB)[WEB]
    listing = listings(iam)[seed["user_name"]]
    assert cm.tags_list_to_dict(listed.user(listing)["Tags"]) == tags_of(iam, seed["user_name"])
    assert listed.usable(listing, WEB.placement_id) and not listed.usable(listing, ROOT.placement_id)


def test_on_a_right_listing_begin_only_mints_and_finish_only_deletes_and_tags(aws, client, iam):
    seeds = seeded(client, WEB, ROOT)
    by_user = listings(iam)
    mark = len(aws.calls())
    # The inline policies come from the same bulk read (the rotate role passes both).
    begun = {p: apply.begin_rotation(client, p, seeds[p]["access_key_id"], 0, listing=by_user[seeds[p]["user_name"]], policy_names=[])
             for p in (WEB, ROOT)}
    assert iam_actions(aws, mark) == {"CreateAccessKey": 2}
    assert all(b["rotation"] == "started" and b["listing"]["keys"][0]["access_key_id"] == b["access_key_id"] for b in begun.values())

    # The first profile took its new key; the second did not (its write failed): it rolls back.
    mark = len(aws.calls())
    done = apply.finish_rotation(client, rotating(WEB), begun[WEB]["access_key_id"], seeds[WEB]["access_key_id"],
                                 listing=begun[WEB]["listing"])
    back = apply.finish_rotation(client, rotating(ROOT), seeds[ROOT]["access_key_id"], seeds[ROOT]["access_key_id"],
                                 listing=begun[ROOT]["listing"])
    assert iam_actions(aws, mark) == {"DeleteAccessKey": 2, "TagUser": 1}
    assert (done["rotation"], back["rotation"]) == ("completed", "rolled_back")

    new = begun[WEB]["access_key_id"]
    assert keys_of(iam, done["user_name"]) == {new: "Active"}
    assert keys_of(iam, back["user_name"]) == {seeds[ROOT]["access_key_id"]: "Active"}
    created = iam.list_access_keys(UserName=done["user_name"])["AccessKeyMetadata"][0]["CreateDate"]
    tags = tags_of(iam, done["user_name"])
    assert tags[cm.TAG_ACCESS_KEY_ID] == new and tags[cm.TAG_ACCESS_KEY_CREATED] == cm.key_timestamp(created)
    assert tags[cm.TAG_PLANTED_AT] == cm.key_timestamp(created) and tags[cm.TAG_GENERATION] == "2"
    assert tags[cm.TAG_KEY_HISTORY].split() == [seeds[WEB]["access_key_id"], new]
    assert tags[cm.TAG_PLANTED_BY] == "rotate" and tags[cm.TAG_REMINDER] == "web tier"
    assert tags_of(iam, back["user_name"])[cm.TAG_GENERATION] == "1"


def test_a_key_the_listing_missed_is_found_when_the_mint_meets_the_limit(aws, client, iam):
    seed = seeded(client, WEB)[WEB]
    listing = listings(iam)[seed["user_name"]]
    # A key made after the listing (or not listed yet by IAM): the user already holds two.
    unlisted = iam.create_access_key(UserName=seed["user_name"])["AccessKey"]["AccessKeyId"]
    mark = len(aws.calls())
    begun = apply.begin_rotation(client, WEB, seed["access_key_id"], 0, listing=listing, policy_names=[])
    assert iam_actions(aws, mark) == {"CreateAccessKey": 2, "ListAccessKeys": 1, "DeleteAccessKey": 1}
    assert begun["rotation"] == "started" and begun["deleted_access_key_ids"] == [unlisted]
    assert keys_of(iam, seed["user_name"]) == {seed["access_key_id"]: "Active", begun["access_key_id"]: "Active"}
    assert {k["access_key_id"] for k in begun["listing"]["keys"]} == {seed["access_key_id"], begun["access_key_id"]}


def test_a_finish_whose_profile_holds_a_key_the_listing_does_not_name_reads_iam(aws, client, iam, monkeypatch):
    monkeypatch.setattr(calls, "CONSISTENCY_WAITS", (0.1,))
    seed = seeded(client, WEB)[WEB]
    begun = apply.begin_rotation(client, WEB, seed["access_key_id"], 0, listing=listings(iam)[seed["user_name"]])
    mark = len(aws.calls())
    # Someone else's key in the profile: never this placement's, so the new key goes and the old one stays.
    result = apply.finish_rotation(client, WEB, "AKIAIOSFODNN7EXAMPLE", seed["access_key_id"], listing=begun["listing"])
    assert iam_actions(aws, mark)["ListAccessKeys"] >= 1 and iam_actions(aws, mark)["GetUser"] >= 1
    assert result["rotation"] == "rolled_back" and result["deleted_access_key_ids"] == [begun["access_key_id"]]
    assert keys_of(iam, seed["user_name"]) == {seed["access_key_id"]: "Active"}


def test_another_placements_listing_is_not_trusted(aws, client, iam):
    seeds = seeded(client, WEB, ROOT)
    by_user = listings(iam)
    mark = len(aws.calls())
    begun = apply.begin_rotation(client, WEB, seeds[WEB]["access_key_id"], 0, listing=by_user[seeds[ROOT]["user_name"]],
                                 policy_names=[])
    assert iam_actions(aws, mark) == {"GetUser": 1, "ListAccessKeys": 1, "CreateAccessKey": 1}
    assert begun["user_name"] == seeds[WEB]["user_name"] and "listing" not in begun
    assert len(keys_of(iam, seeds[ROOT]["user_name"])) == 1
