# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tamper detector: a change made to a canary IAM user by anyone but the collection's own runs.

A canary user has no policy (or, opted in, a deny-all one): nothing stops an administrator's stolen
credentials, or a curious insider, from giving it a policy, a group, a console password or a second
key, from deactivating or deleting its key, or from rewriting its mapping tags.  Each such change is
an IAM call that CloudTrail logs and EventBridge delivers (``AWS API Call via CloudTrail``, source
``aws.iam``); ``alert_handler.handler`` hands those records here.

* **Which calls** (``TAMPER_CALLS``): every successful IAM call that changes a user's permissions,
  credentials, existence, name or mapping tags.  A failed call changed nothing and is passed over
  (a canary key's own denied attempt still alerts as a use of the key, detector ``cloudtrail``).
  Tag changes count only when they touch a mapping tag (``canarykeys:*``), and never the
  last-used detector's own ``canarykeys:last-used-reported`` and ``-cursor``.
* **On which users**: the target (``requestParameters.userName``, else the caller itself) must be a
  canary by its mapping tags, read now; for a user already deleted, or whose mapping tags were just
  removed, the mapping the handler remembers from an earlier read (``UserDirectory.remembered``).
  Other users are ignored.  A DeleteUser whose user nobody remembers is still reported, as
  ``unknown-iam-user``: in an account that holds canaries, a vanished user may have been one.
* **Not by whom**: ``CANARY_TRUSTED_PRINCIPALS``, comma-separated ARN patterns (``*`` and ``?``
  wildcards) of the collection's own runs (the controller's IAM role, user or assumed-role
  session), matched against ``userIdentity.arn`` and, for a role session, the role's ARN
  (``sessionContext.sessionIssuer.arn``).  AWS attaching an ``AWSCompromisedKeyQuarantine*``
  managed policy is never trusted: it is reported as AWS quarantining the key.

