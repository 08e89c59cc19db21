# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a placement's IAM user must undergo, decided from what IAM holds: pure functions, no AWS calls.

``plan_present`` is the seed's ensure; ``plan_rotation_begin`` and ``plan_rotation_finish`` the two steps
of a rotation (module_utils/_iam/apply.py reads IAM, calls them and applies their answer).

A rotation replaces the planted key with a new one without a moment when the host holds no working
key: the begin step mints a second key and keeps the planted one (IAM allows two per user), the host
is written and read back, then the finish step keeps whichever key the host holds and deletes the
other.  The mapping's generation and planted-at move only in the finish, once the new key is in
place, so a rotation that rolls back leaves the record as it was.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from ansible_collections.canarykeys.aws.plugins.module_utils._iam.errors import PlacementError
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping

# Tags compared on every run; planted-at and generation change only when a key is minted.
_STABLE_TAGS = (
    canary_mapping.TAG_MANAGED,
    canary_mapping.TAG_PLACEMENT,
    canary_mapping.TAG_HOST,
    canary_mapping.TAG_PATH,
    canary_mapping.TAG_PROFILE,
    canary_mapping.TAG_REMINDER,
    canary_mapping.TAG_PLANTED_BY,
)

ROTATION_STARTED = "started"
ROTATION_NOT_DUE = "not_due"
ROTATION_NOT_PLANTED = "not_planted"
ROTATION_COMPLETED = "completed"
ROTATION_ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class Placement:
    host: str
    path: str
    profile: str
    reminder: str = ""
    planted_by: str = ""

    @property
    def placement_id(self) -> str:
        return canary_mapping.placement_id(self.host, self.path, self.profile)


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def generation_of(tags: dict) -> int:
    try:
        return int(tags.get(canary_mapping.TAG_GENERATION) or 1)
    except ValueError:
        return 1


def tags_to_update(current: dict, desired: dict) -> dict:
    """The stable mapping tags whose value differs.  An empty reminder or planted-by leaves the stored one."""
    return {key: desired[key] for key in _STABLE_TAGS if key in desired and current.get(key) != desired[key]}


def planted_key_tag_update(current: dict, key) -> dict:
    """The key-id tags to write so that they name ``key`` (a ListAccessKeys or CreateAccessKey entry); {} when they do.

    The key history joins the write when the key changes; a user tagged before the history existed is not
    written for it alone (``handed_key_ids`` counts its access-key-id tag), so a re-run stays without writes.
    """
    desired = canary_mapping.planted_key_tags(key["AccessKeyId"], key["CreateDate"], current)
    if all(current.get(name) == desired[name] for name in (canary_mapping.TAG_ACCESS_KEY_ID, canary_mapping.TAG_ACCESS_KEY_CREATED)):
        return {}
    return {name: value for name, value in desired.items() if current.get(name) != value}


def plan_present(placement: Placement, user, keys, planted_key_id, now) -> dict:
    """What ``state=present`` must do, given what IAM holds (pure; ``user`` None when it does not exist yet).

    ``mint``: no key of the user is both planted and active.  ``orphans``: keys to delete (every key but the
    planted one, and the planted one too when it is inactive: a dead key the seed re-plants; IAM allows two per
    user, so they go before a mint).  ``tag_update``:
    the tags to write (planted-at and generation only with a mint).
    """
    key_ids = [key["AccessKeyId"] for key in keys]
    planted_active = any(key["AccessKeyId"] == planted_key_id and key["Status"] == "Active" for key in keys)
    current = canary_mapping.tags_list_to_dict((user or {}).get("Tags"))
    generation = generation_of(current)
    desired = canary_mapping.mapping_tags(
        placement.host, placement.path, placement.profile, placement.reminder, "", placement.planted_by, generation
    )
    mint = not planted_active
    tag_update = tags_to_update(current, desired)
    if not mint:
        # Estates seeded before the key-id tags existed get them on their next run through here.
        planted = next(key for key in keys if key["AccessKeyId"] == planted_key_id)
        tag_update.update(planted_key_tag_update(current, planted))
    if mint:
        had_key = bool(keys) or canary_mapping.TAG_PLANTED_AT in current
        generation = generation + 1 if user is not None and had_key else 1
        tag_update.update({canary_mapping.TAG_PLANTED_AT: now, canary_mapping.TAG_GENERATION: str(generation)})
    after = dict(desired, **tag_update) if user is None else dict(current, **tag_update)
    return {
        "mint": mint,
        "orphans": [key_id for key_id in key_ids if key_id != planted_key_id or not planted_active],
        "tag_update": tag_update,
        "generation": generation,
        "tags_after": after,
    }


