# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that match the canary estate IAM records with the hosts of the inventory.

The rotate, retire and report roles decide with them which canaries belong to a host, which OS user
owns a placement's file, and what a retirement or reconciliation did.  Each rule is computed once,
by the module_utils function the modules use (the tag sanitising and the placement id of
_lambda_shared.canary_mapping, the owner of _iam.naming), so the roles cannot drift from what the seed recorded.
Each filter is documented in the adjacent YAML file of its name (plugins/filter/<filter>.yml).

Their input is canary_key_info's result (no secret) and credentials_profile query results (key ids
only): nothing they return can carry a secret access key.
"""

from __future__ import annotations

import datetime
import json

from ansible.errors import AnsibleFilterError

from ansible_collections.canarykeys.aws.plugins.filter.accounts import account_label, canaries_of, results_of
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.naming import os_user
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared.canary_mapping import placement_id, sanitize_tag_value


def _host_of(item):
    """The recorded host of a canary (``mapping.host``) or of a flat placement row (``host``)."""
    mapping = item.get("mapping")
    return (mapping if isinstance(mapping, dict) else item).get("host")


def _key_ids(canary):
    return [key.get("access_key_id") for key in canary.get("keys") or []]


def _row(host, path, profile, user_name, key_ids, status, account=""):
    return {"host": host, "account": account, "path": path, "profile": profile, "iam_user": user_name,
            "access_key_id": " ".join(key for key in key_ids if key), "status": status}


def _verb(check_mode, past):
    return ("would be " if check_mode else "") + past


def canary_owner(path, become=False, login_user=""):
    """The OS user owning a credentials file, from its path as the seed planted it (``~user/.aws/...``).

    A file outside the homes belongs to whom the connection writes as: root under become, else the login user.
    """
    owner = os_user(path)
    if owner:
        return owner
    return "root" if _bool(become) else (str(login_user or "") or "root")


def _bool(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


def host_canaries(items, host):
    """The canaries (or placement rows) IAM records for ``host``, whose tag holds the host sanitised."""
    tag = sanitize_tag_value(host)
    return [item for item in items or [] if _host_of(item) == tag]


def group_by_host(items, hosts):
    """``{inventory host: its items}`` for ``hosts``, from canaries, placement rows or canary_key_info's registered result.

    Run once for the play (``run_once``) and looked up per host: ``host_canaries`` in every host's task would
    read the whole estate once per host, a cost that grows with hosts times placements.
    """
    by_tag = {}
    for item in canaries_of(items):
        by_tag.setdefault(_host_of(item), []).append(item)
    return {host: by_tag.get(sanitize_tag_value(host), []) for host in hosts or []}


# What the AWS SDKs and IAM say when the controller's credentials are missing, unknown or expired.
_CREDENTIAL_ERRORS = ("Unable to locate credentials", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken",
                      "security token included in the request", "could not be found", "NoCredentialsError", "InvalidAccessKeyId")


def estate_read_problem(registered):
    """One line for a failed bulk read (canary_key_info, one result or a loop over accounts): the first AWS call of a run."""
    failed = [result for result in results_of(registered) if result.get("failed")] or [registered or {}]
    why = "; ".join(str(result.get("msg") or "unknown error").strip() for result in failed)
    if any(marker in why for marker in _CREDENTIAL_ERRORS):
        return (f"The controller has no usable AWS credentials ({why}). Set canary_aws.profile, or the standard AWS_PROFILE / "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY environment, and AWS_ENDPOINT_URL (or canary_aws.endpoint_url) "
                "for a local AWS.")
    return f"The controller could not read the canary estate ({why}); nothing was changed."


def _fingerprint(reads, tags):
    """What of the bulk reads a change by another run would alter: each canary's user, mapping, keys and policies."""
    return sorted(
        json.dumps([c.get("account_id"), c.get("user_name"), c.get("mapping"), c.get("inline_policies"),
                    sorted((k.get("access_key_id") or "", k.get("status") or "") for k in c.get("keys") or [])],
                   sort_keys=True, default=str)
        for c in canaries_of(reads)
        if tags is None or _host_of(c) in tags
    )


def _newest_key(reads):
    dates = [k.get("create_date") for c in canaries_of(reads) for k in c.get("keys") or [] if k.get("create_date")]
    return max((datetime.datetime.fromisoformat(str(d).replace("Z", "+00:00")) for d in dates), default=None)


