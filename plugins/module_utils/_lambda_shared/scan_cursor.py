# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The last-used detector's rotation state: where its next run resumes, kept as one tag on a canary user.

A large estate does not fit one run's IAM budget, so the detector (lambda/last_used_detector.py) reads a
slice of the canaries per run and goes round them all over several runs.  The canaries sit on a ring,
ordered by ``ring_position`` (a hash of the user name: stable, and indifferent to users coming and
going); the cursor says where the next run resumes and which canaries it must check again first
(an alert no channel took, a read that failed).  It is written on a canary user, as the tag
``canarykeys:last-used-cursor`` (the detector keeps its other state, the reported use, on the same
users), and read back from the bulk user listing at no cost.  The tamper detector treats a change to it,
like one to ``canarykeys:last-used-reported``, as the detection's own.

Value: ``<written, ISO 8601 UTC> <next position> [<position to check again>...]``, space separated (IAM
tag values allow no comma); 12 hex digits a position, at most 16 to check again: 254 characters at most.

Standard library only: packaged verbatim at the root of the Lambda zip, next to ``canary_mapping.py``.
"""

from __future__ import annotations

import datetime
import hashlib
import re

try:  # in the collection
    from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping
except ImportError:  # at the Lambda zip's root, where the shared files import each other by bare name
    import canary_mapping  # type: ignore[no-redef]

TAG_LAST_USED_CURSOR = canary_mapping.TAG_PREFIX + "last-used-cursor"
POSITION_DIGITS = 12
MAX_RETRIES = 16
_POSITION_RE = re.compile(r"^[0-9a-f]{%d}$" % POSITION_DIGITS)


def ring_position(user_name: str) -> str:
    """Where a canary sits on the ring: the first 48 bits of the SHA-256 of its user name, in hex."""
    return hashlib.sha256(user_name.encode("utf-8")).hexdigest()[:POSITION_DIGITS]


class Cursor:
    """Where the next run resumes (``next``: a ring position) and the positions it checks again first."""

    __slots__ = ("written", "next", "retry")

    def __init__(self, written: datetime.datetime | None, next_position: str, retry=()):
        self.written = written
        self.next = next_position
        self.retry = tuple(retry)[:MAX_RETRIES]

    @classmethod
    def parse(cls, value) -> Cursor | None:
        """The cursor a tag value holds, or None for anything else (nothing the detector wrote)."""
        tokens = str(value or "").split()
        if len(tokens) < 2 or not all(_POSITION_RE.match(token) for token in tokens[1:]):
            return None
        written = canary_mapping.utc(tokens[0])
        return None if written is None else cls(written, tokens[1], tokens[2:])

    def value(self) -> str:
        written = self.written.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return " ".join((written, self.next, *self.retry))

    def same_place(self, other: Cursor | None) -> bool:
        return other is not None and (self.next, self.retry) == (other.next, other.retry)


def newest(tag_values) -> Cursor | None:
    """The newest cursor among tag values (one per user holding the tag): the holder may have changed."""
    cursors = [cursor for cursor in map(Cursor.parse, tag_values) if cursor is not None]
    return max(cursors, key=lambda cursor: cursor.written) if cursors else None
