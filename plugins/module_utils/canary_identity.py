# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller-side identity of a canary placement: its IAM user name and the IAM calls.

Naming is pure (no AWS, no Ansible): a placement's candidate user names are an ordered,
deterministic sequence, so every run of every controller tries the same names in the same order.
The IAM side takes an IAM client as an argument; the client must be amazon.aws's retrying
wrapper (``module.client("iam", retry_decorator=AWSRetry.jittered_backoff())``) because every
call here passes ``aws_retry=True``.  Nothing is kept in module-level state.

The user's tags are the record of truth (``canary_mapping``); the ``canarykeys:placement`` tag
is what makes a user *ours*: a user with the drawn name but another tag (or none) belongs to
someone else and is never touched.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import string
import unicodedata
from dataclasses import dataclass

try:
    import botocore.exceptions
except ImportError:
    pass  # AnsibleAWSModule reports the missing dependency

from ansible_collections.canarykeys.aws.plugins.module_utils import canary_mapping
from ansible_collections.canarykeys.aws.plugins.module_utils.concurrency import parallel_map

DEFAULT_TEMPLATE = "{host}-{purpose}"
TEMPLATE_FIELDS = ("host", "purpose", "profile", "user")

# What ordinary service users are called.  The order is part of the naming contract: attempt k of a
# placement uses the k-th purpose after the drawn one, so reordering renames future placements.
PURPOSES = (
    "backup",
    "deploy",
    "s3-sync",
    "ci",
    "uploader",
    "reports",
    "logs",
    "artifacts",
    "metrics",
    "terraform",
    "media-sync",
    "db-dump",
    "monitoring",
    "cron",
    "build",
    "assets",
)

# Stealth is the product: an attacker who sees the user ARN (every denied call echoes it) must not
# read "trap" in it.  Substring matching is deliberate (it also refuses "honeypot", "canary01").
TELLTALE_WORDS = ("canary", "honey", "decoy", "trap", "token", "tripwire", "@@")

USER_NAME_MAX = 64
USER_NAME_INVALID = re.compile(r"[^A-Za-z0-9+=,.@_-]")
USER_NAME_SEPARATORS = "-_.,=+@"
IAM_PATH_PATTERN = re.compile(r"^/(?:[\x21-\x7e]+/)?$")
IAM_PATH_MAX = 512
ACCESS_KEY_ID_PATTERN = re.compile(r"^[A-Z0-9]{16,128}$")
# Enough for every purpose once plus a few numbered rounds; a placement that needs more has a
# naming problem a person should look at.
MAX_ATTEMPTS = 20

DENY_ALL_POLICY_NAME = "default"
DENY_ALL_POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}'

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


# What a controller without AWS credentials is told, by every module that mints (botocore's own message
# names no setting of ours).
NO_CREDENTIALS = (
    "The controller has no usable AWS credentials: set aws_profile (or AWS_PROFILE), or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY"
)


class IdentityError(Exception):
    """A refusal or a naming problem, with a message meant for the person running the play."""


class IdentityAWSError(Exception):
    """An AWS call failed; ``message`` says what was being done, ``exception`` is botocore's."""

    def __init__(self, message, exception):
        super().__init__(message)
        self.message = message
        self.exception = exception


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


# ----------------------------------------------------------------------------------- naming


def sanitize_user_name(text) -> str:
    """``text`` within IAM's user-name characters: others become ``-``, runs of ``-`` collapse,
    no separator at either end.  Accented letters keep their base letter (``München`` -> ``Munchen``)."""
    ascii_text = unicodedata.normalize("NFKD", str(text or "")).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"-{2,}", "-", USER_NAME_INVALID.sub("-", ascii_text)).strip(USER_NAME_SEPARATORS)


def short_host(host) -> str:
    """The host's short name as a user-name part: first DNS label, lowercased; an IP address whole, with dashes."""
    text = str(host or "").strip().strip("[]")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        text = text.split(".", 1)[0]
    else:
        # The first label of an address is a meaningless octet: keep it whole, as people write hosts.
        text = re.sub(r"[.:%]", "-", text)
    return sanitize_user_name(text.lower())


