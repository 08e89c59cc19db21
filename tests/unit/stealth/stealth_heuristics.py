# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The public heuristics an attacker runs on a found AWS key, written from their published rules.

Each function returns the reason a key (its ARN, its denied call, its key id, its file) gives itself
away, or None.  They are written here from the documented behaviour of the tools (docs/threat_model.md
names each source); no tool code is copied.

* Pacu's ``iam__detect_honeytokens`` provokes a denied call and reads the ARN in its error: vendor
  domains (canarytokens.com / .org), SpaceCrab's ``/SpaceCrab/`` IAM path, Canarytokens' own account,
  and SpaceSiren's UUID4 user names.
* TruffleHog decodes the account id from the access key id offline (base32 of the characters after the
  4-letter prefix; bits 7..46 of the first 6 bytes) and compares it with the accounts of canary vendors;
  its verification step reads the ARN from an ``sns:Publish`` denial.
* Vendor markers seen in the wild: ``@@`` in Thinkst's user names, ``/ggcanary/`` (GitGuardian's
  ggcanary IAM path), and the words and machine-made shapes nobody gives a service user.
* The wording of a denial: an explicit deny ("with an explicit deny in an identity-based policy") on
  every call of a fresh key says quarantined or decoy; a least-privilege user's key reads "because no
  identity-based policy allows".
* Consistency: the same placement on the hosts of one group must be named one way, differing only by
  the host; a person's key named after the person.
"""

from __future__ import annotations

import base64
import re

# Canarytokens.org (Thinkst) and the "off brand" canary services TruffleHog knows, as its detector lists them.
CANARY_ACCOUNTS = frozenset((
    "052310077262", "171436882533", "534261010715", "595918472158", "717712589309", "819147034852", "992382622183",
    "730335385048", "266735846894", "893192397702",
    "044858866125", "251535659677", "344043088457", "351906852752", "390477818340", "426127672474", "427150556519",
    "439872796651", "445142720921", "465867158099", "637958123769", "693412236332", "732624840810", "735421457923",
    "959235150393", "982842642351",
))

UUID4 = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}", re.IGNORECASE)
ANY_UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE)
EC2_INSTANCE_ID = re.compile(r"(?<![a-z0-9])i-[0-9a-f]{8,17}(?![a-z0-9])", re.IGNORECASE)
# Eight or more hex characters mixing letters and digits: a hash or a random id.
HEX_RUN = re.compile(r"(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{8,}", re.IGNORECASE)
VENDOR_MARKERS = ("canarytokens.com", "canarytokens.org", "/spacecrab/", "/ggcanary/", "@@", "canary", "honey", "decoy",
                  "tripwire", "spacesiren", "thinkst")
EXPLICIT_DENY = "with an explicit deny in"
IMPLICIT_DENY = "because no identity-based policy allows"
DENIED_ARN = re.compile(r"User: (arn:aws:(?:iam|sts)::\d{12}:[^ ]+) is not authorized to perform: ")
PERSON_NAME = re.compile(r"^[a-z]+(?:[._-][a-z]+)*\d*$")


def account_from_key_id(access_key_id: str) -> str | None:
    """The account id an AKIA/ASIA key id encodes, decoded offline; None for ids that encode none (…I, …J, malformed)."""
    if len(access_key_id) < 16 or access_key_id[4] in "IJ":
        return None
    body = access_key_id[4:].upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError:
        return None
    number = int.from_bytes(raw[:6], "big")
    return "%012d" % ((number & 0x7FFFFFFFFF80) >> 7)


def arn_from_denial(message: str) -> str | None:
    match = DENIED_ARN.search(message or "")
    return match.group(1) if match else None


def pacu_verdict(message: str) -> str | None:
    """Pacu iam__detect_honeytokens on a denial message."""
    if "canarytokens.com" in message or "canarytokens.org" in message:
        return "Canarytokens domain"
    if "arn:aws:iam::" in message and "/SpaceCrab/" in message:
        return "SpaceCrab path"
    if "arn:aws:iam::534261010715:" in message or "arn:aws:sts::534261010715:" in message:
        return "Canarytokens account"
    if UUID4.search(message):
        return "UUID4 user name (SpaceSiren)"
    return None


def trufflehog_verdict(access_key_id: str, arn: str) -> str | None:
    """TruffleHog's offline decoding and its canary account lists (the ARN's account as its verification reads it)."""
    decoded = account_from_key_id(access_key_id)
    if decoded in CANARY_ACCOUNTS:
        return f"key id decodes to canary account {decoded}"
    account = arn.split(":")[4] if arn and arn.count(":") >= 5 else None
    if account in CANARY_ACCOUNTS:
        return f"ARN in canary account {account}"
    return None


def vendor_verdict(text: str) -> str | None:
    """Vendor markers and machine-made shapes in an ARN, a user name, a path or a file's text."""
    lowered = (text or "").lower()
    for marker in VENDOR_MARKERS:
        if marker in lowered:
            return f"contains {marker!r}"
    for name, pattern in (("a UUID", ANY_UUID), ("an EC2 instance id", EC2_INSTANCE_ID), ("a long hex run", HEX_RUN)):
        if pattern.search(text or ""):
            return f"contains {name}"
    return None


def denial_verdict(message: str) -> str | None:
    if EXPLICIT_DENY in (message or ""):
        return "explicit deny: quarantined or decoy"
    if IMPLICIT_DENY not in (message or ""):
        return "not worded as AWS words a least-privilege denial"
    return None


def consistency_verdict(names_by_host: dict) -> str | None:
    """One placement across the hosts of a group: one pattern, differing only by the host.

    ``names_by_host``: inventory host -> user name.  The attacker's reading: put ``{host}`` where a name
    holds its host's short name; the names that do must give one pattern, and the others (a host whose
    name is not in its user's) must fit the same pattern around a part of their own.
    """
    if len(set(names_by_host.values())) != len(names_by_host):
        return "two hosts share a user name"
    patterns, unlabelled = set(), []
    for host, name in names_by_host.items():
        label = host.split(".")[0].lower()
        if label and label in name:
            patterns.add(name.replace(label, "{host}", 1))
        else:
            unlabelled.append(name)
    if len(patterns) > 1:
        return "one placement named %d ways: %s" % (len(patterns), ", ".join(sorted(patterns)))
    if not patterns:
        return None if len(unlabelled) < 2 else "no name shows its host"
    head, tail = patterns.pop().split("{host}", 1)
    for name in unlabelled:
        if not (name.startswith(head) and name.endswith(tail) and len(name) > len(head) + len(tail)):
            return f"{name} does not follow {head}{{host}}{tail}"
    return None


def person_verdict(user_name: str, login: str) -> str | None:
    """A key in a person's own home named as a person's IAM user: after the login."""
    if not PERSON_NAME.match(user_name):
        return f"{user_name} is not shaped like a person's name"
    if not user_name.startswith(login.lower()):
        return f"{user_name} is not named after {login}"
    return None