def estate_unchanged(first, again, leases=None, hosts=None, quiet_seconds=60):
    """Whether no other run can have changed these hosts' canaries, or their files, since the first bulk read.

    ``first``: the bulk reads (canary_key_info, one per account) made before the hosts were read, each having
    looked at the lease after its listing (``lease_held``); ``again``: the same reads made under the lease;
    ``leases``: the registered takes of those leases (``again`` when None: the takes that listed).  True only
    when every lease was free at the first read and taken without waiting or taking over a dead run's, and the second reads list the same canaries, keys
    and mappings: a run that held a lease in between changed IAM (every host write goes with a mint, a tag
    or a deletion), and a run that held one at the first read, or died holding one, is caught by the lease.
    IAM is eventually consistent, so a key created less than ``quiet_seconds`` before now also says no.
    ``hosts``: compare only these hosts' canaries (the first read may cover hosts the play has lost since).
    """
    tags = None if hosts is None else {sanitize_tag_value(host) for host in hosts}
    firsts = results_of(first)
    if not firsts or any(result.get("lease_held") is not False for result in firsts):
        return False
    takes = results_of(again if leases is None else leases)
    if not takes or any(take.get("waited") or take.get("taken_over") or not take.get("held_by_us") for take in takes):
        return False
    if _fingerprint(first, tags) != _fingerprint(again, tags):
        return False
    newest = _newest_key(first)
    now = datetime.datetime.now(datetime.timezone.utc)
    return newest is None or (now - newest).total_seconds() >= float(quiet_seconds)


def located_canaries(canaries, host):
    """The canaries whose recorded file and profile give back their placement id from ``host``.

    The tags hold sanitised values; where sanitising changed the file or profile, reading what the tags
    say would read another placement, so such a canary is not located.
    """
    located = []
    for canary in canaries or []:
        mapping = canary.get("mapping") or {}
        if placement_id(str(host), mapping.get("path") or "", mapping.get("profile") or "") == mapping.get("placement_id"):
            located.append(canary)
    return located


def missing_canaries(items, inventory_hosts):
    """The canaries (or placement rows) whose recorded host is no host of the inventory."""
    tags = {sanitize_tag_value(host) for host in inventory_hosts or []}
    return [item for item in items or [] if _host_of(item) not in tags]


def due_placements(placements, host, max_age_days):
    """The placement rows of ``host`` worth a rotation look, sorted by file and profile.

    A key at least ``max_age_days`` old, or a second key (left by a run that died, and in the way of the
    new key). canary_key_batch decides on the planted key itself.
    """
    try:
        max_age = int(max_age_days)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("max_age_days must be a whole number of days, not %r" % (max_age_days,)) from exc
    due = [row for row in host_canaries(placements, host)
           if (row.get("key_count") or 0) > 1 or ((row.get("key_count") or 0) > 0 and (row.get("age_days") or 0) >= max_age)]
    return sorted(due, key=lambda row: (str(row.get("path")), str(row.get("profile"))))


def _read_ok(read):
    return not read.get("failed") and not read.get("skipped") and not read.get("unreachable")


def reconcile_findings(read_results, canaries, host):
    """What reconciling ``host`` finds, from the reads of its located canaries' profiles.

    ``deleted_keys``: per canary, the keys its profile does not hold (each one a row), or the whole user
    (one row with ``access_key_id`` empty) when the profile holds none of them. ``checked``: the users read;
    ``unreadable``: user -> why its file could not be read (left alone); ``unlocated``: the users of
    canaries whose tags were sanitised (``located_canaries``), left alone too.
    """
    findings = {"checked": [], "deleted_keys": [], "unreadable": {}, "unlocated": []}
    located = {canary.get("user_name") for canary in located_canaries(canaries, host)}
    findings["unlocated"] = [canary.get("user_name") for canary in canaries or [] if canary.get("user_name") not in located]
    for read in read_results or []:
        canary = read.get("retire_canary") or {}
        if read.get("skipped"):
            continue
        if not _read_ok(read):
            findings["unreadable"][canary.get("user_name")] = read.get("msg") or "unreadable"
            continue
        findings["checked"].append(canary.get("user_name"))
        key_ids = _key_ids(canary)
        unplanted = [key for key in key_ids if key != read.get("access_key_id")]
        if not unplanted:
            continue
        emptied = len(unplanted) == len(key_ids)
        mapping = canary.get("mapping") or {}
        for key_id in ([None] if emptied else unplanted):
            findings["deleted_keys"].append({"user_name": canary.get("user_name"), "path": mapping.get("path"),
                                             "profile": mapping.get("profile"), "access_key_id": key_id,
                                             "key_ids": unplanted, "emptied": emptied,
                                             "account": canary.get("account") or "", "account_id": canary.get("account_id") or ""})
    return findings