def os_user(path) -> str:
    """The OS user owning a credentials file, from its path: /root -> root, /home/U or /Users/U -> U."""
    parts = [part for part in str(path or "").split("/") if part]
    if parts and parts[0] == "root":
        return "root"
    if len(parts) >= 2 and parts[0] in ("home", "Users"):
        return parts[1]
    return ""


def telltale_in(text) -> str | None:
    lowered = str(text).lower()
    return next((word for word in TELLTALE_WORDS if word in lowered), None)


def template_fields(template) -> set:
    """The placeholders of a user-name template, validated; raises IdentityError."""
    if not template:
        raise IdentityError("user_name_template is empty")
    word = telltale_in(template)
    if word:
        raise IdentityError(
            f"user_name_template {template!r} contains {word!r}: canary user names must look like ordinary service users "
            f"(never {', '.join(TELLTALE_WORDS)})"
        )
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise IdentityError(f"user_name_template {template!r} is not a valid template: {e}") from e
    fields = set()
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS or spec or conversion:
            raise IdentityError(
                f"user_name_template {template!r} uses {{{name}}}; the template may use only "
                + ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
            )
        fields.add(name)
    return fields


def check_iam_path(iam_path) -> str:
    """The IAM path, validated (IAM's own rules plus the stealth word check); raises IdentityError."""
    path = str(iam_path or "")
    if len(path) > IAM_PATH_MAX or not IAM_PATH_PATTERN.match(path):
        raise IdentityError(
            f"iam_path {path!r} is not an IAM path: it must start and end with '/', use printable ASCII only and be at most "
            f"{IAM_PATH_MAX} characters"
        )
    word = telltale_in(path)
    if word:
        raise IdentityError(f"iam_path {path!r} contains {word!r}: every denied call shows the user's ARN, path included")
    return path


def candidate_purpose(placement_id: str, attempt: int) -> str:
    """Attempt 0: the purpose drawn from the placement id; then the next ones; then numbered rounds."""
    count = len(PURPOSES)
    start = int(placement_id, 16) % count
    purpose = PURPOSES[(start + attempt) % count]
    rounds = attempt // count
    return purpose if rounds == 0 else f"{purpose}{rounds + 1}"


def render_user_name(template: str, values: dict) -> str:
    """The sanitised name, at most 64 characters.  Too long: the host is cut first (then the OS user, then
    the profile), so that what tells placements apart (the purpose, a suffix) survives."""
    values = {key: sanitize_user_name(value) for key, value in values.items()}
    fields = template_fields(template)
    name = sanitize_user_name(template.format_map(values))
    for field in ("host", "user", "profile"):
        while field in fields and len(name) > USER_NAME_MAX and values.get(field):
            excess = len(name) - USER_NAME_MAX
            values[field] = values[field][: max(0, len(values[field]) - excess)]
            shorter = sanitize_user_name(template.format_map(values))
            if len(shorter) >= len(name):
                break
            name = shorter
    return name[:USER_NAME_MAX].strip(USER_NAME_SEPARATORS)


def candidate_names(host, path, profile, template=DEFAULT_TEMPLATE, attempts=MAX_ATTEMPTS) -> list:
    """The ordered user names a placement may take; the first free or already ours wins.

    Raises IdentityError for a bad template or a host with no usable character, before any AWS call.
    """
    template = template or DEFAULT_TEMPLATE
    fields = template_fields(template)
    host_part = short_host(host)
    if "host" in fields and not host_part:
        raise IdentityError(
            f"host {host!r} has no character usable in an IAM user name (A-Z a-z 0-9 + = , . @ _ -); "
            "set user_name_template to a template that does not need it, or rename the inventory host"
        )
    pid = canary_mapping.placement_id(host, path, profile)
    values = {"host": host_part, "profile": profile, "user": os_user(path)}
    names = []
    for attempt in range(attempts):
        if "purpose" in fields:
            attempt_template = template
        else:
            # Without {purpose} only a number can tell two placements of a host apart.
            attempt_template = template if attempt == 0 else f"{template}-{attempt + 1}"
        name = render_user_name(attempt_template, dict(values, purpose=candidate_purpose(pid, attempt)))
        if not name:
            raise IdentityError(f"user_name_template {template!r} gives an empty user name for host {host!r}, profile {profile!r}")
        if name not in names:
            names.append(name)
    return names


