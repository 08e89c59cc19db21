# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The account's credential report: every user's key slots (active flag, creation, last use) in one download.

Shared by canary_key_info (module_utils/_iam/estate.py, through _iam/credential_report.py) and the
last-used detector Lambda (lambda/last_used_detector.py).  Standard library only: packaged verbatim at
the root of the Lambda zip, next to ``canary_mapping.py``.

It has no key ids, and IAM regenerates it at most every 4 hours.  ``canary_key`` records the key it hands
out on the user (``canarykeys:access-key-id`` and ``-created``), so a report slot created at that very
second is that key: the callers trust the report for the canaries it covers exactly and list the others'
keys with ListAccessKeys.
"""

from __future__ import annotations

import csv
import datetime
import io
import time

try:  # in the collection
    from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared.canary_mapping import utc
except ImportError:  # at the Lambda zip's root, where the shared files import each other by bare name
    from canary_mapping import utc  # type: ignore[no-redef]

_MAX_POLL_INTERVAL = 10.0


class ReportNotReady(RuntimeError):
    """IAM did not finish the credential report in the time given."""


class CredentialReport:
    """The parsed credential report: key slots per user name, and how new the report is."""

    def __init__(self, text: str, generated=None):
        self.rows = {row["user"]: row for row in csv.DictReader(io.StringIO(text)) if row.get("user")}
        # IAM's GeneratedTime is the truth on AWS; moto builds the report live but answers a fixed
        # 2015 date.  A report cannot list anything that did not exist yet, so it is at least as
        # new as every time it contains.
        times = [utc(generated)]
        for row in self.rows.values():
            times.append(utc(row.get("user_creation_time")))
            for slot in (1, 2):
                times.append(utc(row.get(f"access_key_{slot}_last_rotated")))
                times.append(utc(row.get(f"access_key_{slot}_last_used_date")))
        known = [when for when in times if when is not None]
        self.as_of = max(known) if known else None

    def covers(self, user_name: str, planted_key) -> bool:
        """Whether the report names every key of this canary: it holds exactly one, created when the tags say.

        ``planted_key`` is ``canary_mapping.planted_key_from_tags()`` of the user.  Anything else (no tags,
        no key or two keys in the report, a key of another second) is a state the report cannot name the
        keys of, or that changed after it was made: the caller lists that user with ListAccessKeys.
        """
        if planted_key is None or user_name not in self.rows:
            return False
        slots = self._slots(self.rows[user_name])
        return len(slots) == 1 and slots[0][1] == planted_key[1]

    @staticmethod
    def _slots(row: dict) -> list[tuple[int, datetime.datetime]]:
        slots = [(slot, utc(row.get(f"access_key_{slot}_last_rotated"))) for slot in (1, 2)]
        return [(slot, created) for slot, created in slots if created is not None]

    def keys(self, user_name: str, planted_key=None) -> list[dict]:
        """The user's keys in the report; the one created when ``planted_key`` says gets its id."""
        row = self.rows[user_name]
        keys = []
        for slot, created in self._slots(row):
            keys.append({
                "access_key_id": planted_key[0] if planted_key and planted_key[1] == created else None,
                "slot": slot,
                "status": "Active" if row.get(f"access_key_{slot}_active", "").lower() == "true" else "Inactive",
                "created": created,
                # (date, service, region) as the report writes them; the estate puts them in its result's shape.
                "report_last_use": (
                    row.get(f"access_key_{slot}_last_used_date"),
                    row.get(f"access_key_{slot}_last_used_service"),
                    row.get(f"access_key_{slot}_last_used_region"),
                ),
            })
        return keys


def fetch(call, poll_interval: float = 0.5, timeout: float = 300.0, sleep=time.sleep, clock=time.monotonic) -> CredentialReport:
    """Generate (or reuse, if under 4 hours old) the account's credential report and download it.

    ``call`` is an ``iam_reads.IAMCalls``.  A new report usually takes seconds, a large account's longer:
    the polls start fast and back off.  Raises ReportNotReady after ``timeout`` seconds.
    """
    deadline = clock() + timeout
    while call("generate_credential_report").get("State") != "COMPLETE":
        if clock() >= deadline:
            raise ReportNotReady(f"IAM did not finish the credential report within {timeout:.0f} seconds")
        sleep(poll_interval)
        poll_interval = min(poll_interval * 2, _MAX_POLL_INTERVAL)
    response = call("get_credential_report")
    content = response.get("Content", b"")
    text = content.decode("utf-8") if isinstance(content, bytes) else str(content)
    return CredentialReport(text, response.get("GeneratedTime"))