def retire_rows(read_results, host, check_mode=False):
    """The retirement table's rows of ``host``, from the reads of its canaries' profiles."""
    rows = []
    for read in read_results or []:
        canary = read.get("retire_canary") or {}
        planted = read.get("access_key_id") or ""
        removed = bool(planted) and planted in _key_ids(canary)
        status = "retired" if removed else "retired (IAM only: the profile holds %s)" % (planted or "no key")
        rows.append(_row(host, read.get("path"), (canary.get("mapping") or {}).get("profile"), canary.get("user_name"),
                         [planted], _verb(check_mode, status), account_label(canary)))
    return rows


def canary_rows(canaries, status):
    """One table row per canary (its recorded host, file, profile, user and keys) with ``status``."""
    return [_row(_host_of(canary), (canary.get("mapping") or {}).get("path"), (canary.get("mapping") or {}).get("profile"),
                 canary.get("user_name"), _key_ids(canary), status, account_label(canary)) for canary in canaries or []]


def _reports(hostvars, inventory_hosts):
    """host tag -> the ``retire_reconciled`` fact its reconciliation recorded, for the hosts that have one."""
    reports = {}
    for host in inventory_hosts or []:
        try:
            report = hostvars[host].get("retire_reconciled")
        except (KeyError, AttributeError):
            report = None
        if report is not None:
            reports[sanitize_tag_value(host)] = report
    return reports


def _unchecked_status(canary, keyless, inventory_tags, reports, verb):
    host = _host_of(canary)
    user_name = canary.get("user_name")
    report = reports.get(host)
    if user_name in keyless:
        return "user %s: no key at all" % verb
    if host not in inventory_tags:
        return "host not in the inventory: retire_canaries.yml -e purge_missing=true"
    if report is None:
        return "not checked: host not reached or not targeted"
    if user_name in (report.get("unlocated") or []):
        return "not checked: the recorded file or profile was sanitised, check it by hand"
    if user_name in (report.get("unreadable") or {}):
        return "not checked: %s" % report["unreadable"][user_name]
    return ""


def reconcile_report(estate, hostvars, inventory_hosts, check_mode=False):
    """The reconciliation's table and one-paragraph summary, from the estate as the hosts left it.

    Returns ``{"rows": [...], "summary": "...", "keyless": [canaries]}``: what the hosts' reconciliations
    deleted (their ``retire_reconciled`` facts), the users without keys (deleted on the controller), and
    each canary that could not be checked with the reason.
    """
    estate = estate or {}
    canaries = estate.get("canaries") or []
    reports = _reports(hostvars, inventory_hosts)
    inventory_tags = {sanitize_tag_value(host) for host in inventory_hosts or []}
    keyless_users = {orphan.get("user_name") for orphan in estate.get("orphans") or [] if orphan.get("reason") == "no_key"}
    keyless = [canary for canary in canaries if canary.get("user_name") in keyless_users]
    verb = _verb(check_mode, "deleted")
    deleted = [dict(key, host=host) for host, report in reports.items() for key in report.get("deleted_keys") or []]

    rows = [_row(key["host"], key.get("path"), key.get("profile"), key.get("user_name"), key.get("key_ids") or [],
                 "user %s: the profile holds none of its keys" % verb if key.get("emptied")
                 else "key %s: the profile holds another key of the user" % verb, account_label(key)) for key in deleted]
    handled = {key.get("user_name") for key in deleted}
    for canary in canaries:
        if canary.get("user_name") in handled:
            continue
        status = _unchecked_status(canary, keyless_users, inventory_tags, reports, verb)
        if status:
            rows.extend(canary_rows([canary], status))

    emptied = len([key for key in deleted if key.get("emptied")])
    summary = "Reconciliation%s: %d unplanted keys%s and %d users without keys %sdeleted, %d placements on %d hosts checked, " \
              "%d canaries of hosts not in the inventory." % (
                  " (check mode: nothing deleted)" if check_mode else "",
                  sum(len(key.get("key_ids") or []) for key in deleted),
                  " (%d with their users)" % emptied if emptied else "",
                  len(keyless), "would be " if check_mode else "",
                  sum(len(report.get("checked") or []) for report in reports.values()), len(reports),
                  len(missing_canaries(canaries, inventory_hosts)))
    return {"rows": rows, "summary": summary, "keyless": keyless}


class FilterModule:
    """Filters matching the canary estate with the inventory."""

    def filters(self):
        return {
            "estate_unchanged": estate_unchanged,
            "estate_read_problem": estate_read_problem,
            "canary_owner": canary_owner,
            "host_canaries": host_canaries,
            "group_by_host": group_by_host,
            "located_canaries": located_canaries,
            "missing_canaries": missing_canaries,
            "due_placements": due_placements,
            "reconcile_findings": reconcile_findings,
            "retire_rows": retire_rows,
            "canary_rows": canary_rows,
            "reconcile_report": reconcile_report,
        }