# ----------------------------------------------------------------------------------- IAM calls


def _error_code(exception) -> str:
    response = getattr(exception, "response", None) or {}
    return response.get("Error", {}).get("Code", "")


def _call(client, operation, message, tolerate=(), **kwargs):
    """One IAM call with retries; ``None`` for an error code in ``tolerate``, IdentityAWSError otherwise."""
    try:
        return getattr(client, operation)(aws_retry=True, **kwargs)
    except botocore.exceptions.ClientError as e:
        if _error_code(e) in tolerate:
            return None
        raise IdentityAWSError(message, e) from e
    except botocore.exceptions.BotoCoreError as e:
        raise IdentityAWSError(message, e) from e


def get_user(client, user_name):
    """The user (with its Tags, which GetUser returns) or None."""
    response = _call(client, "get_user", f"Failed to get IAM user {user_name}", tolerate=("NoSuchEntity",), UserName=user_name)
    return None if response is None else response["User"]


def is_ours(user, placement_id: str) -> bool:
    return canary_mapping.tags_list_to_dict((user or {}).get("Tags")).get(canary_mapping.TAG_PLACEMENT) == placement_id


def resolve_user(client, candidates, placement_id: str, start=0):
    """``(index, name, user)`` of the first candidate from ``start`` that is free (user None) or ours; raises IdentityError."""
    for index in range(start, len(candidates)):
        name = candidates[index]
        user = get_user(client, name)
        if user is None or is_ours(user, placement_id):
            return index, name, user
    raise IdentityError(
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
    response = _call(
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
    response = _call(client, "list_access_keys", f"Failed to list the access keys of IAM user {user_name}", UserName=user_name)
    return response["AccessKeyMetadata"]


def _tag_list(tags: dict) -> list:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _generation(tags: dict) -> int:
    try:
        return int(tags.get(canary_mapping.TAG_GENERATION) or 1)
    except ValueError:
        return 1


def tags_to_update(current: dict, desired: dict) -> dict:
    """The stable mapping tags whose value differs.  An empty reminder or planted-by leaves the stored one."""
    return {key: desired[key] for key in _STABLE_TAGS if key in desired and current.get(key) != desired[key]}


def planted_key_tag_update(current: dict, key) -> dict:
    """The key-id tags to write so that they name ``key`` (a ListAccessKeys or CreateAccessKey entry); {} when they do."""
    desired = canary_mapping.planted_key_tags(key["AccessKeyId"], key["CreateDate"])
    return {name: value for name, value in desired.items() if current.get(name) != value}


def _tag_planted_key(client, user_name, key, result):
    """Record the freshly minted key on its user, after the mint.

    A failure here must not lose the key: its secret is in ``result`` and only the host should ever
    hold it.  The tags only spare the inventory a ListAccessKeys call (it checks them against the
    credential report), so a failure becomes a warning and the key is handed out as usual.
    """
    try:
        _call(client, "tag_user", f"Failed to record access key {key['AccessKeyId']} on IAM user {user_name}",
              UserName=user_name, Tags=_tag_list(canary_mapping.planted_key_tags(key["AccessKeyId"], key["CreateDate"])))
    except IdentityAWSError as e:
        result.setdefault("warnings", []).append(
            f"{e.message}: {e.exception}. The key was minted and is handed out; canary_key_info lists this user with "
            "iam:ListAccessKeys until the tag is written by its next rotation")


def _user_result(user_name, user, iam_path) -> dict:
    return {
        "user_name": user_name,
        "user_arn": (user or {}).get("Arn", ""),
        "iam_path": (user or {}).get("Path", iam_path),
    }


def _delete_key(client, user_name, access_key_id):
    _call(
        client,
        "delete_access_key",
        f"Failed to delete access key {access_key_id} of IAM user {user_name}",
        tolerate=("NoSuchEntity",),
        UserName=user_name,
        AccessKeyId=access_key_id,
    )


def _put_deny_all(client, user_name):
    _call(
        client,
        "put_user_policy",
        f"Failed to put the deny-all inline policy on IAM user {user_name}",
        UserName=user_name,
        PolicyName=DENY_ALL_POLICY_NAME,
        PolicyDocument=DENY_ALL_POLICY,
    )


def _create_user(client, candidates, index, placement_id, iam_path, tags):
    """Create the candidate at ``index``: ``(name, user, created)``.

    When another run took the name between our read and this write (forks seeding two hosts with the
    same short name), that name is checked again and, if it is not ours, the next candidates are tried.
    """
    while True:
        name = candidates[index]
        response = _call(
            client,
            "create_user",
            f"Failed to create IAM user {name}",
            tolerate=("EntityAlreadyExists",),
            UserName=name,
            Path=iam_path,
            Tags=_tag_list(tags),
        )
        if response is not None:
            return name, response["User"], True
        user = get_user(client, name)
        if user is not None and is_ours(user, placement_id):
            return user["UserName"], user, False
        index, name, user = resolve_user(client, candidates, placement_id, start=index + 1)
        if user is not None:
            return user["UserName"], user, False


def plan_present(placement: Placement, user, keys, planted_key_id, now) -> dict:
    """What ``state=present`` must do, given what IAM holds (pure; ``user`` None when it does not exist yet).

    ``mint``: no key of the user is both planted and active.  ``orphans``: keys nothing holds, to delete
    (every key but the planted one; IAM allows two per user, so they go before a mint).  ``tag_update``:
    the tags to write (planted-at and generation only with a mint).
    """
    key_ids = [key["AccessKeyId"] for key in keys]
    planted_active = any(key["AccessKeyId"] == planted_key_id and key["Status"] == "Active" for key in keys)
    current = canary_mapping.tags_list_to_dict((user or {}).get("Tags"))
    generation = _generation(current)
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
        "orphans": [key_id for key_id in key_ids if key_id != planted_key_id],
        "tag_update": tag_update,
        "generation": generation,
        "tags_after": after,
    }


def ensure_present(client, placement: Placement, planted_key_id="", template=DEFAULT_TEMPLATE, iam_path="/", check_mode=False):
    """Make the placement's user exist with exactly one active key; mint one only when the host holds none of it.

    Order matters: every refusal comes before the first write, and the mint is the last write, so a
    failure never leaves behind a minted key whose secret nobody received.
    """
    iam_path = check_iam_path(iam_path)
    candidates = candidate_names(placement.host, placement.path, placement.profile, template)
    pid = placement.placement_id
    planted_key_id = planted_key_id or ""
    refusal = IdentityError(
        f"profile {placement.profile} in {placement.path} on {placement.host} holds access key {planted_key_id}, "
        "which is not this placement's canary key; refusing to mint: choose another profile"
    )

    index, user_name, user = resolve_user(client, candidates, pid)
    if user is None and planted_key_id:
        user = key_owner(client, planted_key_id, pid)
        if user is None:
            raise refusal
    if user is not None:
        user_name = user["UserName"]
    keys = list_keys(client, user_name) if user is not None else []
    if planted_key_id and planted_key_id not in [key["AccessKeyId"] for key in keys]:
        raise refusal

    plan = plan_present(placement, user, keys, planted_key_id, utc_now())
    result = dict(
        _user_result(user_name, user, iam_path),
        placement_id=pid,
        changed=bool(plan["mint"] or plan["orphans"] or plan["tag_update"]),
        minted=plan["mint"],
        access_key_id=None if plan["mint"] else planted_key_id,
        deleted_access_key_ids=plan["orphans"],
        generation=plan["generation"],
        user_created=user is None,
        mapping=canary_mapping.mapping_from_tags(plan["tags_after"]),
    )
    if check_mode or not result["changed"]:
        return result

    if user is None:
        user_name, user, created = _create_user(client, candidates, index, pid, iam_path, plan["tags_after"])
        if not created:
            # Another run created this placement's user between our read and our write: decide again on it.
            return ensure_present(client, placement, planted_key_id, template, iam_path, check_mode)
        result.update(_user_result(user_name, user, iam_path))
        _put_deny_all(client, user_name)
    else:
        for key_id in plan["orphans"]:
            _delete_key(client, user_name, key_id)
        if plan["mint"]:
            # Re-put on every mint: a key is never handed out by a user whose deny-all was removed.
            _put_deny_all(client, user_name)
        if plan["tag_update"]:
            _call(client, "tag_user", f"Failed to tag IAM user {user_name}", UserName=user_name, Tags=_tag_list(plan["tag_update"]))
    if plan["mint"]:
        _mint(client, user_name, result)
    return result


def _mint(client, user_name, result, record=True):
    """Create the user's new key and put its id and secret in ``result``; ``record``: also name it in the user's tags."""
    key = _call(client, "create_access_key", f"Failed to create an access key for IAM user {user_name}", UserName=user_name)["AccessKey"]
    result["access_key_id"] = key["AccessKeyId"]
    result["secret_access_key"] = key["SecretAccessKey"]
    if record:
        _tag_planted_key(client, user_name, key, result)


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
        user = get_user(client, user_name)
        if user is not None and not canary_mapping.is_managed(user.get("Tags")):
            raise IdentityError(f"IAM user {user_name} is not a canary user (no {canary_mapping.TAG_MANAGED} tag); refusing to delete it")
    else:
        candidates = candidate_names(placement.host, placement.path, placement.profile, template)
        try:
            _index, user_name, user = resolve_user(client, candidates, pid)
        except IdentityError:
            user = None  # every name is someone else's: this placement has no user there
        if user is None and access_key_id:
            user = key_owner(client, access_key_id, pid)
    if user is None:
        return result
    user_name = user["UserName"]
    tags = canary_mapping.tags_list_to_dict(user.get("Tags"))
    result.update(_user_result(user_name, user, iam_path), generation=_generation(tags), mapping=canary_mapping.mapping_from_tags(tags))

    key_ids = [key["AccessKeyId"] for key in list_keys(client, user_name)]
    doomed = [key_id for key_id in key_ids if not access_key_id or key_id == access_key_id]
    remaining = [key_id for key_id in key_ids if key_id not in doomed]
    result.update(deleted_access_key_ids=doomed, user_deleted=not remaining, changed=bool(doomed) or not remaining)
    if remaining:
        result["access_key_id"] = remaining[0]
    if check_mode:
        return result
    for key_id in doomed:
        _delete_key(client, user_name, key_id)
    if not remaining:
        policies = _call(client, "list_user_policies", f"Failed to list the inline policies of IAM user {user_name}", UserName=user_name)
        for policy_name in policies["PolicyNames"]:
            _call(client, "delete_user_policy", f"Failed to delete inline policy {policy_name} of IAM user {user_name}",
                  tolerate=("NoSuchEntity",), UserName=user_name, PolicyName=policy_name)
        _call(client, "delete_user", f"Failed to delete IAM user {user_name}", tolerate=("NoSuchEntity",), UserName=user_name)
    return result


# ----------------------------------------------------------------------------------- rotation
#
# A rotation replaces the planted key with a new one without a moment when the host holds no working
# key: ``begin_rotation`` mints a second key and keeps the planted one (IAM allows two per user), the
# host is written and read back, then ``finish_rotation`` keeps whichever key the host holds and deletes
# the other.  The mapping's generation and planted-at move only in ``finish_rotation``, once the new key
# is in place, so a rotation that rolls back leaves the record as it was.

ROTATION_STARTED = "started"
ROTATION_NOT_DUE = "not_due"
ROTATION_NOT_PLANTED = "not_planted"
ROTATION_COMPLETED = "completed"
ROTATION_ROLLED_BACK = "rolled_back"


def _utc_datetime(value) -> datetime.datetime:
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def key_age_days(key, now: datetime.datetime) -> float:
    """Days (with fractions) since IAM created ``key`` (a ListAccessKeys entry)."""
    return max(0.0, (now - _utc_datetime(key["CreateDate"])).total_seconds() / 86400)


def find_user(client, candidates, placement_id: str, key_id=""):
    """``(name, user)`` of the placement's existing user, by its names or else by the key it holds; ``user`` None when none."""
    try:
        _index, name, user = resolve_user(client, candidates, placement_id)
    except IdentityError:
        name, user = candidates[0], None  # every name is someone else's; the key may still lead to ours
    if user is None and key_id:
        user = key_owner(client, key_id, placement_id)
    return (user["UserName"], user) if user is not None else (name, None)


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


def begin_rotation(client, placement: Placement, planted_key_id="", max_age_days=0, template=DEFAULT_TEMPLATE, iam_path="/",
                   check_mode=False, now=None):
    """Mint a second key for the placement's user, keeping the planted one, when the planted key is due.

    Never creates a user and never refuses: a placement that does not hold its active key is reported
    as not planted and left alone.  Keys the host does not hold are deleted, before the mint (a user
    holds at most two); the mint is the last write, as in ``ensure_present``.
    """
    iam_path = check_iam_path(iam_path)
    if max_age_days < 0:
        raise IdentityError(f"max_age_days must be 0 or more, not {max_age_days}")
    candidates = candidate_names(placement.host, placement.path, placement.profile, template)
    pid = placement.placement_id
    planted_key_id = planted_key_id or ""
    user_name, user = find_user(client, candidates, pid, planted_key_id)
    result = dict(
        _user_result(user_name, user, iam_path),
        placement_id=pid, changed=False, minted=False, rotation=ROTATION_NOT_PLANTED, access_key_id=None, rotated_key_id=None,
        key_age_days=None, deleted_access_key_ids=[], generation=0, mapping=None,
    )
    if user is None:
        return result
    tags = canary_mapping.tags_list_to_dict(user.get("Tags"))
    plan = plan_rotation_begin(list_keys(client, user_name), planted_key_id, max_age_days, now or datetime.datetime.now(datetime.timezone.utc))
    result.update(
        rotation=plan["rotation"],
        key_age_days=None if plan["age_days"] is None else round(plan["age_days"], 3),
        generation=_generation(tags) + (1 if plan["mint"] else 0),
        mapping=canary_mapping.mapping_from_tags(tags),
    )
    result["deleted_access_key_ids"] = plan["orphans"]
    if not plan["mint"]:
        result.update(changed=bool(plan["orphans"]), access_key_id=planted_key_id if plan["rotation"] == ROTATION_NOT_DUE else None)
    else:
        result.update(changed=True, minted=True, rotated_key_id=planted_key_id)
    if check_mode:
        return result
    for key_id in plan["orphans"]:
        _delete_key(client, user_name, key_id)
    if not plan["mint"]:
        return result
    # As on every mint: a key is never handed out by a user whose deny-all was removed.
    _put_deny_all(client, user_name)
    # The tags keep naming the planted key until finish_rotation knows which key the host kept.
    _mint(client, user_name, result, record=False)
    return result


def plan_rotation_finish(placement: Placement, user, keys, planted_key_id, rotated_key_id) -> dict:
    """Pure: which key survives a rotation and what the mapping records afterwards.

    The key the host holds survives when it is an active key of the user; otherwise the old key does
    (the host never took the new one).  The mapping advances only when the old key still existed, so
    a repeated finish does not count the same rotation twice.
    """
    by_id = {key["AccessKeyId"]: key for key in keys}
    if planted_key_id and by_id.get(planted_key_id, {}).get("Status") == "Active":
        keep = planted_key_id
    elif rotated_key_id in by_id:
        keep = rotated_key_id
    else:
        raise IdentityError(
            f"the IAM user of profile {placement.profile} in {placement.path} on {placement.host} holds neither the key the profile "
            f"holds ({planted_key_id or 'none'}) nor the rotated key {rotated_key_id}; nothing was deleted"
        )
    current = canary_mapping.tags_list_to_dict((user or {}).get("Tags"))
    generation = _generation(current)
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


def finish_rotation(client, placement: Placement, planted_key_id="", rotated_key_id="", template=DEFAULT_TEMPLATE, iam_path="/",
                    check_mode=False):
    """Keep the key the host holds (``planted_key_id``, as read back after the write) and delete the other one."""
    iam_path = check_iam_path(iam_path)
    if not rotated_key_id:
        raise IdentityError("rotated_key_id is required to finish a rotation: it is the key the profile held before")
    candidates = candidate_names(placement.host, placement.path, placement.profile, template)
    pid = placement.placement_id
    user_name, user = find_user(client, candidates, pid, rotated_key_id)
    if user is None:
        user_name, user = find_user(client, candidates, pid, planted_key_id or "")
    if user is None:
        raise IdentityError(f"profile {placement.profile} in {placement.path} on {placement.host} has no canary IAM user; nothing to finish")
    plan = plan_rotation_finish(placement, user, list_keys(client, user_name), planted_key_id or "", rotated_key_id)
    result = dict(
        _user_result(user_name, user, iam_path),
        placement_id=pid, changed=bool(plan["doomed"] or plan["tag_update"]), minted=False, rotation=plan["rotation"],
        access_key_id=plan["keep"], rotated_key_id=rotated_key_id, deleted_access_key_ids=plan["doomed"],
        generation=plan["generation"], mapping=canary_mapping.mapping_from_tags(plan["tags_after"]),
    )
    if check_mode:
        return result
    for key_id in plan["doomed"]:
        _delete_key(client, user_name, key_id)
    if plan["tag_update"]:
        _call(client, "tag_user", f"Failed to tag IAM user {user_name}", UserName=user_name, Tags=_tag_list(plan["tag_update"]))
    return result


# ----------------------------------------------------------------------------------- many placements
#
# The seed and the rotation run one controller task for the whole play instead of one module run per
# placement: each placement is still decided on its own, by the same functions, and one placement's
# failure is reported in its own result without stopping the others.

ACTIONS = {
    "ensure": lambda client, placement, request, options: ensure_present(
        client, placement, request.get("planted_key_id") or "", **options),
    "begin": lambda client, placement, request, options: begin_rotation(
        client, placement, request.get("planted_key_id") or "", request.get("max_age_days") or 0, **options),
    "finish": lambda client, placement, request, options: finish_rotation(
        client, placement, request.get("planted_key_id") or "", request.get("rotated_key_id") or "", **options),
}


def error_message(error, no_credentials_message=NO_CREDENTIALS) -> str:
    """One line for a failed placement: what was being done and what AWS said, never a traceback."""
    if isinstance(error, IdentityAWSError):
        if isinstance(error.exception, botocore.exceptions.NoCredentialsError):
            return no_credentials_message
        return f"{error.message}: {error.exception}"
    return str(error)


def run_many(client, requests, action="ensure", concurrency=4, no_credentials_message=NO_CREDENTIALS, **options) -> list:
    """Run ``action`` for every request (host, path, profile and the action's key ids), in order, a few at a time.

    Each result names its placement (host, path, profile); a placement that failed has ``failed: true``
    and ``msg`` and nothing else, since nothing was handed out for it.
    """
    if action not in ACTIONS:
        raise IdentityError(f"action must be one of {', '.join(ACTIONS)}")

    def one(request):
        placement = Placement(host=request["host"], path=request["path"], profile=request["profile"],
                              reminder=request.get("reminder") or "", planted_by=request.get("planted_by") or "")
        named = {"host": placement.host, "path": placement.path, "profile": placement.profile}
        try:
            return dict(named, **ACTIONS[action](client, placement, request, options))
        except (IdentityError, IdentityAWSError) as error:
            return dict(named, failed=True, changed=False, minted=False, msg=error_message(error, no_credentials_message))

    return parallel_map(one, requests, concurrency)
