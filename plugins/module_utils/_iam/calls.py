# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The IAM calls of one canary placement: one call wrapper, and the reads and writes built on it.

Every function takes an IAM client, which must be amazon.aws's retrying wrapper
(``module.client("iam", retry_decorator=AWSRetry.jittered_backoff())``) because every call passes
``aws_retry=True``.  Nothing is kept in module-level state.

The user's tags are the record of truth (canary_mapping); the ``canarykeys:placement`` tag is what
makes a user *ours*: a user with the drawn name but another tag (or none) belongs to someone else and
is never touched.
"""

from __future__ import annotations

import re

try:
    import botocore.exceptions
except ImportError:
    pass  # AnsibleAWSModule reports the missing dependency

from ansible_collections.canarykeys.aws.plugins.module_utils._iam.errors import IAMCallError, PlacementError
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared.iam_reads import error_code

ACCESS_KEY_ID_PATTERN = re.compile(r"^[A-Z0-9]{16,128}$")

DENY_ALL_POLICY_NAME = "default"
DENY_ALL_POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}'


def call(client, operation, message, tolerate=(), **kwargs):
    """One IAM call with retries; ``None`` for an error code in ``tolerate``, IAMCallError otherwise."""
    try:
        return getattr(client, operation)(aws_retry=True, **kwargs)
    except botocore.exceptions.ClientError as e:
        if error_code(e) in tolerate:
            return None
        raise IAMCallError(message, e) from e
    except botocore.exceptions.BotoCoreError as e:
        raise IAMCallError(message, e) from e


def get_user(client, user_name):
    """The user (with its Tags, which GetUser returns) or None."""
    response = call(client, "get_user", f"Failed to get IAM user {user_name}", tolerate=("NoSuchEntity",), UserName=user_name)
    return None if response is None else response["User"]


def is_ours(user, placement_id: str) -> bool:
    return canary_mapping.tags_list_to_dict((user or {}).get("Tags")).get(canary_mapping.TAG_PLACEMENT) == placement_id


def resolve_user(client, candidates, placement_id: str, start=0):
    """``(index, name, user)`` of the first candidate from ``start`` that is free (user None) or ours; raises PlacementError."""
    for index in range(start, len(candidates)):
        name = candidates[index]
        user = get_user(client, name)
        if user is None or is_ours(user, placement_id):
            return index, name, user
    raise PlacementError(
        f"every candidate IAM user name of this placement is taken by another user ({', '.join(candidates)}); "
        "set user_name_template to a different pattern"
    )


def key_owner(client, access_key_id, placement_id: str):
    """The user of ``placement_id`` that owns ``access_key_id``, or None (unknown key, other account, someone else's).

    One read finds a placement's user wherever it sits in the candidate sequence, e.g. when a user that
    pushed it to a later candidate has since been deleted.
    """
    if not access_key_id or not ACCESS_KEY_ID_PATTERN.match(access_key_id):
        return None
    response = call(
        client,
        "get_access_key_last_used",
        f"Failed to look up the owner of access key {access_key_id}",
        tolerate=("NoSuchEntity", "AccessDenied", "AccessDeniedException", "ValidationError", "InvalidInput"),
        AccessKeyId=access_key_id,
    )
    owner = (response or {}).get("UserName")
    if not owner:
        return None
    user = get_user(client, owner)
    return user if is_ours(user, placement_id) else None


def list_keys(client, user_name) -> list:
    # A user holds at most two keys, so one page is all of them.
    response = call(client, "list_access_keys", f"Failed to list the access keys of IAM user {user_name}", UserName=user_name)
    return response["AccessKeyMetadata"]


def tag_list(tags: dict) -> list:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def tag_user(client, user_name, tags: dict, message=""):
    call(client, "tag_user", message or f"Failed to tag IAM user {user_name}", UserName=user_name, Tags=tag_list(tags))


def tag_planted_key(client, user_name, key, result):
    """Record the freshly minted key on its user, after the mint.

    A failure here must not lose the key: its secret is in ``result`` and only the host should ever
    hold it.  The tags only spare the inventory a ListAccessKeys call (it checks them against the
    credential report), so a failure becomes a warning and the key is handed out as usual.
    """
    try:
        tag_user(client, user_name, canary_mapping.planted_key_tags(key["AccessKeyId"], key["CreateDate"]),
                 f"Failed to record access key {key['AccessKeyId']} on IAM user {user_name}")
    except IAMCallError as e:
        result.setdefault("warnings", []).append(
            f"{e.message}: {e.exception}. The key was minted and is handed out; canary_key_info lists this user with "
            "iam:ListAccessKeys until the tag is written by its next rotation")


def delete_key(client, user_name, access_key_id):
    call(
        client,
        "delete_access_key",
        f"Failed to delete access key {access_key_id} of IAM user {user_name}",
        tolerate=("NoSuchEntity",),
        UserName=user_name,
        AccessKeyId=access_key_id,
    )


def put_deny_all(client, user_name):
    call(
        client,
        "put_user_policy",
        f"Failed to put the deny-all inline policy on IAM user {user_name}",
        UserName=user_name,
        PolicyName=DENY_ALL_POLICY_NAME,
        PolicyDocument=DENY_ALL_POLICY,
    )


def create_user(client, candidates, index, placement_id, iam_path, tags):
    """Create the candidate at ``index``: ``(name, user, created)``.

    When another run took the name between our read and this write (forks seeding two hosts with the
    same short name), that name is checked again and, if it is not ours, the next candidates are tried.
    """
    while True:
        name = candidates[index]
        response = call(
            client,
            "create_user",
            f"Failed to create IAM user {name}",
            tolerate=("EntityAlreadyExists",),
            UserName=name,
            Path=iam_path,
            Tags=tag_list(tags),
        )
        if response is not None:
            return name, response["User"], True
        user = get_user(client, name)
        if user is not None and is_ours(user, placement_id):
            return user["UserName"], user, False
        index, name, user = resolve_user(client, candidates, placement_id, start=index + 1)
        if user is not None:
            return user["UserName"], user, False


def mint(client, user_name, result, record=True):
    """Create the user's new key and put its id and secret in ``result``; ``record``: also name it in the user's tags."""
    key = call(client, "create_access_key", f"Failed to create an access key for IAM user {user_name}", UserName=user_name)["AccessKey"]
    result["access_key_id"] = key["AccessKeyId"]
    result["secret_access_key"] = key["SecretAccessKey"]
    if record:
        tag_planted_key(client, user_name, key, result)
