# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the rotate role.

The role runs ``canary_key_batch`` twice for the whole play batch (``action: begin``, then
``action: finish``) and the host-side steps (write, confirm) per host in between.  These filters
join the per-host results with the batch outcomes.  Their one rule, as in the seed's filters:
nothing they return may carry a secret access key, because what they return is looped over, stored
in facts and printed.  The write task fetches the one secret it needs from the no_log batch result
by ``index``.
"""

from __future__ import annotations

from ansible_collections.canarykeys.aws.plugins.module_utils._iam.batch import outcomes_for_host, placement_of

# What the rows and the messages need of a begin outcome; never secret_access_key.
_BEGIN_FIELDS = ("rotation", "user_name", "access_key_id", "rotated_key_id", "key_age_days", "deleted_access_key_ids", "msg")


def _label(item):
    return f"{item.get('path')} [{item.get('profile')}]"


def rotate_requests(read_results, host):
    """One ``action: begin`` request per profile read on this host (host, path, profile, planted key id).

    ``read_results`` are the results of the role's read loop (loop_var ``rotate_canary``, the canary
    as ``canary_key_info`` listed it). ``user_name`` is not a module field (``batch_placements`` drops
    it): it names the IAM user in the table when the begin step fails.
    """
    return [
        {
            "host": host,
            "path": read.get("path") or read.get("rotate_canary", {}).get("path"),
            "profile": read.get("rotate_canary", {}).get("profile"),
            "planted_key_id": read.get("access_key_id") or "",
            "user_name": read.get("rotate_canary", {}).get("user_name"),
        }
        for read in read_results or []
    ]


def rotate_outcomes(outcomes, requests, host):
    """This host's requests, each with the index and the begin outcome (secret left out) of its placement.

    ``outcomes`` is RV(outcomes) of the begin batch over the requests of every host of the batch.
    """
    mine = []
    for index, request, outcome in outcomes_for_host(outcomes, requests, host):
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
        mine.append(entry)
    return mine


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

    The confirming read decides.  When it could not reach the host, a write that succeeded stands for
    it (the module replaced the file atomically and reported the new key); with neither, the host is
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


def _landed_index(landed):
    """Landed entries by placement and new key: facts left by an earlier run never match a new key."""
    return {placement_of(item) + (item.get("access_key_id"),): item for item in landed or [] if item}


def rotate_finish_placements(outcomes, landed, planted_by=""):
    """The ``action: finish`` placements: every placement that got a second key in the begin batch.

    ``outcomes`` is RV(outcomes) of the begin batch, ``landed`` the ``rotate_landed`` entries of every
    host of the play.  A placement with no landed entry (its host failed before recording one) is
    finished as if the host held the old key: the new key is deleted, and no key the host did not
    take survives the run.
    """
    index = _landed_index(landed)
    placements = []
    for outcome in outcomes or []:
        if not outcome.get("minted") or outcome.get("failed") or not outcome.get("access_key_id"):
            continue
        held = index.get(placement_of(outcome) + (outcome.get("access_key_id"),), {}).get("held") or ""
        placements.append({
            "host": outcome.get("host"),
            "path": outcome.get("path"),
            "profile_name": outcome.get("profile"),
            "planted_key_id": held,
            "rotated_key_id": outcome.get("rotated_key_id"),
            "planted_by": planted_by or "",
        })
    return placements


def _finished(finish):
    """The finish batch's outcomes by placement, and what to say for a placement without one."""
    finish = finish or {}
    by_place = {placement_of(outcome): outcome for outcome in finish.get("outcomes") or []}
    if finish.get("failed"):
        missing = finish.get("msg") or "canary_key_batch failed"
    elif finish.get("skipped"):
        missing = "the finish step did not run"
    else:
        missing = "no outcome from the finish step"
    return by_place, missing


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
    finish_by_place, missing = _finished(finish)
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
            "path": outcome.get("path"),
            "profile": outcome.get("profile"),
            "iam_user": outcome.get("user_name"),
            "access_key_id": key,
            "status": status,
        })
    return rows


def rotate_errors(outcomes, landed=None, finish=None, check_mode=False):
    """Why each placement of this host that should have rotated did not, one message each (no secret)."""
    finish_by_place, missing = _finished(finish)
    landed_by = _landed_index(landed)
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


class FilterModule:
    def filters(self):
        return {
            "rotate_requests": rotate_requests,
            "rotate_outcomes": rotate_outcomes,
            "rotate_plants": rotate_plants,
            "rotate_landed": rotate_landed,
            "rotate_finish_placements": rotate_finish_placements,
            "rotate_rows": rotate_rows,
            "rotate_errors": rotate_errors,
        }
