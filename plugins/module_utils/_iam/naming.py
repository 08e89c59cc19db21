# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The IAM user name of a canary placement: pure (no AWS, no Ansible).

A placement's candidate user names are an ordered, deterministic sequence, so every run of every
controller tries the same names in the same order; the first that is free or already ours wins
(module_utils/_iam/calls.py resolves them).  Names must look like ordinary service users: every
denied AWS call shows the user's ARN to the caller.
"""

from __future__ import annotations

import ipaddress
import re
import string
import unicodedata

from ansible_collections.canarykeys.aws.plugins.module_utils._iam.errors import PlacementError
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping

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
# Enough for every purpose once plus a few numbered rounds; a placement that needs more has a
# naming problem a person should look at.
MAX_ATTEMPTS = 20


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

    Raises PlacementError for a bad template or a host with no usable character, before any AWS call.
    """
    template = template or DEFAULT_TEMPLATE
    fields = template_fields(template)
    host_part = short_host(host)
    if "host" in fields and not host_part:
        raise PlacementError(
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
            raise PlacementError(f"user_name_template {template!r} gives an empty user name for host {host!r}, profile {profile!r}")
        if name not in names:
            names.append(name)
    return names
