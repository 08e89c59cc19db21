# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that spread the roles' work over several canary accounts (docs/accounts.md).

``canary_accounts`` lists the accounts; a host's ``canary_account`` names one (default: the first).  Each
role groups the hosts of its play by account and runs one bulk read, one lease and one batch per
account; the controller modules reach an account through their ``account`` option (one AssumeRole per
module run, inside the module), so no temporary credential travels through Ansible variables.

Groups come out in the order of ``canary_accounts``: two runs that take the leases of several accounts
take them in the same order, so neither can hold one lease while waiting for the other's.

Each filter's documentation is in the file of its name next to this one (``account_groups.yml``...).
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.collections import is_string

# An entry's keys; everything but ``name`` is an option of the modules' ``account``.
ENTRY_KEYS = ("name", "role_arn", "external_id", "session_name", "profile")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
# Summary counts of canary_key_info that add up over accounts (hosts are recounted).
SUMMED = ("canaries", "access_keys", "orphans", "dead", "used")


def _entries(canary_accounts):
    """``canary_accounts`` checked: a list of entries with unique names, each reached one way."""
    if canary_accounts in (None, ""):
        return []
    if not isinstance(canary_accounts, (list, tuple)):
        raise AnsibleFilterError("canary_accounts must be a list of accounts, not %s" % type(canary_accounts).__name__)
    names = set()
    for position, entry in enumerate(canary_accounts, 1):
        if not isinstance(entry, dict) or not is_string(entry.get("name")) or not entry.get("name"):
            raise AnsibleFilterError("canary_accounts entry %d needs a name" % position)
        name = entry["name"]
        unknown = sorted(str(key) for key in entry if key not in ENTRY_KEYS)
        if unknown:
            raise AnsibleFilterError("canary_accounts entry %s has unknown key(s) %s: it takes %s"
                                     % (name, ", ".join(unknown), ", ".join(ENTRY_KEYS)))
        if name in names:
            raise AnsibleFilterError("canary_accounts names %s twice" % name)
        names.add(name)
        if entry.get("role_arn") and entry.get("profile"):
            raise AnsibleFilterError("canary_accounts entry %s sets both role_arn and profile: give one" % name)
        if entry.get("role_arn") and not ROLE_ARN.match(str(entry["role_arn"])):
            raise AnsibleFilterError("canary_accounts entry %s: role_arn %s is not an IAM role ARN" % (name, entry["role_arn"]))
    return list(canary_accounts)


def account_entry(name, canary_accounts):
    """The ``account`` option of the modules for the account named ``name`` ({} for the controller's own account).

    ``name`` empty means the first entry (or, with no ``canary_accounts``, the controller's own account).
    """
    entries = _entries(canary_accounts)
    if not entries:
        if name:
            raise AnsibleFilterError("canary_account is %s, but canary_accounts lists no account" % name)
        return {}
    wanted = name or entries[0]["name"]
    for entry in entries:
        if entry["name"] == wanted:
            return {key: entry[key] for key in ENTRY_KEYS if entry.get(key) not in (None, "")}
    raise AnsibleFilterError("canary_account %s is not in canary_accounts (%s)"
                             % (wanted, ", ".join(entry["name"] for entry in entries)))


def account_groups(hosts, hostvars, canary_accounts):
    """The hosts grouped by their canary account: ``[{"name", "account", "hosts"}]`` in ``canary_accounts`` order.

    ``account`` is the modules' option for the group (``{}``: the controller's own account); only accounts
    with at least one of ``hosts`` appear.
    """
    by_name = {}
    for host in hosts or []:
        variables = hostvars[host] if hostvars is not None else {}
        wanted = variables.get("canary_account") or ""
        entry = account_entry(wanted, canary_accounts)
        by_name.setdefault(entry.get("name", ""), {"name": entry.get("name", ""), "account": entry, "hosts": []})["hosts"].append(host)
    order = [entry["name"] for entry in _entries(canary_accounts)] or [""]
    return [by_name[name] for name in order if name in by_name]


def named_accounts(names, canary_accounts):
    """The accounts named in ``names`` (requests' ``account``), once each, as groups without hosts, in ``canary_accounts`` order."""
    wanted = {account_entry(name or "", canary_accounts).get("name", "") for name in names or []}
    return [group for group in all_accounts(canary_accounts) if group["name"] in wanted]


def all_accounts(canary_accounts):
    """Every account as a group without hosts (``[{"name", "account", "hosts": []}]``), for reads of whole accounts."""
    entries = _entries(canary_accounts)
    if not entries:
        return [{"name": "", "account": {}, "hosts": []}]
    return [{"name": entry["name"], "account": account_entry(entry["name"], entries), "hosts": []} for entry in entries]


def account_label(item):
    """How a row names its account: the canary_accounts name, else the account id ("" when neither is known)."""
    return (item or {}).get("account") or (item or {}).get("account_id") or ""


def results_of(registered):
    """The module results in a registered variable: one result, or the results of a loop."""
    registered = registered or {}
    if "results" in registered and isinstance(registered["results"], list):
        return [result for result in registered["results"] if isinstance(result, dict) and not result.get("skipped")]
    return [registered] if not registered.get("skipped") else []


def canaries_of(estate):
    """The canaries of canary_key_info's registered result (one result or a loop's), or of a list of canaries."""
    if isinstance(estate, (list, tuple)):
        return list(estate)
    canaries = []
    for result in results_of(estate):
        canaries.extend(result.get("canaries") or [])
    return canaries


def estate_merge(registered):
    """canary_key_info's results over several accounts (a loop's registered variable) as one result.

    ``canaries``, ``placements`` and ``orphans`` are concatenated in account order (each item says its
    ``account``); ``summary`` and ``iam_calls`` counts are summed, ``hosts`` recounted;
    ``credential_report_as_of`` is the oldest.
    A single result passes through unchanged.
    """
    results = results_of(registered)
    if "results" not in (registered or {}):
        return registered
    merged = {"canaries": [], "placements": [], "orphans": [], "summary": {}, "iam_calls": {}, "accounts": []}
    report_ages = []
    for result in results:
        merged["canaries"].extend(result.get("canaries") or [])
        merged["placements"].extend(result.get("placements") or [])
        merged["orphans"].extend(result.get("orphans") or [])
        for operation, count in (result.get("iam_calls") or {}).items():
            merged["iam_calls"][operation] = merged["iam_calls"].get(operation, 0) + count
        for key, value in (result.get("summary") or {}).items():
            if key in SUMMED:
                merged["summary"][key] = merged["summary"].get(key, 0) + (value or 0)
        if result.get("credential_report_as_of"):
            report_ages.append(result["credential_report_as_of"])
        merged["key_source"] = result.get("key_source")
        merged["accounts"].append({"account": result.get("account", ""), "account_id": result.get("account_id", "")})
    merged["summary"]["hosts"] = len({(canary.get("mapping") or {}).get("host") for canary in merged["canaries"]})
    merged["credential_report_as_of"] = min(report_ages) if report_ages else None
    return merged


class FilterModule:
    def filters(self):
        return {
            "account_entry": account_entry,
            "account_groups": account_groups,
            "all_accounts": all_accounts,
            "named_accounts": named_accounts,
            "estate_merge": estate_merge,
        }
