# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The IAM calls of one canary placement: one call wrapper, and the reads and writes built on it.

Every function takes an IAM client, which must be amazon.aws's retrying wrapper (``iam_client(module)``)
because every call passes ``aws_retry=True``.  Nothing is kept in module-level state.

IAM is eventually consistent: for some seconds after CreateUser or CreateAccessKey, reads may answer
NoSuchEntity and ListAccessKeys may leave the new key out.  Where a read must see what this placement
just made (the key its profile now holds, the user whose name CreateUser says is taken), it is read
again with growing waits (``until_consistent``) instead of being taken as the truth.

The user's tags are the record of truth (canary_mapping); the ``canarykeys:placement`` tag is what
makes a user *ours*: a user with the drawn name but another tag (or none) belongs to someone else and
is never touched.
"""

from __future__ import annotations

import datetime
import re
import time

try:
    import botocore.exceptions
except ImportError:
    pass  # AnsibleAWSModule reports the missing dependency

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.canarykeys.aws.plugins.module_utils._iam.errors import IAMCallError, PlacementError
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared.iam_reads import error_code

ACCESS_KEY_ID_PATTERN = re.compile(r"^[A-Z0-9]{16,128}$")

# IAM's own 500 code, which AWSRetry.jittered_backoff() does not retry by default (it knows InternalFailure).
EXTRA_RETRY_CODES = ("ServiceFailure",)
# Seconds between reads that wait for IAM to show what was just created ("usually seconds", IAM's docs).
CONSISTENCY_WAITS = (0.5, 1.0, 2.0, 4.0, 8.0)
# A key recorded on its user less than this long ago may not be listed yet.
RECENT = datetime.timedelta(seconds=60)

# The opt-in guard (canary_key's deny_all): its name is how the next run finds and removes it.
DENY_ALL_POLICY_NAME = "default"
DENY_ALL_POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}'


def iam_client(module):
    """The modules' IAM client: amazon.aws's retrying wrapper, which also retries IAM's 500 ``ServiceFailure``."""
    return module.client("iam", retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=list(EXTRA_RETRY_CODES)))


def until_consistent(read, done):
    """``read()``, read again after each of CONSISTENCY_WAITS while ``done(answer)`` is false; the last answer."""
    answer = read()
    for wait in CONSISTENCY_WAITS:
        if done(answer):
            break
        time.sleep(wait)
        answer = read()
    return answer


def recent_recorded_key(tags, now=None) -> list:
    """``[key id]`` of the key recorded on the user when it was created less than RECENT ago (ListAccessKeys may not
    list it yet), else ``[]``."""
    recorded = canary_mapping.planted_key_from_tags(tags)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return [recorded[0]] if recorded and now - recorded[1] < RECENT else []


def call(client, operation, message, tolerate=(), **kwargs):
    """One IAM call with retries; ``None`` for an error code in ``tolerate``, IAMCallError otherwise.

    botocore retries a dropped connection a few times, then raises; AWSRetry retries only AWS's error codes.  Every
    call here but a ``create_*`` may be sent again safely (reads; deletes that tolerate NoSuchEntity; tags and
    policies that set a value), so those get a few more tries; a create is never repeated here (``mint`` deals
    with a lost CreateAccessKey).
    """
    waits = () if operation.startswith("create_") else CONSISTENCY_WAITS[:3]
    for wait in waits + (None,):
        try:
            return getattr(client, operation)(aws_retry=True, **kwargs)
        except botocore.exceptions.ClientError as e:
            if error_code(e) in tolerate:
                return None
            raise IAMCallError(message, e) from e
        except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as e:
            if wait is None:
                raise IAMCallError(message, e) from e
            time.sleep(wait)
        except botocore.exceptions.BotoCoreError as e:
            raise IAMCallError(message, e) from e
    raise AssertionError("unreachable")


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


def list_keys(client, user_name, expected=(), at_least=0) -> list:
    """The user's keys; read again while a key id in ``expected`` is missing or fewer than ``at_least`` are listed.

    A user holds at most two keys, so one page is all of them.
    """

    def read():
        response = call(client, "list_access_keys", f"Failed to list the access keys of IAM user {user_name}", UserName=user_name)
        return response["AccessKeyMetadata"]

    def done(keys):
        ids = {key["AccessKeyId"] for key in keys}
        return len(keys) >= at_least and all(key_id in ids for key_id in expected if key_id)

    return until_consistent(read, done)


def tag_list(tags: dict) -> list:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def tag_user(client, user_name, tags: dict, message=""):
    call(client, "tag_user", message or f"Failed to tag IAM user {user_name}", UserName=user_name, Tags=tag_list(tags))