def _utc_datetime(value) -> datetime.datetime:
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def key_age_days(key, now: datetime.datetime) -> float:
    """Days (with fractions) since IAM created ``key`` (a ListAccessKeys entry)."""
    return max(0.0, (now - _utc_datetime(key["CreateDate"])).total_seconds() / 86400)


def plan_rotation_begin(keys, planted_key_id, max_age_days, now) -> dict:
    """Pure: whether the planted key is due, and which keys the host does not hold, to delete.

    Only a placement whose profile holds the user's active key rotates; anything else is the seed's
    business (or the reconciliation's), never a rotation's.  Keys the host does not hold go whether the
    planted key is due or not: they make room for the second key, and they are what a rotation that
    died between its write and its finish leaves behind.
    """
    planted = next((key for key in keys if planted_key_id and key["AccessKeyId"] == planted_key_id and key["Status"] == "Active"), None)
    if planted is None:
        return {"rotation": ROTATION_NOT_PLANTED, "mint": False, "orphans": [], "age_days": None}
    age = key_age_days(planted, now)
    due = age >= max_age_days
    return {
        "rotation": ROTATION_STARTED if due else ROTATION_NOT_DUE,
        "mint": due,
        "orphans": [key["AccessKeyId"] for key in keys if key["AccessKeyId"] != planted_key_id],
        "age_days": age,
    }


def plan_rotation_finish(placement: Placement, user, keys, planted_key_id, rotated_key_id) -> dict:
    """Pure: which key survives a rotation and what the mapping records afterwards.

    The key the host holds survives when it is an active key of the user; the old key survives when the
    host holds it, or nothing (the host never took the new one).  A host holding a key IAM does not list,
    while IAM lists no key but the old one, may hold the new key not yet visible to ListAccessKeys: that is
    never a roll-back (keeping the old key and recording it would be false); nothing is deleted and the
    placement fails, for the next run to settle.  The mapping advances only when the old key still existed, so a
    repeated finish does not count the same rotation twice.
    """
    by_id = {key["AccessKeyId"]: key for key in keys}
    if planted_key_id and by_id.get(planted_key_id, {}).get("Status") == "Active":
        keep = planted_key_id
    elif planted_key_id and planted_key_id != rotated_key_id and not set(by_id) - {rotated_key_id}:
        raise PlacementError(
            f"profile {placement.profile} in {placement.path} on {placement.host} holds access key {planted_key_id}, which its "
            f"IAM user does not list as active (IAM may not show a new key yet); nothing was deleted: the next rotation or "
            "seed run settles it"
        )
    elif rotated_key_id in by_id:
        keep = rotated_key_id
    else:
        raise PlacementError(
            f"the IAM user of profile {placement.profile} in {placement.path} on {placement.host} holds neither the key the profile "
            f"holds ({planted_key_id or 'none'}) nor the rotated key {rotated_key_id}; nothing was deleted"
        )
    current = canary_mapping.tags_list_to_dict((user or {}).get("Tags"))
    generation = generation_of(current)
    tag_update = planted_key_tag_update(current, by_id[keep])
    if keep != rotated_key_id and rotated_key_id in by_id:
        desired = canary_mapping.mapping_tags(placement.host, placement.path, placement.profile, placement.reminder, "",
                                              placement.planted_by, generation)
        tag_update.update(tags_to_update(current, desired))
        generation += 1
        planted_at = canary_mapping.key_timestamp(by_id[keep]["CreateDate"])
        tag_update.update({canary_mapping.TAG_PLANTED_AT: planted_at, canary_mapping.TAG_GENERATION: str(generation)})
    return {
        "keep": keep,
        "doomed": [key_id for key_id in by_id if key_id != keep],
        "rotation": ROTATION_ROLLED_BACK if keep == rotated_key_id else ROTATION_COMPLETED,
        "tag_update": tag_update,
        "generation": generation,
        "tags_after": dict(current, **tag_update),
    }