Standard library only; the IAM reads go through the handler's ``UserDirectory``.
"""

from __future__ import annotations

import fnmatch
import re

import alert_payload
import canary_mapping
import scan_cursor

EVENT_SOURCE = "iam.amazonaws.com"

# IAM calls that change what a user is or can do, by the name CloudTrail gives them.
TAMPER_CALLS = frozenset((
    # permissions
    "AttachUserPolicy", "DetachUserPolicy", "PutUserPolicy", "DeleteUserPolicy", "AddUserToGroup",
    "RemoveUserFromGroup", "PutUserPermissionsBoundary", "DeleteUserPermissionsBoundary",
    # credentials
    "CreateLoginProfile", "UpdateLoginProfile", "DeleteLoginProfile", "CreateAccessKey", "UpdateAccessKey",
    "DeleteAccessKey", "CreateServiceSpecificCredential", "UpdateServiceSpecificCredential",
    "UploadSSHPublicKey", "UpdateSSHPublicKey", "UploadSigningCertificate", "UpdateSigningCertificate",
    "EnableMFADevice", "DeactivateMFADevice",
    # the user itself: its name or path (the mapping names it), its existence, its tags
    "UpdateUser", "DeleteUser", "TagUser", "UntagUser",
))
TAG_CALLS = frozenset(("TagUser", "UntagUser"))
# AWS's own quarantine (AWSCompromisedKeyQuarantine, ...V2, ...V3) when it finds a key exposed.
QUARANTINE_POLICY_RE = re.compile(r"^arn:aws[\w-]*:iam::aws:policy/AWSCompromisedKeyQuarantine\w*$")
# Tags the detection itself writes: a change to them is the detection at work, not tampering.
DETECTION_TAGS = frozenset((canary_mapping.TAG_LAST_USED_REPORTED, scan_cursor.TAG_LAST_USED_CURSOR))
# Quoted request parameters are cut at this length (a whole policy document can be 6 KB and more).
MAX_PARAMETER_CHARS = 2048
# Parameter names whose value is never quoted, whatever a record holds (CloudTrail omits passwords,
# a hand-made or future record might not).
_SECRET_PARAMETER_RE = re.compile(r"password|secret|privatekey", re.IGNORECASE)


def trusted_patterns(environ) -> tuple:
    """The ARN patterns of ``CANARY_TRUSTED_PRINCIPALS`` (comma or white space separated)."""
    raw = environ.get("CANARY_TRUSTED_PRINCIPALS", "") or ""
    return tuple(item for item in re.split(r"[,\s]+", raw) if item)


def principal(record: dict) -> dict:
    """Who made the call: ARN, type, role ARN of a session, account, the AWS service that acted."""
    identity = record.get("userIdentity") if isinstance(record.get("userIdentity"), dict) else {}
    context = identity.get("sessionContext") if isinstance(identity.get("sessionContext"), dict) else {}
    issuer = context.get("sessionIssuer") if isinstance(context.get("sessionIssuer"), dict) else {}
    return {
        "arn": identity.get("arn") or None,
        "type": identity.get("type") or None,
        "issuer_arn": issuer.get("arn") or None,
        "account_id": identity.get("accountId") or None,
        "invoked_by": identity.get("invokedBy") or None,
    }


def is_trusted(who: dict, patterns: tuple) -> bool:
    arns = [arn for arn in (who.get("arn"), who.get("issuer_arn")) if isinstance(arn, str)]
    return any(fnmatch.fnmatchcase(arn, pattern) for arn in arns for pattern in patterns)


def _parameters(record: dict) -> dict:
    params = record.get("requestParameters")
    return params if isinstance(params, dict) else {}


def quarantine_policy(record: dict):
    """The AWS quarantine policy the call attached, or None."""
    if record.get("eventName") != "AttachUserPolicy":
        return None
    arn = _parameters(record).get("policyArn")
    return arn if isinstance(arn, str) and QUARANTINE_POLICY_RE.match(arn) else None


def target_user(record: dict):
    """The user the call changed: its ``userName`` parameter, else (IAM's default) the caller."""
    name = _parameters(record).get("userName")
    if isinstance(name, str) and name:
        return name
    identity = record.get("userIdentity") if isinstance(record.get("userIdentity"), dict) else {}
    if identity.get("type") == "IAMUser" and isinstance(identity.get("userName"), str):
        return identity["userName"]
    return None


def _tag_keys(record: dict) -> list:
    params = _parameters(record)
    if record.get("eventName") == "UntagUser":
        keys = params.get("tagKeys")
        return [key for key in keys if isinstance(key, str)] if isinstance(keys, list) else []
    tags = params.get("tags")
    return [tag.get("key") for tag in tags if isinstance(tag, dict)] if isinstance(tags, list) else []


def touches_mapping(record: dict) -> bool:
    """Whether a TagUser/UntagUser changes a mapping tag (not only the detection's own)."""
    return any(isinstance(key, str) and key.startswith(canary_mapping.TAG_PREFIX) and key not in DETECTION_TAGS
               for key in _tag_keys(record))


def is_candidate(record: dict) -> bool:
    """A successful IAM call of the tamper list (before asking who made it and on which user)."""
    if record.get("eventSource") != EVENT_SOURCE or record.get("eventName") not in TAMPER_CALLS:
        return False
    if record.get("errorCode"):
        return False
    return record["eventName"] not in TAG_CALLS or touches_mapping(record)


def _quoted(value):
    """The parameters as the alert quotes them: secrets left out, long strings cut."""
    if isinstance(value, dict):
        return {key: ("(not quoted)" if _SECRET_PARAMETER_RE.search(str(key)) else _quoted(item))
                for key, item in value.items()}
    if isinstance(value, list):
        return [_quoted(item) for item in value]
    if isinstance(value, str) and len(value) > MAX_PARAMETER_CHARS:
        return value[:MAX_PARAMETER_CHARS] + f"... ({len(value)} characters)"
    return value


def quoted_parameters(record: dict):
    params = record.get("requestParameters")
    return _quoted(params) if isinstance(params, dict) else None


def _changed_key(record: dict):
    """The access key the call is about: the parameter, or the key CreateAccessKey returned."""
    key = _parameters(record).get("accessKeyId")
    if isinstance(key, str) and key:
        return key
    response = record.get("responseElements")
    created = response.get("accessKey") if isinstance(response, dict) else None
    key = created.get("accessKeyId") if isinstance(created, dict) else None
    return key if isinstance(key, str) and key else None


def build(record: dict, user_name: str, mapping, who: dict, quarantine, fallback_time=None, account: str = "") -> dict:  # pylint: disable=too-many-arguments
    """The tamper alert of one record (the payload of docs/alerts.md, plus ``change``)."""
    group = alert_payload.EventGroup(1)
    group.add(alert_payload.event_summary(record, fallback_time))
    account_id = record.get("recipientAccountId") or who.get("account_id")
    alert = alert_payload.build_alert(alert_payload.DETECTOR_TAMPER, account_id, user_name, _changed_key(record), mapping, group, account)
    alert["change"] = {
        "call": f"iam:{record.get('eventName')}",
        "principal_arn": who.get("arn"),
        "principal_type": who.get("type"),
        "session_issuer_arn": who.get("issuer_arn"),
        "invoked_by": who.get("invoked_by"),
        "source_ip": record.get("sourceIPAddress") if isinstance(record.get("sourceIPAddress"), str) else None,
        "by_aws": quarantine is not None,
        "quarantine_policy": quarantine,
        "request_parameters": quoted_parameters(record),
    }
    return alert


def examine(record: dict, directory, patterns: tuple, fallback_time=None, account: str = ""):
    """``(alert or None, reason)``: the tamper alert of one CloudTrail record, and why (for the log).

    ``account``: the function's account name (``alert_payload.account_name``).
    """
    if not is_candidate(record):
        return None, "not-a-change"
    quarantine = quarantine_policy(record)
    who = principal(record)
    if quarantine is None and is_trusted(who, patterns):
        return None, "trusted"
    user_name = target_user(record)
    if user_name is None:
        return None, "no-user"
    # Read before the tags: a tag change shows the placement as it was, not as the caller rewrote it.
    before = directory.remembered(user_name)
    mapping = directory.mapping(user_name)
    if mapping is None or (before is not None and record.get("eventName") in TAG_CALLS):
        mapping = before
    renamed = _parameters(record).get("newUserName")
    if mapping is None and isinstance(renamed, str) and renamed:
        # UpdateUser renamed it: the tags went with the user to its new name.
        mapping = directory.mapping(renamed)
    if mapping is None:
        if record.get("eventName") == "DeleteUser" and directory.gone(user_name):
            # Nobody can read the tags of a deleted user any more: report rather than stay silent.
            return build(record, user_name, None, who, quarantine, fallback_time, account), "deleted-unknown"
        return None, "not-a-canary"
    return build(record, user_name, mapping, who, quarantine, fallback_time, account), "canary"
