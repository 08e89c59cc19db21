# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The IAM reads of the canary estate, shared by canary_key_info (module_utils/_iam/estate.py) and the
last-used detector Lambda (lambda/last_used_detector.py).

Standard library only: this file is packaged verbatim at the root of the Lambda zip, next to
``canary_mapping.py``.  It takes any botocore IAM client; the controller passes AnsibleAWSModule's
retrying client (``aws_retry=True``), the Lambda a plain boto3 client with standard retries.

* ``ListUsers`` does not return tags and a canary is recognised only by its tags, so users come from
  ``GetAccountAuthorizationDetails`` with ``Filter=["User"]``: every user *with its tags*, up to 1,000
  per page.  Its cost grows with pages, not users.
* No bulk IAM read returns access key ids: ``ListAccessKeys`` (one call per user) is the listing of ids.
  The credential report (credential_report.py) and the key-id tags the seed writes name them for most
  canaries without it.
* ``GetAccessKeyLastUsed`` is the one always-current record of a key's last use.
"""

from __future__ import annotations

import collections
import threading
import time

try:  # in the collection
    from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping
except ImportError:  # at the Lambda zip's root, where the shared files import each other by bare name
    import canary_mapping  # type: ignore[no-redef]

# GetAccountAuthorizationDetails accepts MaxItems 1..1000 (botocore's IAM model).
MAX_PAGE_SIZE = 1000
# The error codes that mean "this user or key went away between two reads".
GONE = ("NoSuchEntity",)


def error_code(error) -> str:
    """The AWS error code of a botocore ClientError (``""`` for any other exception)."""
    return (getattr(error, "response", None) or {}).get("Error", {}).get("Code", "")


def plain(value) -> str | None:
    """A service or region name, or None for IAM's placeholders (canary_mapping.NO_VALUE)."""
    text = "" if value is None else str(value).strip()
    return None if text in canary_mapping.NO_VALUE else text


class IAMCalls:
    """Calls IAM through a client and counts each call by action (retries inside the client are not counted).

    ``aws_retry=True`` for amazon.aws's retrying client wrapper, which takes it as a call argument.
    ``rate``: at most this many calls a second, whatever the number of threads (None: unpaced).  IAM's
    request budget is the account's: a scheduled reader paces itself so the account's own calls (the
    seed, the console, other tools) keep most of it.
    """

    def __init__(self, client, aws_retry: bool = False, rate: float | None = None, sleep=time.sleep, clock=time.monotonic):
        self.client = client
        self._extra = {"aws_retry": True} if aws_retry else {}
        self.counts = collections.Counter()
        self._lock = threading.Lock()
        self._interval = 1.0 / rate if rate else 0.0
        self._next_slot = 0.0
        self._sleep = sleep
        self._clock = clock

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __call__(self, method: str, **params):
        action = "".join(part.capitalize() for part in method.split("_"))
        wait = 0.0
        with self._lock:
            self.counts[action] += 1
            if self._interval:
                # Each call takes the next free slot, ``1 / rate`` seconds after the previous one.
                now = self._clock()
                slot = max(now, self._next_slot)
                self._next_slot = slot + self._interval
                wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return getattr(self.client, method)(**self._extra, **params)


def list_canaries(call: IAMCalls, iam_path: str = "", page_size: int = MAX_PAGE_SIZE) -> tuple:
    """``([(user detail, tags, mapping)...], users in the account)``: the canaries under ``iam_path``, in bulk.

    A canary is a user whose tags give a mapping (canary_mapping.mapping_from_tags); users outside the
    path are skipped before their tags are read (the Lambda's role may read keys under it only).
    """
    canaries, users = [], 0
    params = {"Filter": ["User"], "MaxItems": page_size}
    while True:
        page = call("get_account_authorization_details", **params)
        for user in page.get("UserDetailList", []):
            users += 1
            if not (user.get("Path") or "/").startswith(iam_path or ""):
                continue
            tags = canary_mapping.tags_list_to_dict(user.get("Tags"))
            mapping = canary_mapping.mapping_from_tags(tags)
            if mapping is not None:
                canaries.append((user, tags, mapping))
        # IAM may return fewer than MaxItems and still have more: only IsTruncated ends the listing.
        if not page.get("IsTruncated"):
            return canaries, users
        params["Marker"] = page["Marker"]


def list_access_keys(call: IAMCalls, user_name: str) -> list | None:
    """The user's ListAccessKeys entries (at most 2, so never a second page); None if the user is gone."""
    try:
        return call("list_access_keys", UserName=user_name).get("AccessKeyMetadata", [])
    except Exception as error:  # pylint: disable=broad-exception-caught
        # Only botocore's ClientError carries an error code; anything else is raised again.
        if error_code(error) in GONE:
            return None
        raise


def access_key_last_used(call: IAMCalls, access_key_id: str, gone=GONE) -> dict | None:
    """``{"date", "service", "region"}`` of the key's last use (each None when unknown); None if the key is gone.

    ``gone``: the error codes that mean the key no longer exists (AWS answers AccessDenied for a deleted
    key of the caller's account, moto NoSuchEntity).
    """
    try:
        record = call("get_access_key_last_used", AccessKeyId=access_key_id).get("AccessKeyLastUsed", {})
    except Exception as error:  # pylint: disable=broad-exception-caught
        if error_code(error) in gone:
            return None
        raise
    return {"date": canary_mapping.utc(record.get("LastUsedDate")), "service": plain(record.get("ServiceName")),
            "region": plain(record.get("Region"))}
