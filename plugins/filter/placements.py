# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that build canary_key_batch's requests and match its outcomes back to each host (seed and rotate).

A seed or rotate play sends the placements of every host to one canary_key_batch run; each host then
takes its own outcomes back.  A placement is named by (host, path, profile) in requests and outcomes
alike (module_utils/_iam/batch.py), and a placement's index in the batch is how the write task reaches
the one secret it needs.  The rule of every filter here: nothing returned may carry a secret access
key, because what they return is looped over, stored in facts and printed.

Each filter's documentation is in the file of its name next to this one (``seed_requests.yml``...).
"""

from __future__ import annotations

import string

from ansible_collections.canarykeys.aws.plugins.filter.accounts import account_label, canaries_of
from ansible_collections.canarykeys.aws.plugins.filter.estate import canary_owner, host_canaries, located_canaries
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.batch import landed_index, placement_of
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.calls import DENY_ALL_POLICY_NAME
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.listed import listing_of
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared.canary_mapping import placement_id, sanitize_tag_value


# ---------------------------------------------------------------- seed


class _KeepUnknown(dict):
    """format_map helper: a placeholder we do not know stays as written."""

    def __missing__(self, key):
        return "{" + key + "}"


def fill_reminder(template, fields):
    """Fill {host}, {path}, {profile}, {user} in a reminder text; leave other braces alone."""
    formatter = string.Formatter()
    try:
        return formatter.vformat(str(template), (), _KeepUnknown(fields))
    except (ValueError, IndexError):
        # A reminder with stray braces is still a valid reminder: keep it verbatim.
        return str(template)


def _desired_reminder(read, host, template):
    placement = read.get("seed_placement", {})
    fields = {"host": host, "path": read.get("path"), "profile": placement.get("profile"), "user": placement.get("user")}
    return fill_reminder(placement.get("reminder") or template, fields)


def _guarded(canary):
    """Whether the canary carries the deny-all, as the bulk read listed its inline policies (None: not listed)."""
    policies = canary.get("inline_policies")
    return None if policies is None else DENY_ALL_POLICY_NAME in policies


def _settled_key(read, canaries_by_placement, host, template, deny_all=False):
    """The canary whose only key is Active and planted in this profile, with the reminder and the guard wanted.

    Such a placement needs no call at all on a re-run: this is what keeps a re-run to the reads.  A canary
    that still carries the deny-all of an earlier seed (or lacks the one asked for) is not settled: the
    batch migrates it, told its policies, so that it needs no extra read for them.
    """
    profile = read.get("seed_placement", {}).get("profile")
    planted = read.get("access_key_id")
    canary = canaries_by_placement.get(placement_id(host, read.get("path") or "", profile or ""))
    if not planted or canary is None:
        return None
    keys = canary.get("keys") or []
    if len(keys) != 1 or keys[0].get("access_key_id") != planted or keys[0].get("status") != "Active":
        return None
    if canary.get("mapping", {}).get("reminder", "") != sanitize_tag_value(_desired_reminder(read, host, template)):
        return None
    if _guarded(canary) not in (None, bool(deny_all)):
        return None
    return canary


def _by_placement(estate):
    """The canaries of the bulk read (canary_key_info's result, of one account or a loop over accounts) by placement id."""
    return {c.get("mapping", {}).get("placement_id"): c for c in canaries_of(estate)}


def unsettled_placements(read_results, canaries, host, template, deny_all=False):
    """Read results whose placement needs canary_key: anything but an intact, planted canary."""
    index = _by_placement(canaries)
    return [r for r in read_results if _settled_key(r, index, host, template, deny_all) is None]


def seed_settled_rows(read_results, canaries, host, template, deny_all=False):
    """Reminder rows of the placements that needed nothing."""
    index = _by_placement(canaries)
    rows = []
    for read in read_results:
        canary = _settled_key(read, index, host, template, deny_all)
        if canary is not None:
            rows.append({
                "host": host,
                "account": account_label(canary),
                "path": read.get("path"),
                "profile": read.get("seed_placement", {}).get("profile"),
                "iam_user": canary.get("user_name"),
                "access_key_id": read.get("access_key_id"),
                "status": "unchanged",
            })
    return rows


def seed_requests(read_results, canaries, host, template, planted_by, deny_all=False, user_name_template="", account=""):
    """This host's placements that need canary_key_batch, one request each (no secret: nothing is minted yet).

    The module's fields (host, path, profile, planted_key_id, reminder, planted_by) plus what the
    write needs later (user, region).  ``user_name_template``: this host's naming (its group's), which
    a placement's own ``user_name_template`` overrides; the batch runs once for every host, so each
    request carries its own.  ``inline_policies`` travel from the bulk read when it listed the canary.
    ``account``: the name of this host's canary account (``canary_accounts``), "" for the controller's own.
    """
    index = _by_placement(canaries)
    requests = []
    for read in unsettled_placements(read_results, canaries, host, template, deny_all):
        placement = read.get("seed_placement", {})
        canary = index.get(placement_id(host, read.get("path") or "", placement.get("profile") or "")) or {}
        request = {
            "host": host,
            "path": read.get("path"),
            "profile": placement.get("profile"),
            "planted_key_id": read.get("access_key_id") or "",
            "reminder": _desired_reminder(read, host, template),
            "planted_by": planted_by,
            "user": placement.get("user"),
            "region": placement.get("region"),
            "account": account or "",
        }
        if placement.get("user_name_template") or user_name_template:
            request["user_name_template"] = placement.get("user_name_template") or user_name_template
        if canary.get("inline_policies") is not None:
            request["inline_policies"] = canary["inline_policies"]
        if canary.get("user_name"):
            request["user_name"] = canary["user_name"]
        requests.append(request)
    return requests


# Request field -> canary_key_batch placement option (the module refuses unknown fields).
_MODULE_FIELDS = {"host": "host", "path": "path", "profile": "profile_name", "planted_key_id": "planted_key_id",
                  "reminder": "reminder", "planted_by": "planted_by", "rotated_key_id": "rotated_key_id",
                  "user_name_template": "user_name_template", "inline_policies": "inline_policies", "user_name": "user_name",
                  "account": "account", "listing": "listing"}


def batch_placements(requests):
    """The requests of every host as canary_key_batch's ``placements``."""
    return [{option: request[field] for field, option in _MODULE_FIELDS.items() if field in request} for request in requests or []]


def seed_outcomes(outcomes, requests, host):
    """This host's requests, each with the index and the outcome (secret left out) of its placement in the batch.

    ``outcomes`` is canary_key_batch's RV(outcomes) for the requests of every host; the index is how a
    later task reaches the one secret it needs, without the secret travelling in a loop item.
    """
    return seed_outcomes_by_host(outcomes, requests, [host])[host]


def _seed_outcome(index, request, outcome):
    return dict(
        {key: value for key, value in request.items() if key != "secret_access_key"},
        index=index,
        user_name=outcome.get("user_name"),
        access_key_id=outcome.get("access_key_id"),
        minted=bool(outcome.get("minted")),
        changed=bool(outcome.get("changed")),
        failed=bool(outcome.get("failed")),
        msg=outcome.get("msg"),
        account_id=outcome.get("account_id") or "",
    )


def _outcomes_by_host(outcomes, requests, hosts, entry):
    """``{host: [entry(index, request, outcome), ...]}`` for ``hosts``, in one pass over the batch."""
    index_of = {placement_of(outcome): index for index, outcome in enumerate(outcomes or [])}
    by_host = {host: [] for host in hosts or []}
    for request in requests or []:
        index = index_of.get(placement_of(request))
        if index is not None and request.get("host") in by_host:
            by_host[request["host"]].append(entry(index, request, outcomes[index]))
    return by_host


def seed_outcomes_by_host(outcomes, requests, hosts):
    """``{host: its seed_outcomes}`` for ``hosts``, in one pass over the batch (run once for the play).

    ``seed_outcomes`` in every host's task would read the whole batch once per host: hosts times placements.
    """
    return _outcomes_by_host(outcomes, requests, hosts, _seed_outcome)


def seed_plants(outcomes):
    """The placements whose key was just minted, as loop items without the secret (``index`` finds it)."""
    return [
        {
            "index": outcome["index"],
            "user": outcome.get("user"),
            "path": outcome.get("path"),
            "profile": outcome.get("profile"),
            "region": outcome.get("region"),
            "access_key_id": outcome.get("access_key_id"),
            "replaceable_key_ids": [outcome["planted_key_id"]] if outcome.get("planted_key_id") else [],
            # What deleting the key again needs, should its write fail.
            "user_name": outcome.get("user_name"),
            "user_name_template": outcome.get("user_name_template") or "",
            "account": outcome.get("account") or "",
        }
        for outcome in outcomes or []
        if outcome.get("minted") and not outcome.get("failed")
    ]


def dead_placements(canaries, host, become=False, login_user=""):
    """This host's dead canaries (their recorded key gone from IAM or inactive) as the seed role's placements.

    The reconciliation re-plants them through the seed (its handshake, its refusals: a profile holding a key this
    placement was never handed is still refused).  Only canaries whose tags give back their placement id are
    named (``located_canaries``): the others cannot be read back reliably.
    """
    return [
        {
            "user": canary_owner(canary["mapping"]["path"], become, login_user),
            "path": canary["mapping"]["path"],
            "profile": canary["mapping"]["profile"],
            "reminder": canary["mapping"].get("reminder") or "",
        }
        for canary in located_canaries(host_canaries(canaries, host), host)
        if canary.get("dead")
    ]


def failed_results(results):
    """Loop results that failed or whose host became unreachable."""
    return [r for r in results if r.get("failed") or r.get("unreachable")]


# ---------------------------------------------------------------- rotate


# What the rows and the messages need of a begin outcome; never secret_access_key.
_BEGIN_FIELDS = ("rotation", "user_name", "access_key_id", "rotated_key_id", "key_age_days", "deleted_access_key_ids", "msg", "account_id")


def rotate_requests(read_results, host, canaries=None, account=""):
    """One ``action: begin`` request per profile read on this host (host, path, profile, planted key id).

    ``read_results`` are the results of the role's read loop (loop_var ``rotate_canary``, the placement row
    as ``canary_key_info`` listed it). ``user_name`` names the IAM user in the table when the begin step
    fails; ``inline_policies``, when listed, spare the begin step its read of them; ``listing``, the
    canary of the same user in ``canaries`` (canary_key_info's RV(canaries)), spares it finding the user
    and listing its keys (module_utils/_iam/listed.py).  ``account``: the name of this host's canary
    account.
    """
    by_user = {canary.get("user_name"): canary for canary in canaries or []}
    requests = []
    for read in read_results or []:
        row = read.get("rotate_canary", {})
        request = {
            "host": host,
            "path": read.get("path") or row.get("path"),
            "profile": row.get("profile"),
            "planted_key_id": read.get("access_key_id") or "",
            "user_name": row.get("user_name"),
            **({"account": account} if account else {}),
        }
        if row.get("inline_policies") is not None:
            request["inline_policies"] = row["inline_policies"]
        listing = listing_of(by_user.get(row.get("user_name")))
        if listing:
            request["listing"] = listing
        requests.append(request)
    return requests


def rotate_outcomes(outcomes, requests, host):
    """This host's requests, each with the index and the begin outcome (secret left out) of its placement.

    ``outcomes`` is RV(outcomes) of the begin batch over the requests of every host of the batch.
    """
    return rotate_outcomes_by_host(outcomes, requests, [host])[host]


def rotate_outcomes_by_host(outcomes, requests, hosts):
    """``{host: its rotate_outcomes}`` for ``hosts``, in one pass over the begin batch (run once for the play)."""
    return _outcomes_by_host(outcomes, requests, hosts, _rotate_outcome)


def _rotate_outcome(index, request, outcome):
    entry = {key: value for key, value in request.items() if key != "secret_access_key"}
    entry.update({field: outcome.get(field) for field in _BEGIN_FIELDS})
    entry.update(
        index=index,
        user_name=outcome.get("user_name") or request.get("user_name"),
        minted=bool(outcome.get("minted")),
        changed=bool(outcome.get("changed")),
        failed=bool(outcome.get("failed")),
        deleted_access_key_ids=list(outcome.get("deleted_access_key_ids") or []),
    )
    return entry


def rotate_plants(outcomes):
    """The placements that got a second key, as loop items without the secret (``index`` finds it)."""
    return [
        {
            "index": outcome["index"],
            "host": outcome.get("host"),
            "path": outcome.get("path"),
            "profile": outcome.get("profile"),
            "access_key_id": outcome.get("access_key_id"),
            "rotated_key_id": outcome.get("rotated_key_id"),
        }
        for outcome in outcomes or []
        # In check mode begin reports minted with no key: nothing to write then.
        if outcome.get("minted") and not outcome.get("failed") and outcome.get("access_key_id")
    ]


def _lost(result):
    return bool(result.get("failed") or result.get("unreachable"))


def rotate_landed(write_results, confirm_results):
    """Which key each profile holds after the write, from the write and the confirming read (no secret).

    A confirming read, where there is one, decides (the rotate role reads again only the profiles whose
    write did not succeed).  Otherwise, or when it could not reach the host, a write that succeeded stands
    for it (the module replaced the file atomically and reported the new key); with neither, the host is
    taken to hold the old key (``held`` empty: the finish keeps the rotated key).  ``why`` says, for a
    rotation that rolls back, why the host did not take the new key.
    """
    confirms = {result.get("rotate_plant", {}).get("index"): result for result in confirm_results or []}
    landed = []
    for write in write_results or []:
        plant = write.get("rotate_plant") or {}
        confirm = confirms.get(plant.get("index"), {"unreachable": True})
        if not _lost(confirm):
            held = confirm.get("access_key_id") or ""
        elif not _lost(write):
            held = write.get("planted_access_key_id") or ""
        else:
            held = ""
        if _lost(write):
            why = write.get("msg") or "host unreachable"
        else:
            why = f"the profile holds {held or 'no key'} after the write"
        landed.append(dict(plant, held=held, why=why))
    return landed


def rotate_finish_placements(outcomes, landed, planted_by=""):
    """The ``action: finish`` placements: every placement that got a second key in the begin batch.

    ``outcomes`` is RV(outcomes) of the begin batch, ``landed`` the ``rotate_landed`` entries of every
    host of the play.  A placement with no landed entry (its host failed before recording one) is
    finished as if the host held the old key: the new key is deleted, and no key the host did not
    take survives the run.  A begin outcome's ``listing`` (the keys the begin step left) travels along.
    """
    index = landed_index(landed)
    placements = []
    for outcome in outcomes or []:
        if not outcome.get("minted") or outcome.get("failed") or not outcome.get("access_key_id"):
            continue
        held = index.get(placement_of(outcome) + (outcome.get("access_key_id"),), {}).get("held") or ""
        placement = {
            "host": outcome.get("host"),
            "path": outcome.get("path"),
            "profile_name": outcome.get("profile"),
            "planted_key_id": held,
            "rotated_key_id": outcome.get("rotated_key_id"),
            "planted_by": planted_by or "",
            **({"account": outcome["account"]} if outcome.get("account") else {}),
        }
        if outcome.get("listing"):
            # What the begin step left: the finish decides on it instead of reading IAM again.
            placement["listing"] = outcome["listing"]
        placements.append(placement)
    return placements


class FilterModule:
    def filters(self):
        return {
            "batch_placements": batch_placements,
            "dead_placements": dead_placements,
            "failed_results": failed_results,
            "seed_requests": seed_requests,
            "seed_settled_rows": seed_settled_rows,
            "seed_outcomes": seed_outcomes,
            "seed_outcomes_by_host": seed_outcomes_by_host,
            "seed_plants": seed_plants,
            "rotate_requests": rotate_requests,
            "rotate_outcomes": rotate_outcomes,
            "rotate_outcomes_by_host": rotate_outcomes_by_host,
            "rotate_plants": rotate_plants,
            "rotate_landed": rotate_landed,
            "rotate_finish_placements": rotate_finish_placements,
        }
