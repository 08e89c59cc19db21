# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The IAM user name of a canary placement: pure (no AWS, no Ansible).

A placement's candidate user names are an ordered, deterministic sequence, so every run of every
controller tries the same names in the same order; the first that is free or already ours wins
(module_utils/_iam/calls.py resolves them).  Names must look like an ordinary estate's: every denied
AWS call shows the user's ARN to the caller, and an attacker who finds two keys compares them.  So a
name follows its placement (the same placement on the hosts of one group differs only by the host), a
person's key is named after the person, and nothing in a name is machine-made (docs/canary_key.md).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import string
import unicodedata

from ansible_collections.canarykeys.aws.plugins.module_utils._iam.errors import PlacementError

DEFAULT_TEMPLATE = "{host}-{purpose}"
# A person's own IAM user is named after the person: a template with {user} and no {host} names the
# owner of the file, so laptops get "mira", not "laptop-mira-backup".
PERSON_TEMPLATE = "{user}"
TEMPLATE_FIELDS = ("host", "purpose", "profile", "user")

# {purpose} for a placement whose profile says nothing (default) and whose owner is root.
ROOT_PURPOSE = "ops"

# Stealth is the product: an attacker who sees the user ARN (every denied call echoes it) must not
# read "trap" in it.  Substring matching is deliberate (it also refuses "honeypot", "canary01").
TELLTALE_WORDS = ("canary", "honey", "decoy", "trap", "token", "tripwire", "@@")

# What scanners read as machine-made: a UUID, an EC2 instance id, a run of hex digits (a hash).
# A run of 8+ hex characters mixing letters and digits is one; "facade" or "20240101" are not.
UUID_PATTERN = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE)
EC2_ID_PATTERN = re.compile(r"^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$", re.IGNORECASE)
HEX_RUN_PATTERN = re.compile(r"(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{8,}", re.IGNORECASE)

USER_NAME_MAX = 64
USER_NAME_INVALID = re.compile(r"[^A-Za-z0-9+=,.@_-]")
USER_NAME_SEPARATORS = "-_.,=+@"
IAM_PATH_PATTERN = re.compile(r"^/(?:[\x21-\x7e]+/)?$")
IAM_PATH_MAX = 512
# The template's name, its variants, then numbered ones; a placement that needs more has a naming
# problem a person should look at.
MAX_ATTEMPTS = 20


def sanitize_user_name(text) -> str:
    """``text`` within IAM's user-name characters: others become ``-``, runs of ``-`` collapse,
    no separator at either end.  Accented letters keep their base letter (``München`` -> ``Munchen``)."""
    ascii_text = unicodedata.normalize("NFKD", str(text or "")).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"-{2,}", "-", USER_NAME_INVALID.sub("-", ascii_text)).strip(USER_NAME_SEPARATORS)


def machine_made(text) -> bool:
    """Whether ``text`` holds what scanners read as machine-made: a UUID, an EC2 instance id or a long hex run."""
    text = str(text or "")
    return bool(UUID_PATTERN.search(text) or EC2_ID_PATTERN.match(text) or HEX_RUN_PATTERN.search(text))


def _draw(text, salt: str) -> int:
    """A number drawn from ``text``: the same host gives the same name on every run of every controller."""
    return int(hashlib.sha256(f"{salt}:{text}".encode("utf-8")).hexdigest(), 16)


def plausible_host(label: str) -> str:
    """A host label as people name hosts, for one that is machine-made or carries a telltale word.

    What is left once the hex runs (and telltale words) are cut keeps its place with a two-digit
    number (``web-3f9a2b7c1d`` -> ``web-42``); a label with nothing left (a UUID, an EC2 instance id,
    a hash) takes the form of EC2's own private host names, ``ip-10-A-B-C``.  Deterministic.
    """
    if not machine_made(label) and telltale_in(label) is None:
        return label
    rest = EC2_ID_PATTERN.sub("", UUID_PATTERN.sub("", label))
    rest = HEX_RUN_PATTERN.sub("", rest)
    for word in TELLTALE_WORDS:
        rest = re.sub(re.escape(word), "", rest, flags=re.IGNORECASE)
    rest = sanitize_user_name(re.sub(r"[-_.]{2,}", "-", rest))
    number = _draw(label, "host")
    if sum(char.isalpha() for char in rest) >= 2:
        return f"{rest}-{10 + number % 90}"
    return "ip-10-{}-{}-{}".format(number % 256, (number >> 8) % 256, 1 + (number >> 16) % 254)


