# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""IAM's user quota, checked before a batch creates users.

IAM allows at most 5,000 users in an account.  A batch that would pass it fails part way, after
creating users and minting keys for some placements: so the batch counts first and refuses whole,
before any write.  A placement counts as a new user unless the bulk read named its user
(``user_name``), so the count is an upper bound: a refusal can be early, never late.
"""

from __future__ import annotations

from ansible_collections.canarykeys.aws.plugins.module_utils._iam import calls


def new_users(requests) -> int:
    """How many placements of an ensure batch may each create an IAM user."""
    return sum(1 for request in requests if not request.get("user_name"))


def account_users(client) -> tuple:
    """``(users now, IAM's user quota)`` of the account, from one GetAccountSummary."""
    summary = calls.call(client, "get_account_summary", "Failed to read the account's IAM summary")["SummaryMap"]
    return summary.get("Users", 0), summary.get("UsersQuota", 5000)


def quota_problem(account_id: str, users_now: int, asked: int, quota: int) -> str:
    """The one line that refuses a batch which would pass the quota, or "" when it fits."""
    if users_now + asked <= quota:
        return ""
    return (f"Account {account_id} has {users_now} IAM users and this run asks for up to {asked} new canary users, "
            f"past IAM's quota of {quota} users per account; nothing was changed. Spread the estate over several "
            "accounts, or retire canaries of hosts that are gone (retire_canaries.yml -e purge_missing=true).")
