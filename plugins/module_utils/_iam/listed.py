# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the bulk read listed of a placement's user, carried to a rotation's two steps so they need not read it again.

The rotate role lists its hosts' canaries once (canary_key_info, ``key_source: list_access_keys``, under the
estate lease) and hands each due placement's part of that listing to the begin step; the begin step hands
the finish step what IAM holds after its own writes (the planted key and the new one, whose CreateAccessKey
answer it holds).  Each step then decides on those facts and makes only its writes: the begin step mints,
the finish step deletes one key and tags the user, where each used to find the user and list its keys again.

What makes the facts safe to trust is the lease (no other run of the collection changes these users
meanwhile) and the cheap path's own failures: a key the listing missed (IAM lists a new key only after some
seconds) makes CreateAccessKey answer LimitExceeded, and ``calls.mint`` then lists the keys and deletes the
one nobody holds; a finish whose host holds a key the facts do not know reads IAM as before.

A listing is canary_key_info's RV(canaries[]) item cut to what the steps need (``listing_of``): no secret,
only key ids, statuses and creation dates.
"""

from __future__ import annotations

from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping

# The fields of a canary_key_info canary that travel; a key keeps these of its fields.
LISTING_FIELDS = ("user_name", "user_arn", "iam_path", "mapping", "key_history")
KEY_FIELDS = ("access_key_id", "status", "create_date")


def listing_of(canary) -> dict:
    """A canary_key_info canary (RV(canaries[]) item) cut to what a rotation step needs; {} for none.

    {} too for a canary whose keys are not all listed with their id, status and creation date (only
    ``key_source: list_access_keys`` promises them): the step then reads IAM rather than guess.
    """
    if not canary or not canary.get("user_name") or not isinstance(canary.get("mapping"), dict):
        return {}
    keys_listed = [{field: key.get(field) for field in KEY_FIELDS} for key in canary.get("keys") or []]
    if not all(all(key.values()) for key in keys_listed):
        return {}
    listing = {field: canary.get(field) for field in LISTING_FIELDS if canary.get(field) is not None}
    listing["keys"] = keys_listed
    return listing


def usable(listing, placement_id: str) -> bool:
    """Whether ``listing`` describes this placement's user (its placement tag), so that a step may decide on it."""
    return bool(listing and listing.get("user_name") and (listing.get("mapping") or {}).get("placement_id") == placement_id)


def keys(listing) -> list:
    """The listed keys in ListAccessKeys' shape."""
    return [{"AccessKeyId": key["access_key_id"], "Status": key.get("status") or "Active", "CreateDate": key.get("create_date")}
            for key in listing.get("keys") or [] if key.get("access_key_id")]


def user(listing) -> dict:
    """The listed user in GetUser's shape, its tags rebuilt from the mapping and the key history.

    The access-key-id tags name the last key of the history when it is listed (its creation date is the
    listing's); otherwise they are left out, so that a step writes them again as it would for a user
    tagged before they existed.
    """
    mapping = listing.get("mapping") or {}
    tags = {canary_mapping.TAG_MANAGED: canary_mapping.MANAGED_VALUE}
    tags.update({tag: str(mapping[field]) for field, tag in canary_mapping.FIELD_TAGS.items() if mapping.get(field) not in (None, "")})
    history = [key_id for key_id in listing.get("key_history") or [] if key_id]
    if history:
        tags[canary_mapping.TAG_KEY_HISTORY] = " ".join(history)
        created = {key["AccessKeyId"]: key["CreateDate"] for key in keys(listing)}.get(history[-1])
        if created:
            tags[canary_mapping.TAG_ACCESS_KEY_ID] = history[-1]
            tags[canary_mapping.TAG_ACCESS_KEY_CREATED] = canary_mapping.key_timestamp(created)
    return {
        "UserName": listing["user_name"],
        "Arn": listing.get("user_arn") or "",
        "Path": listing.get("iam_path") or "/",
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(tags.items())],
    }


def after_begin(listing, result, new_key) -> dict:
    """The listing the finish step decides on: the keys the begin step left (``result``'s deletions out) and the new one."""
    deleted = set(result.get("deleted_access_key_ids") or [])
    kept = [key for key in listing.get("keys") or [] if key.get("access_key_id") not in deleted]
    created = canary_mapping.utc(new_key["CreateDate"])
    new = {"access_key_id": new_key["AccessKeyId"], "status": new_key.get("Status") or "Active",
           "create_date": created.isoformat() if created else None}
    return dict(listing, keys=[new] + kept)