def tag_planted_key(client, user_name, key, result, tags=None):
    """Record the freshly minted key on its user, after the mint.

    A failure here must not lose the key: its secret is in ``result`` and only the host should ever
    hold it.  The tags only spare the inventory a ListAccessKeys call (it checks them against the
    credential report), so a failure becomes a warning and the key is handed out as usual.
    """
    try:
        tag_user(client, user_name, canary_mapping.planted_key_tags(key["AccessKeyId"], key["CreateDate"], tags),
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


def delete_deny_all(client, user_name):
    """Remove the inline policy this collection put (by its name); gone already is fine."""
    call(
        client,
        "delete_user_policy",
        f"Failed to delete the deny-all inline policy of IAM user {user_name}",
        tolerate=("NoSuchEntity",),
        UserName=user_name,
        PolicyName=DENY_ALL_POLICY_NAME,
    )


def inline_policy_names(client, user_name) -> list:
    # A canary holds at most the one policy this collection puts: one page is all of them.
    response = call(client, "list_user_policies", f"Failed to list the inline policies of IAM user {user_name}",
                    tolerate=("NoSuchEntity",), UserName=user_name)
    return (response or {}).get("PolicyNames", [])


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
        # Taken, yet GetUser may answer NoSuchEntity for a user created seconds ago (ours, by a run that died or
        # whose host took no key): read it again, never take the next name for a user we cannot see yet.
        user = until_consistent(lambda: get_user(client, name), lambda found: found is not None)
        if user is None:
            raise PlacementError(
                f"IAM user {name} exists (CreateUser answered EntityAlreadyExists) but IAM does not return it yet; "
                "nothing was created for this placement: run again in a minute"
            )
        if is_ours(user, placement_id):
            return user["UserName"], user, False
        index, name, user = resolve_user(client, candidates, placement_id, start=index + 1)
        if user is not None:
            return user["UserName"], user, False


def _delete_unheld(client, user_name, keys, keep, result):
    for key in keys:
        if key["AccessKeyId"] not in keep:
            delete_key(client, user_name, key["AccessKeyId"])
            result.setdefault("deleted_access_key_ids", []).append(key["AccessKeyId"])


def mint(client, user_name, result, record=True, keep=(), tags=None):
    """Create the user's new key and put its id and secret in ``result``; ``record``: also name it in the user's tags.

    ``keep``: the keys the user may hold besides the new one (the planted key, in a rotation); ``tags``: the user's
    tags (the key history the new id joins).  Returns the new key's ListAccessKeys entry (id, status, creation date; no
    secret).  A CreateAccessKey whose answer was lost made a key nobody received:
    botocore sends the call again, which then succeeds with a second key or, if the user now holds two, meets
    LimitExceeded, or fails when every answer was lost.  Each way the key nobody holds is deleted here, within
    the run, once IAM lists it, and the mint is tried once more where it had not succeeded.  LimitExceeded is also
    how a rotation that decided on the bulk read (module_utils/_iam/listed.py) learns that IAM had not listed a key
    yet: the same listing and deletion put it right, and only then is IAM read.
    """
    message = f"Failed to create an access key for IAM user {user_name}"
    at_least = 2  # LimitExceeded: the user holds two keys, one of them nobody's
    try:
        response = call(client, "create_access_key", message, tolerate=("LimitExceeded",), UserName=user_name)
    except IAMCallError as error:
        if not isinstance(error.exception, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
            raise
        # Every answer lost (botocore's retries too): IAM may have made a key nobody received.
        response, at_least = None, len([key_id for key_id in keep if key_id]) + 1
    if response is None:
        _delete_unheld(client, user_name, list_keys(client, user_name, at_least=at_least), keep, result)
        response = call(client, "create_access_key", message, UserName=user_name)
    key = response["AccessKey"]
    result["access_key_id"] = key["AccessKeyId"]
    result["secret_access_key"] = key["SecretAccessKey"]
    if record:
        tag_planted_key(client, user_name, key, result, tags)
    if response.get("ResponseMetadata", {}).get("RetryAttempts"):
        # Sent more than once: an earlier attempt may have made a key whose answer was lost.
        keys = list_keys(client, user_name, expected=[key["AccessKeyId"]])
        _delete_unheld(client, user_name, keys, set(keep) | {key["AccessKeyId"]}, result)
    return {"AccessKeyId": key["AccessKeyId"], "Status": key.get("Status") or "Active", "CreateDate": key["CreateDate"]}