def short_host(host) -> str:
    """The host's short name as a user-name part: first DNS label, lowercased; an IP address whole, with dashes.

    A machine-made label (UUID, EC2 instance id, hash) is replaced by a plausible one (``plausible_host``).
    """
    text = str(host or "").strip().strip("[]")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        text = text.split(".", 1)[0]
    else:
        # The first label of an address is a meaningless octet: keep it whole, as people write hosts.
        text = re.sub(r"[.:%]", "-", text)
    label = sanitize_user_name(text.lower())
    return plausible_host(label) if label else label


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
    """The placeholders of a user-name template, validated; raises PlacementError."""
    if not template:
        raise PlacementError("user_name_template is empty")
    word = telltale_in(template)
    if word:
        raise PlacementError(
            f"user_name_template {template!r} contains {word!r}: canary user names must look like ordinary service users "
            f"(never {', '.join(TELLTALE_WORDS)})"
        )
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise PlacementError(f"user_name_template {template!r} is not a valid template: {e}") from e
    fields = set()
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS or spec or conversion:
            raise PlacementError(
                f"user_name_template {template!r} uses {{{name}}}; the template may use only "
                + ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
            )
        fields.add(name)
    return fields


def check_iam_path(iam_path) -> str:
    """The IAM path, validated (IAM's own rules plus the stealth word check); raises PlacementError."""
    path = str(iam_path or "")
    if len(path) > IAM_PATH_MAX or not IAM_PATH_PATTERN.match(path):
        raise PlacementError(
            f"iam_path {path!r} is not an IAM path: it must start and end with '/', use printable ASCII only and be at most "
            f"{IAM_PATH_MAX} characters"
        )
    word = telltale_in(path)
    if word:
        raise PlacementError(f"iam_path {path!r} contains {word!r}: every denied call shows the user's ARN, path included")
    return path


def _plausible_word(text) -> str:
    word = sanitize_user_name(str(text or "").lower())
    if not word or len(word) > 32 or machine_made(word) or telltale_in(word) is not None:
        return ""
    return word


def placement_purpose(profile, user) -> str:
    """``{purpose}``: what the placement is for, the same on every host of a group.

    The profile name when it says something (``prod``, ``backup``); for ``default`` (or a name that
    would give the key away) the file's owner (``deploy``); for root's ``default``, ``ops``.
    """
    word = _plausible_word(profile)
    if word and word != "default":
        return word
    owner = _plausible_word(user)
    if owner and owner != "root":
        return owner
    return ROOT_PURPOSE


def person_login(user) -> str:
    """The owner's login as a person's user name (``mira``, ``tomas.novak``), or "" when the owner is no person."""
    login = _plausible_word(user)
    return "" if login in ("", "root") else login


def is_person_template(fields) -> bool:
    return "user" in fields and "host" not in fields


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


def _fallbacks(template: str, fields: set, values: dict) -> list:
    """The templates tried after ``template`` when its name is taken, in order.

    A person's name (``mira``) takes the purpose next (``mira.deploy``); a service name that lacks the
    owner takes it next (``web01-prod-deploy``, for root's and the app user's ``prod`` on one host).
    Numbered names (``web01-prod2``, ``mira2``) come last, so the sequence never runs dry.
    """
    templates = [template]
    if is_person_template(fields) and not fields & {"purpose", "profile"} and values["purpose"] != values["user"]:
        templates.append(template + ".{purpose}")
    elif "host" in fields and not fields & {"purpose", "profile"}:
        templates.append(template + "-{purpose}")
    if "user" not in fields and values["user"] and values["user"] not in (values["purpose"], "root"):
        templates.append(template + "-{user}")
    return templates


def candidate_names(host, path, profile, template=DEFAULT_TEMPLATE, attempts=MAX_ATTEMPTS) -> list:
    """The ordered user names a placement may take; the first free or already ours wins.

    The names follow the placement, not a draw: the app user's ``prod`` is ``web01-prod`` on web01 and
    ``web02-prod`` on web02.  A person template on a file no person owns (root's, or outside a home)
    falls back to DEFAULT_TEMPLATE.  Raises PlacementError for a bad template or a host with no usable
    character, before any AWS call.
    """
    template = template or DEFAULT_TEMPLATE
    fields = template_fields(template)
    owner = os_user(path)
    if is_person_template(fields) and not person_login(owner):
        template, fields = DEFAULT_TEMPLATE, template_fields(DEFAULT_TEMPLATE)
    host_part = short_host(host)
    if "host" in fields and not host_part:
        raise PlacementError(
            f"host {host!r} has no character usable in an IAM user name (A-Z a-z 0-9 + = , . @ _ -); "
            "set user_name_template to a template that does not need it, or rename the inventory host"
        )
    values = {"host": host_part, "profile": _plausible_word(profile) or placement_purpose(profile, owner),
              "user": _plausible_word(owner), "purpose": placement_purpose(profile, owner)}
    names = []
    for attempt_template in _fallbacks(template, fields, values):
        name = render_user_name(attempt_template, values)
        if not name:
            raise PlacementError(f"user_name_template {template!r} gives an empty user name for host {host!r}, profile {profile!r}")
        if name not in names:
            names.append(name)
    number = 2
    # Numbered as people number a second account: the digits after the whole name ("-" after a digit).
    separator = "-" if names[0][-1].isdigit() else ""
    while len(names) < attempts:
        name = render_user_name(f"{template}{separator}{number}", values)
        number += 1
        if name not in names:
            names.append(name)
    return names[:attempts]
