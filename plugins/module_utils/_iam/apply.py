# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Applying the plans to IAM: ensure, retire and rotate one placement's user and key.

Each function reads IAM (module_utils/_iam/calls.py), asks a pure plan (module_utils/_iam/plans.py)
and, outside check mode, writes.  Every refusal comes before the first write, and the mint is the last
write, so a failure never leaves behind a minted key whose secret nobody received.
"""

from __future__ import annotations

import datetime

from ansible_collections.canarykeys.aws.plugins.module_utils._iam import calls, listed
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.errors import PlacementError
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.naming import DEFAULT_TEMPLATE, candidate_names, check_iam_path
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.plans import (
    ROTATION_NOT_DUE,
    ROTATION_NOT_PLANTED,
    Placement,
    generation_of,
    plan_present,
    plan_rotation_begin,
    plan_rotation_finish,
    utc_now,
)
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping

GUARD_PUT = "put"
GUARD_DELETE = "delete"


def _user_result(user_name, user, iam_path) -> dict:
    return {
        "user_name": user_name,
        "user_arn": (user or {}).get("Arn", ""),
        "iam_path": (user or {}).get("Path", iam_path),
    }


def guard_change(client, user_name, deny_all: bool, policy_names=None):
    """What the opt-in deny-all guard needs on an existing user: GUARD_PUT, GUARD_DELETE or None.

    By default a canary has no policy at all, so that its denied calls read "because no identity-based
    policy allows", as any least-privilege user's do; ``deny_all`` puts the collection's inline policy
    back (docs/threat_model.md has the trade-off).  Users seeded before carry it: it goes on their next
    seed or rotation.  ``policy_names``: the user's inline policy names when the caller knows them
    (canary_key_info's bulk read lists them), else one ListUserPolicies read tells.
    """
    if policy_names is None:
        policy_names = calls.inline_policy_names(client, user_name)
    held = calls.DENY_ALL_POLICY_NAME in policy_names
    if deny_all and not held:
        return GUARD_PUT
    if held and not deny_all:
        return GUARD_DELETE
    return None


def apply_guard(client, user_name, change):
    if change == GUARD_PUT:
        calls.put_deny_all(client, user_name)
    elif change == GUARD_DELETE:
        calls.delete_deny_all(client, user_name)


def ensure_present(client, placement: Placement, planted_key_id="", template=DEFAULT_TEMPLATE, iam_path="/", check_mode=False,
                   deny_all=False, policy_names=None, known_user_name=""):
    """Make the placement's user exist with exactly one active key; mint one only when the host holds none of it.

    Order matters: every refusal comes before the first write, and the mint is the last write, so a
    failure never leaves behind a minted key whose secret nobody received.
    """
    iam_path = check_iam_path(iam_path)
    candidates = candidate_names(placement.host, placement.path, placement.profile, template)
    pid = placement.placement_id
    planted_key_id = planted_key_id or ""
    refusal = PlacementError(
        f"profile {placement.profile} in {placement.path} on {placement.host} holds access key {planted_key_id}, "
        "which is not this placement's canary key; refusing to mint: choose another profile"
    )

    # The user the bulk read listed for this placement, whatever its name: a user named before the
    # naming changed keeps its name even when its host lost the key that would lead to it.
    known = calls.get_user(client, known_user_name) if known_user_name else None
    if calls.is_ours(known, pid):
        index, user_name, user = 0, known["UserName"], known
    else:
        index, user_name, user = calls.resolve_user(client, candidates, pid)
    if user is None and planted_key_id:
        user = calls.key_owner(client, planted_key_id, pid)
        if user is None:
            raise refusal
    keys, dead_key_id = [], None
    if user is not None:
        user_name = user["UserName"]
        tags = user.get("Tags")
        # A key recorded seconds ago may not be listed yet: a placement must not take it for gone.
        keys = calls.list_keys(client, user_name, expected=calls.recent_recorded_key(tags))
        active = [key["AccessKeyId"] for key in keys if key["Status"] == "Active"]
        if planted_key_id and planted_key_id not in active:
            # Gone or inactive.  Its own key (one this placement was handed, or an inactive key of its user) is dead
            # and re-planted; any other key is someone's real key, never replaced.
            if planted_key_id not in canary_mapping.handed_key_ids(tags) and planted_key_id not in [k["AccessKeyId"] for k in keys]:
                raise refusal
            dead_key_id = planted_key_id

    plan = plan_present(placement, user, keys, planted_key_id, utc_now())
    guard = (GUARD_PUT if deny_all else None) if user is None else guard_change(client, user_name, deny_all, policy_names)
    result = dict(
        _user_result(user_name, user, iam_path),
        placement_id=pid,
        changed=bool(plan["mint"] or plan["orphans"] or plan["tag_update"] or guard),
        deny_all=bool(deny_all),
        minted=plan["mint"],
        dead_access_key_id=dead_key_id,
        access_key_id=None if plan["mint"] else planted_key_id,
        deleted_access_key_ids=plan["orphans"],
        generation=plan["generation"],
        user_created=user is None,
        mapping=canary_mapping.mapping_from_tags(plan["tags_after"]),
    )
    if check_mode or not result["changed"]:
        return result

    if user is None:
        user_name, user, created = calls.create_user(client, candidates, index, pid, iam_path, plan["tags_after"])
        if not created:
            # Another run created this placement's user between our read and our write: decide again on it.
            return ensure_present(client, placement, planted_key_id, template, iam_path, check_mode, deny_all)
        result.update(_user_result(user_name, user, iam_path))
        apply_guard(client, user_name, guard)
    else:
        for key_id in plan["orphans"]:
            calls.delete_key(client, user_name, key_id)
        # Before the mint: with the guard on, a key is never handed out by a user whose deny-all was removed.
        apply_guard(client, user_name, guard)
        if plan["tag_update"]:
            calls.tag_user(client, user_name, plan["tag_update"])
    if plan["mint"]:
        calls.mint(client, user_name, result, tags=plan["tags_after"])
    return result


def ensure_absent(client, placement: Placement, access_key_id="", template=DEFAULT_TEMPLATE, iam_path="/", check_mode=False,
                  user_name=""):
    """Delete the placement's key (``access_key_id`` only, if given; else all), then the user once it holds none.

    ``user_name`` names the user directly (as canary_key_info lists it) instead of resolving the placement's
    names: the tags hold sanitised values, which may not give back the names.  It must be a canary user.
    """
    iam_path = check_iam_path(iam_path)
    pid = placement.placement_id
    result = dict(placement_id=pid, minted=False, changed=False, deleted_access_key_ids=[], user_deleted=False,
                  access_key_id=None, generation=0, mapping=None, user_name="", user_arn="", iam_path=iam_path)

    if user_name:
        # Named by a listing that saw it: a NoSuchEntity is a user created seconds ago, not a user gone.
        user = calls.until_consistent(lambda: calls.get_user(client, user_name), lambda found: found is not None)
        if user is not None and not canary_mapping.is_managed(user.get("Tags")):
            raise PlacementError(f"IAM user {user_name} is not a canary user (no {canary_mapping.TAG_MANAGED} tag); refusing to delete it")
    else:
        candidates = candidate_names(placement.host, placement.path, placement.profile, template)
        try:
            _index, user_name, user = calls.resolve_user(client, candidates, pid)
        except PlacementError:
            user = None  # every name is someone else's: this placement has no user there
        if user is None and access_key_id:
            user = calls.key_owner(client, access_key_id, pid)
    if user is None:
        return result
    user_name = user["UserName"]
    tags = canary_mapping.tags_list_to_dict(user.get("Tags"))
    result.update(_user_result(user_name, user, iam_path), generation=generation_of(tags), mapping=canary_mapping.mapping_from_tags(tags))

    key_ids = [key["AccessKeyId"] for key in calls.list_keys(client, user_name, expected=calls.recent_recorded_key(tags))]
    doomed = [key_id for key_id in key_ids if not access_key_id or key_id == access_key_id]
    remaining = [key_id for key_id in key_ids if key_id not in doomed]
    result.update(deleted_access_key_ids=doomed, user_deleted=not remaining, changed=bool(doomed) or not remaining)
    if remaining:
        result["access_key_id"] = remaining[0]
    if check_mode:
        return result
    for key_id in doomed:
        calls.delete_key(client, user_name, key_id)
    if not remaining:
        policies = calls.call(client, "list_user_policies", f"Failed to list the inline policies of IAM user {user_name}", UserName=user_name)
        for policy_name in policies["PolicyNames"]:
            calls.call(client, "delete_user_policy", f"Failed to delete inline policy {policy_name} of IAM user {user_name}",
                       tolerate=("NoSuchEntity",), UserName=user_name, PolicyName=policy_name)
        _delete_user(client, user_name, access_key_id, result)
    return result


def _delete_user(client, user_name, access_key_id, result):
    """DeleteUser; on DeleteConflict (the user holds a key that ListAccessKeys did not show yet: one minted
    seconds ago), list again until it shows, delete it and try again.  With ``access_key_id`` only that key was
    to go: the user then stays, with the key it still holds."""
    for attempt in (1, 2):
        try:
            calls.call(client, "delete_user", f"Failed to delete IAM user {user_name}", tolerate=("NoSuchEntity",), UserName=user_name)
            return
        except calls.IAMCallError as error:
            if attempt == 2 or calls.error_code(error.exception) != "DeleteConflict":
                raise
        keys = [key["AccessKeyId"] for key in calls.list_keys(client, user_name, at_least=1)]
        if access_key_id:
            result.update(user_deleted=False, access_key_id=keys[0] if keys else None)
            return
        for key_id in keys:
            calls.delete_key(client, user_name, key_id)
            result["deleted_access_key_ids"].append(key_id)


def find_user(client, candidates, placement_id: str, key_id=""):
    """``(name, user)`` of the placement's existing user, by its names or else by the key it holds; ``user`` None when none."""
    try:
        _index, name, user = calls.resolve_user(client, candidates, placement_id)
    except PlacementError:
        name, user = candidates[0], None  # every name is someone else's; the key may still lead to ours
    if user is None and key_id:
        user = calls.key_owner(client, key_id, placement_id)
    return (user["UserName"], user) if user is not None else (name, None)


def begin_rotation(client, placement: Placement, planted_key_id="", max_age_days=0, template=DEFAULT_TEMPLATE, iam_path="/",
                   check_mode=False, now=None, deny_all=False, policy_names=None, listing=None):
    """Mint a second key for the placement's user, keeping the planted one, when the planted key is due.

    Never creates a user and never refuses: a placement that does not hold its active key is reported
    as not planted and left alone.  Keys the host does not hold are deleted, before the mint (a user
    holds at most two); the mint is the last write, as in ``ensure_present``.

    ``listing``: the user and keys as the bulk read listed them (module_utils/_iam/listed.py); the step then
    decides on them without reading IAM, and returns in ``listing`` what the finish step decides on.
    """
    iam_path = check_iam_path(iam_path)
    if max_age_days < 0:
        raise PlacementError(f"max_age_days must be 0 or more, not {max_age_days}")
    candidates = candidate_names(placement.host, placement.path, placement.profile, template)
    pid = placement.placement_id
    planted_key_id = planted_key_id or ""
    trusted = listed.usable(listing, pid)
    if trusted:
        user_name, user = listing["user_name"], listed.user(listing)
    else:
        user_name, user = find_user(client, candidates, pid, planted_key_id)
    result = dict(
        _user_result(user_name, user, iam_path),
        placement_id=pid, changed=False, minted=False, rotation=ROTATION_NOT_PLANTED, access_key_id=None, rotated_key_id=None,
        key_age_days=None, deleted_access_key_ids=[], generation=0, mapping=None,
    )
    if user is None:
        return result
    tags = canary_mapping.tags_list_to_dict(user.get("Tags"))
    # The bulk read listed the keys seconds ago, and waited as this read would for a key recorded less than a minute ago.
    keys = listed.keys(listing) if trusted else calls.list_keys(client, user_name, expected=calls.recent_recorded_key(tags))
    plan = plan_rotation_begin(keys, planted_key_id, max_age_days, now or datetime.datetime.now(datetime.timezone.utc))
    result.update(
        rotation=plan["rotation"],
        key_age_days=None if plan["age_days"] is None else round(plan["age_days"], 3),
        generation=generation_of(tags) + (1 if plan["mint"] else 0),
        mapping=canary_mapping.mapping_from_tags(tags),
    )
    result["deleted_access_key_ids"] = plan["orphans"]
    # A placement that is not planted is not ours to change (as above); the others migrate here too.
    guard = None if plan["rotation"] == ROTATION_NOT_PLANTED else guard_change(client, user_name, deny_all, policy_names)
    result["deny_all"] = bool(deny_all)
    if not plan["mint"]:
        result.update(changed=bool(plan["orphans"] or guard),
                      access_key_id=planted_key_id if plan["rotation"] == ROTATION_NOT_DUE else None)
    else:
        result.update(changed=True, minted=True, rotated_key_id=planted_key_id)
    if check_mode:
        return result
    for key_id in plan["orphans"]:
        calls.delete_key(client, user_name, key_id)
    # Before the mint, as in ensure_present.
    apply_guard(client, user_name, guard)
    if not plan["mint"]:
        return result
    # The tags keep naming the planted key until finish_rotation knows which key the host kept.
    new_key = calls.mint(client, user_name, result, record=False, keep=(planted_key_id,))
    if trusted:
        result["listing"] = listed.after_begin(listing, result, new_key)
    return result


def finish_rotation(client, placement: Placement, planted_key_id="", rotated_key_id="", template=DEFAULT_TEMPLATE, iam_path="/",
                    check_mode=False, deny_all=None, policy_names=None, listing=None):
    """Keep the key the host holds (``planted_key_id``, as read back after the write) and delete the other one.

    ``deny_all`` and ``policy_names`` are taken so that both steps of a rotation take the same options;
    the guard was settled by the begin step, before its mint.  ``listing``: what the begin step left (its
    RV(listing)); the step decides on it without reading IAM, unless the host holds a key it does not know.
    """
    del deny_all, policy_names
    iam_path = check_iam_path(iam_path)
    if not rotated_key_id:
        raise PlacementError("rotated_key_id is required to finish a rotation: it is the key the profile held before")
    candidates = candidate_names(placement.host, placement.path, placement.profile, template)
    pid = placement.placement_id
    planted_key_id = planted_key_id or ""
    known = {key["AccessKeyId"] for key in listed.keys(listing)} if listed.usable(listing, pid) else set()
    if rotated_key_id in known and planted_key_id in known | {""}:
        user_name, user, keys = listing["user_name"], listed.user(listing), listed.keys(listing)
    else:
        user_name, user, keys = _finish_read(client, placement, candidates, planted_key_id, rotated_key_id)
    plan = plan_rotation_finish(placement, user, keys, planted_key_id, rotated_key_id)
    result = dict(
        _user_result(user_name, user, iam_path),
        placement_id=pid, changed=bool(plan["doomed"] or plan["tag_update"]), minted=False, rotation=plan["rotation"],
        access_key_id=plan["keep"], rotated_key_id=rotated_key_id, deleted_access_key_ids=plan["doomed"],
        generation=plan["generation"], mapping=canary_mapping.mapping_from_tags(plan["tags_after"]),
    )
    if check_mode:
        return result
    for key_id in plan["doomed"]:
        calls.delete_key(client, user_name, key_id)
    if plan["tag_update"]:
        calls.tag_user(client, user_name, plan["tag_update"])
    return result


def _finish_read(client, placement: Placement, candidates, planted_key_id, rotated_key_id):
    """``(name, user, keys)`` of the placement's user, read from IAM: a finish without a listing it can trust."""
    pid = placement.placement_id
    user_name, user = find_user(client, candidates, pid, rotated_key_id)
    if user is None:
        user_name, user = find_user(client, candidates, pid, planted_key_id)
    if user is None:
        raise PlacementError(f"profile {placement.profile} in {placement.path} on {placement.host} has no canary IAM user; nothing to finish")
    # The key the host now holds was minted by begin seconds ago: ListAccessKeys may not list it yet.
    expected = [planted_key_id] if planted_key_id != rotated_key_id else []
    return user_name, user, calls.list_keys(client, user_name, expected=expected)
