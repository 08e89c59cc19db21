# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn seed and rotate outcomes into report rows, and rows into the aligned reminder table.

A row is one placement: host, canary account, path (file), profile, IAM user, access key id, status.  No
secret ever.
Each filter's documentation is in the file of its name next to this one (``reminder_table.yml``...).
"""

from __future__ import annotations

from ansible_collections.canarykeys.aws.plugins.filter.accounts import account_label
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.batch import finish_outcomes, landed_index, placement_of

TABLE_COLUMNS = (
    ("host", "host"),
    ("account", "account"),
    ("path", "file"),
    ("profile", "profile"),
    ("iam_user", "IAM user"),
    ("access_key_id", "access key id"),
    ("status", "status"),
)


def seed_rows(outcomes, host):
    """One reminder row per placement canary_key_batch ensured (no secret)."""
    return [
        {
            "host": host,
            "account": account_label(outcome),
            "path": outcome.get("path"),
            "profile": outcome.get("profile"),
            "iam_user": outcome.get("user_name"),
            "access_key_id": outcome.get("access_key_id") or "(new key)",
            "status": "minted" if outcome.get("minted") else "unchanged",
        }
        for outcome in outcomes or []
        if not outcome.get("failed")
    ]


def seed_rows_by_host(outcomes_by_host, hosts):
    """The ``seed_rows`` of each of ``hosts``, from ``seed_outcomes_by_host`` (run once for the play)."""
    return [row for host in hosts or [] for row in seed_rows((outcomes_by_host or {}).get(host), host)]


UNPLANTED_DELETED = "The keys minted for the placements that could not be planted were deleted; nothing else changed."


def seed_errors_by_host(outcomes_by_host, hosts, hostvars, unplanted_all=None, batch=None, problems_var="seed_read_problems"):
    """``{host: [message, ...]}`` for each of ``hosts`` a placement of which failed (run once for the play, after planting).

    Every way a seed's placement fails, in one list per host: the batch run itself (every host), a profile that
    could not be read (the host's ``problems_var`` fact), an IAM identity that could not be ensured (the failed
    outcomes) and a key that could not be planted (``unplanted_all``, every host's, each with its ``host``).
    Computed once: the same templating in every host's task was most of a skipped task's time.
    """
    batch = batch or {}
    batch_failed = [batch.get("msg") or "canary_key_batch failed"] if batch.get("failed") else []
    unplanted_by = {}
    for entry in unplanted_all or []:
        unplanted_by.setdefault(entry.get("host"), []).append(entry.get("msg") or "")
    errors = {}
    for host in hosts or []:
        facts = hostvars[host] if host in hostvars else {}
        lines = (batch_failed + list(facts.get(problems_var) or [])
                 + [outcome.get("msg") or "failed" for outcome in (outcomes_by_host or {}).get(host) or [] if outcome.get("failed")]
                 + unplanted_by.get(host, []))
        if host in unplanted_by:
            lines.append(UNPLANTED_DELETED)
        if lines:
            errors[host] = lines
    return errors


def _label(item):
    return f"{item.get('path')} [{item.get('profile')}]"


def _days(outcome):
    try:
        return f"{int(float(outcome.get('key_age_days') or 0))} days old"
    except (TypeError, ValueError):
        return "age unknown"


def _started(outcome, finish_by_place, missing):
    """The finish outcome of a placement that got a second key, or a failed stand-in naming why there is none."""
    done = finish_by_place.get(placement_of(outcome))
    if done is None:
        return {"failed": True, "msg": missing}
    return done


def rotate_rows(outcomes, finish=None, check_mode=False):
    """One table row per placement looked at (host, path, profile, IAM user, key id the profile holds, status)."""
    finish_by_place, missing = finish_outcomes(finish)
    rows = []
    for outcome in outcomes or []:
        key = outcome.get("planted_key_id")
        rotation = outcome.get("rotation")
        if outcome.get("failed"):
            status = "error"
        elif rotation == "not_planted":
            status = "not planted, left alone"
        elif rotation == "not_due":
            status = "not due, " + _days(outcome)
            if outcome.get("deleted_access_key_ids"):
                status += ", " + ("would delete" if check_mode else "deleted") + " unplanted " + " ".join(outcome["deleted_access_key_ids"])
        elif check_mode:
            status = "would rotate, " + _days(outcome)
        else:
            done = _started(outcome, finish_by_place, missing)
            if done.get("failed"):
                status = "error, both keys kept"
            elif done.get("rotation") == "completed":
                status = f"rotated from {key}"
                key = done.get("access_key_id")
            else:
                status = "rolled back"
        rows.append({
            "host": outcome.get("host"),
            "account": account_label(outcome),
            "path": outcome.get("path"),
            "profile": outcome.get("profile"),
            "iam_user": outcome.get("user_name"),
            "access_key_id": key,
            "status": status,
        })
    return rows


def rotate_errors(outcomes, landed=None, finish=None, check_mode=False):
    """Why each placement of this host that should have rotated did not, one message each (no secret)."""
    return _rotate_errors(outcomes, landed_index(landed), finish_outcomes(finish), check_mode)


def rotate_errors_by_host(outcomes_by_host, landed=None, finish=None, check_mode=False):
    """``{host: its rotate_errors}`` for every host of ``rotate_outcomes_by_host`` (run once for the play).

    The finish batch's outcomes and the landed entries (``rotate_landed_by_host``, every host's) are indexed
    once: ``rotate_errors`` in every host's task would index them once per host, a cost that grows with hosts
    times placements.
    """
    finished = finish_outcomes(finish)
    landed_by = landed_index(landed)
    return {host: _rotate_errors(outcomes, landed_by, finished, check_mode) for host, outcomes in (outcomes_by_host or {}).items()}


def _rotate_errors(outcomes, landed_by, finished, check_mode):
    finish_by_place, missing = finished
    errors = []
    for outcome in outcomes or []:
        where = _label(outcome) + ": "
        if outcome.get("failed"):
            errors.append(where + (outcome.get("msg") or "failed"))
            continue
        if check_mode or outcome.get("rotation") != "started" or not outcome.get("access_key_id"):
            continue
        new, old = outcome.get("access_key_id"), outcome.get("rotated_key_id")
        done = _started(outcome, finish_by_place, missing)
        if done.get("failed"):
            errors.append(
                f"{where}finishing the rotation from {old} to {new} failed ({done.get('msg') or 'unknown error'}); the profile holds "
                "one of them, and both stay active until the next rotation, seed or reconciliation deletes the other")
        elif done.get("rotation") == "rolled_back":
            land = landed_by.get(placement_of(outcome) + (new,))
            why = land.get("why") if land else "the host's write and read were not recorded"
            errors.append(f"{where}the host did not take the new key ({why}); the new key {new} was deleted and the profile keeps {old}")
    return errors


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
            "seed_rows": seed_rows,
            "seed_rows_by_host": seed_rows_by_host,
            "seed_errors_by_host": seed_errors_by_host,
            "rotate_rows": rotate_rows,
            "rotate_errors": rotate_errors,
            "rotate_errors_by_host": rotate_errors_by_host,
            "reminder_table": reminder_table,
        }
