# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mapping record: which placement a canary IAM user stands for.

The IAM user's tags are the record of truth (see docs/design.md, "The mapping
record").  This file is standard library only and imports nothing from
Ansible, because the same file is packaged verbatim into the alert Lambda:
one source, never two copies that drift.
"""

from __future__ import annotations

import datetime
import hashlib

TAG_PREFIX = "canarykeys:"
TAG_MANAGED = TAG_PREFIX + "managed"
TAG_PLACEMENT = TAG_PREFIX + "placement"
TAG_HOST = TAG_PREFIX + "host"
TAG_PATH = TAG_PREFIX + "path"
TAG_PROFILE = TAG_PREFIX + "profile"
TAG_REMINDER = TAG_PREFIX + "reminder"
TAG_PLANTED_AT = TAG_PREFIX + "planted-at"
TAG_PLANTED_BY = TAG_PREFIX + "planted-by"
TAG_GENERATION = TAG_PREFIX + "generation"
# The newest use the last-used detector has already alerted on (ISO 8601).
TAG_LAST_USED_REPORTED = TAG_PREFIX + "last-used-reported"
# The key the placement was last handed (id and IAM's CreateDate).  IAM has no bulk read that returns
# key ids; with these two tags the inventory can name each key of the credential report without a
# ListAccessKeys call per user.  They are a hint checked against the report, never trusted alone.
TAG_ACCESS_KEY_ID = TAG_PREFIX + "access-key-id"
TAG_ACCESS_KEY_CREATED = TAG_PREFIX + "access-key-created"
# The last KEY_HISTORY_MAX key ids the placement was handed, oldest first, space-separated, written in
# the same TagUser call as the access-key-id tag.  A profile holding one of them holds this placement's
# own key, even once IAM no longer has it (deleted by someone else): the seed re-plants such a profile,
# where a key id it was never handed is someone's real key and is refused.  8 ids of 20 characters fit
# IAM's 256-character tag value.
TAG_KEY_HISTORY = TAG_PREFIX + "key-history"
KEY_HISTORY_MAX = 8

MANAGED_VALUE = "true"

# Mapping field name -> tag key; the alert payload and the reports use these field names.
FIELD_TAGS = {
    "placement_id": TAG_PLACEMENT,
    "host": TAG_HOST,
    "path": TAG_PATH,
    "profile": TAG_PROFILE,
    "reminder": TAG_REMINDER,
    "planted_at": TAG_PLANTED_AT,
    "planted_by": TAG_PLANTED_BY,
    "generation": TAG_GENERATION,
    "last_used_reported": TAG_LAST_USED_REPORTED,
}

# IAM tag values allow Unicode letters, digits, white space and _ . : / = + - @, at most 256
# characters; a value outside that set is rejected by IAM with InvalidInput.
TAG_VALUE_MAX = 256
_TAG_PUNCTUATION = frozenset("_.:/=+-@ ")
TAG_REPLACEMENT = "_"


def sanitize_tag_value(value) -> str:
    """Make any value acceptable to IAM as a tag value.

    Characters outside IAM's set become ``_`` and the result is cut to 256
    characters.  The mapping stays readable (``/home/deploy/.aws/credentials``
    passes unchanged); exact matching uses the placement id instead, which is
    computed from the raw values.
    """
    text = "" if value is None else str(value)
    cleaned = "".join(
        ch if (ch.isalnum() or ch in _TAG_PUNCTUATION) else TAG_REPLACEMENT for ch in text
    )
    return cleaned[:TAG_VALUE_MAX]


def placement_id(host: str, path: str, profile: str) -> str:
    """A stable identifier of one placement (host + file + profile).

    Computed from the raw, unsanitised values so that two placements whose
    tags sanitise to the same text still differ.
    """
    raw = "\0".join((host, path, profile)).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:20]


def tags_list_to_dict(tags) -> dict:
    """IAM returns tags as ``[{"Key": k, "Value": v}]``; accept that or a dict."""
    if isinstance(tags, dict):
        return dict(tags)
    return {tag["Key"]: tag.get("Value", "") for tag in tags or []}


def is_managed(tags) -> bool:
    return tags_list_to_dict(tags).get(TAG_MANAGED) == MANAGED_VALUE


def mapping_tags(
    host: str,
    path: str,
    profile: str,
    reminder: str = "",
    planted_at: str = "",
    planted_by: str = "",
    generation: int = 1,
) -> dict:
    """The tag dict that records one placement on its IAM user."""
    tags = {
        TAG_MANAGED: MANAGED_VALUE,
        TAG_PLACEMENT: placement_id(host, path, profile),
        TAG_HOST: sanitize_tag_value(host),
        TAG_PATH: sanitize_tag_value(path),
        TAG_PROFILE: sanitize_tag_value(profile),
        TAG_GENERATION: str(int(generation)),
    }
    optional = {TAG_REMINDER: reminder, TAG_PLANTED_AT: planted_at, TAG_PLANTED_BY: planted_by}
    for key, value in optional.items():
        if value:
            tags[key] = sanitize_tag_value(value)
    return tags


def key_timestamp(value) -> str:
    """IAM's key CreateDate to the second, the precision of the credential report, as a tag value."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def handed_key_ids(tags) -> list:
    """The key ids a placement was handed, oldest first: its key-history tag, and the access-key-id tag of a
    user tagged before the history existed."""
    tag_dict = tags_list_to_dict(tags)
    handed = [key_id for key_id in tag_dict.get(TAG_KEY_HISTORY, "").split() if key_id]
    current = tag_dict.get(TAG_ACCESS_KEY_ID, "")
    if current and current not in handed:
        handed.append(current)
    return handed[-KEY_HISTORY_MAX:]


def planted_key_tags(access_key_id: str, create_date, tags=None) -> dict:
    """The tags that name the key a placement was handed (``create_date`` as IAM returned it).

    ``tags``: the user's current tags, whose key history the new id joins (the oldest id drops out).
    """
    history = [key_id for key_id in handed_key_ids(tags) if key_id != access_key_id] + [access_key_id]
    return {TAG_ACCESS_KEY_ID: access_key_id, TAG_ACCESS_KEY_CREATED: key_timestamp(create_date),
            TAG_KEY_HISTORY: " ".join(history[-KEY_HISTORY_MAX:])}


def planted_key_from_tags(tags):
    """``(access_key_id, created datetime)`` recorded on a user, or None when either tag is missing or unreadable."""
    tag_dict = tags_list_to_dict(tags)
    key_id = tag_dict.get(TAG_ACCESS_KEY_ID, "")
    created = utc(tag_dict.get(TAG_ACCESS_KEY_CREATED))
    if not key_id or created is None:
        return None
    return key_id, created


def mapping_from_tags(tags) -> dict | None:
    """The mapping fields of a managed user, or None for a user we do not manage."""
    tag_dict = tags_list_to_dict(tags)
    if tag_dict.get(TAG_MANAGED) != MANAGED_VALUE:
        return None
    mapping = {field: tag_dict.get(key, "") for field, key in FIELD_TAGS.items()}
    try:
        mapping["generation"] = int(mapping["generation"] or 1)
    except ValueError:
        mapping["generation"] = 1
    return mapping


# What IAM and its credential report write where there is no date or value.
NO_VALUE = frozenset(("", "N/A", "n/a", "not_supported", "no_information"))


def utc(value):
    """A timezone-aware UTC datetime from a datetime or an ISO 8601 string; None for IAM's placeholders."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        parsed = value
    else:
        text = str(value).strip()
        if text in NO_VALUE:
            return None
        try:
            parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc)
