# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the seed role.

They reshape the registered results of the seed handshake.  Their one rule:
nothing they return may carry a secret access key, because what they return
is looped over, stored in facts and printed.
"""

from __future__ import annotations

import string

from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared.canary_mapping import placement_id, sanitize_tag_value
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.batch import outcomes_for_host

TABLE_COLUMNS = (
    ("host", "host"),
    ("path", "file"),
    ("profile", "profile"),
    ("iam_user", "IAM user"),
    ("access_key_id", "access key id"),
    ("status", "status"),
)


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


def _settled_key(read, canaries_by_placement, host, template):
    """The canary whose only key is Active and planted in this profile, with the reminder wanted.

    Such a placement needs no call at all on a re-run: this is what keeps a re-run to the reads.
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
    return canary


def _by_placement(canaries):
    return {c.get("mapping", {}).get("placement_id"): c for c in canaries or []}


def unsettled_placements(read_results, canaries, host, template):
    """Read results whose placement needs canary_key: anything but an intact, planted canary."""
    index = _by_placement(canaries)
    return [r for r in read_results if _settled_key(r, index, host, template) is None]


def settled_rows(read_results, canaries, host, template):
    """Reminder rows of the placements that needed nothing."""
    index = _by_placement(canaries)
    rows = []
    for read in read_results:
        canary = _settled_key(read, index, host, template)
        if canary is not None:
            rows.append({
                "host": host,
                "path": read.get("path"),
                "profile": read.get("seed_placement", {}).get("profile"),
                "iam_user": canary.get("user_name"),
                "access_key_id": read.get("access_key_id"),
                "status": "unchanged",
            })
    return rows


def mint_requests(read_results, canaries, host, template, planted_by):
    """This host's placements that need canary_key_batch, one request each (no secret: nothing is minted yet).

    The module's fields (host, path, profile, planted_key_id, reminder, planted_by) plus what the
    write needs later (user, region).
    """
    requests = []
    for read in unsettled_placements(read_results, canaries, host, template):
        placement = read.get("seed_placement", {})
        requests.append({
            "host": host,
            "path": read.get("path"),
            "profile": placement.get("profile"),
            "planted_key_id": read.get("access_key_id") or "",
            "reminder": _desired_reminder(read, host, template),
            "planted_by": planted_by,
            "user": placement.get("user"),
            "region": placement.get("region"),
        })
    return requests


# Request field -> canary_key_batch placement option (the module refuses unknown fields).
_MODULE_FIELDS = {"host": "host", "path": "path", "profile": "profile_name", "planted_key_id": "planted_key_id",
                  "reminder": "reminder", "planted_by": "planted_by", "rotated_key_id": "rotated_key_id"}


def batch_placements(requests):
    """The requests of every host as canary_key_batch's ``placements``."""
    return [{option: request[field] for field, option in _MODULE_FIELDS.items() if field in request} for request in requests or []]


def host_outcomes(outcomes, requests, host):
    """This host's requests, each with the index and the outcome (secret left out) of its placement in the batch.

    ``outcomes`` is canary_key_batch's RV(outcomes) for the requests of every host; the index is how a
    later task reaches the one secret it needs, without the secret travelling in a loop item.
    """
    return [
        dict(
            {key: value for key, value in request.items() if key != "secret_access_key"},
            index=index,
            user_name=outcome.get("user_name"),
            access_key_id=outcome.get("access_key_id"),
            minted=bool(outcome.get("minted")),
            changed=bool(outcome.get("changed")),
            failed=bool(outcome.get("failed")),
            msg=outcome.get("msg"),
        )
        for index, request, outcome in outcomes_for_host(outcomes, requests, host)
    ]


def plant_items(outcomes):
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
        }
        for outcome in outcomes or []
        if outcome.get("minted") and not outcome.get("failed")
    ]


def failed_results(results):
    """Loop results that failed or whose host became unreachable."""
    return [r for r in results if r.get("failed") or r.get("unreachable")]


def placement_rows(outcomes, host):
    """One reminder row per placement canary_key_batch ensured (no secret)."""
    return [
        {
            "host": host,
            "path": outcome.get("path"),
            "profile": outcome.get("profile"),
            "iam_user": outcome.get("user_name"),
            "access_key_id": outcome.get("access_key_id") or "(new key)",
            "status": "minted" if outcome.get("minted") else "unchanged",
        }
        for outcome in outcomes or []
        if not outcome.get("failed")
    ]


def reminder_table(rows):
    """Render rows as an aligned text table, one line per list element."""
    rows = sorted(rows, key=lambda r: (str(r.get("host")), str(r.get("path")), str(r.get("profile"))))
    cells = [[str(row.get(key) or "") for key, _title in TABLE_COLUMNS] for row in rows]
    titles = [title for _key, title in TABLE_COLUMNS]
    widths = [max([len(t)] + [len(c[i]) for c in cells]) for i, t in enumerate(titles)]

    def line(values):
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    return [line(titles), line(["-" * w for w in widths])] + [line(c) for c in cells]


class FilterModule:
    def filters(self):
        return {
            "fill_reminder": fill_reminder,
            "mint_requests": mint_requests,
            "batch_placements": batch_placements,
            "host_outcomes": host_outcomes,
            "plant_items": plant_items,
            "failed_results": failed_results,
            "placement_rows": placement_rows,
            "unsettled_placements": unsettled_placements,
            "settled_rows": settled_rows,
            "reminder_table": reminder_table,
        }
