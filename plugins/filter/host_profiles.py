# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters between the roles and credentials_profiles: one module run reads or writes every profile of a host.

A role hands credentials_profiles the profiles of its placements and gets one outcome per profile back, in
order.  These filters pair the outcomes with the placements again (the shape a loop over credentials_profile
registered, so that the seed's and rotate's deciding filters need not know which ran), build the entries of a
write, and say which writes did not land.  Only ``plant_profiles`` returns secrets, and only into the module
argument whose suboption is no_log; nothing else here may carry one.

Each filter is documented in the adjacent YAML file of its name (plugins/filter/<filter>.yml).
"""

from __future__ import annotations

from ansible_collections.canarykeys.aws.plugins.filter.estate import canary_owner
from ansible_collections.canarykeys.aws.plugins.filter.placements import rotate_landed, rotate_plants, seed_plants


def _outcomes(result, count):
    """The outcomes of a credentials_profiles result; a run that failed or did not reach its host fails each profile."""
    result = result or {}
    if result.get("skipped"):
        return []
    if result.get("failed") or result.get("unreachable") or "outcomes" not in result:
        why = result.get("msg") or "host unreachable"
        lost = {"failed": True, "unreachable": bool(result.get("unreachable")), "msg": why}
        return [dict(lost) for _index in range(count)]
    return result["outcomes"]


def _owner(placement, become, login_user):
    """The placement's ``user``, else the owner of its recorded file (a placement row of the estate)."""
    return placement.get("user") or canary_owner(placement.get("path"), become, login_user)


def query_profiles(placements, become=False, login_user=""):
    """credentials_profiles' ``profiles`` that read each placement's profile (``state: query``).

    A placement without ``user`` (a placement row of canary_key_info) is owned by the owner of its file,
    ``canary_owner`` of its path (``become``, ``login_user``: the host's).
    """
    return [
        {"owner": _owner(p, become, login_user), "profile": p.get("profile"), "state": "query", **({"path": p["path"]} if p.get("path") else {})}
        for p in placements or []
    ]


def profile_reads(result, placements, key):
    """Each placement's outcome with the placement under ``key``, as a loop with ``loop_var: KEY`` registers ``results``."""
    placements = list(placements or [])
    return [dict(outcome, **{key: placement}) for placement, outcome in zip(placements, _outcomes(result, len(placements)))]


def _controller_profile(read, key, refused_path, refused_profile):
    """Whether a read (its placement under ``key``) is of the profile the controller itself uses for AWS."""
    return bool(refused_path) and read.get("path") == refused_path and (read.get(key) or {}).get("profile") == refused_profile


def usable_reads(reads, refused_path="", refused_profile="", key="seed_placement"):
    """The reads a decision may rest on: read without failure, and not the controller's own profile.

    ``key``: where each read carries its placement (profile_reads' ``key``).
    """
    return [
        read for read in reads or []
        if not read.get("failed") and not _controller_profile(read, key, refused_path, refused_profile)
    ]


def become_problem(why, owners, login_user="", host=""):
    """The one line for a host where the login user could not become root for the placements of other users (``owners``)."""
    others = sorted({owner for owner in owners or [] if owner} - {login_user})
    return (f"The placements of {', '.join(others)} on {host} need become (sudo to root) as {login_user or 'the login user'}, "
            f"which failed ({(why or 'unknown error').strip()}): give that user passwordless sudo, or set ansible_become_password "
            "(or run ansible-playbook with -K).")


def read_problems(result, placements, become_used=False, login_user="", host="", refused_path="", refused_profile=""):
    """One line per reason the read of a host's profiles failed or must stop the seed: the run itself (become first),
    a profile, or a profile that is the controller's own (``refused_path``, ``refused_profile``: the controller's
    credentials file and profile when this host is the controller), whose canary would trip its own alarm."""
    result = result or {}
    if result.get("failed") and "outcomes" not in result:
        why = (result.get("msg") or "unknown error").strip()
        if become_used:
            return [become_problem(why, [entry.get("owner") for entry in placements or []], login_user, host)]
        return [why]
    problems = [outcome.get("msg") for outcome in result.get("outcomes") or [] if outcome.get("failed")]
    for read in profile_reads(result, placements, "placement") if refused_path else []:
        if _controller_profile(read, "placement", refused_path, refused_profile):
            problems.append(f"Refusing to plant a canary into {refused_path} [{refused_profile}]: it is the profile this controller "
                            "itself uses for AWS, and the seed would then trip its own alarm.")
    return problems


def plant_profiles(plants, outcomes, backup=False, replace_key="replaceable_key_ids", become=False, login_user=""):
    """credentials_profiles' ``profiles`` for the plants: each takes its secret from the batch outcome at its index.

    The one filter here that returns secrets: only for the module argument, whose suboption is no_log.
    ``replace_key``: the plant's field of the key id(s) the write may replace; a plant without ``user`` is
    owned by the owner of its file (``become``, ``login_user``: the host's).
    """
    entries = []
    for plant in plants or []:
        replaceable = plant.get(replace_key) or []
        entry = {
            "owner": _owner(plant, become, login_user),
            "path": plant.get("path"),
            "profile": plant.get("profile"),
            "access_key_id": plant.get("access_key_id"),
            "secret_access_key": outcomes[plant["index"]].get("secret_access_key"),
            "replaceable_key_ids": [replaceable] if isinstance(replaceable, str) else list(replaceable),
            "backup": bool(backup),
            "state": "present",
        }
        if plant.get("region"):
            entry["region"] = plant["region"]
        entries.append(entry)
    return entries


def unplanted(result, plants):
    """The plants whose write did not land, each with ``msg``: refused, failed, or its host unreachable."""
    plants = list(plants or [])
    return [
        dict(plant, msg=outcome.get("msg") or "host unreachable", unreachable=bool(outcome.get("unreachable")))
        for plant, outcome in zip(plants, _outcomes(result, len(plants)))
        if outcome.get("failed")
    ]


def unplanted_by_host(hosts, hostvars, plants_by_host, write_var="seed_write"):
    """``unplanted`` of every host (run once for the play), each with its ``host``: what the write of each host
    (its registered ``write_var``) did not land of that host's minted placements (``plants_by_host``, the
    outcomes by host whose minted entries were written)."""
    failed = []
    for host in hosts or []:
        written = hostvars[host].get(write_var) if host in hostvars else None
        plants = seed_plants((plants_by_host or {}).get(host))
        if not plants or not written:
            continue
        failed.extend(dict(plant, host=host) for plant in unplanted(written, plants))
    return failed


def rotate_landed_by_host(hosts, hostvars, outcomes_by_host, write_var="rotate_write", confirm_var="rotate_confirm"):
    """``rotate_landed`` of every host that got a second key (run once for the play, after every host's write).

    Each host's write (``write_var``) and confirming read of the profiles whose write did not land
    (``confirm_var``) are read from ``hostvars``; a host lost during the write keeps its facts.
    """
    landed = []
    for host in hosts or []:
        plants = rotate_plants((outcomes_by_host or {}).get(host))
        if not plants:
            continue
        facts = hostvars[host] if host in hostvars else {}
        written = facts.get(write_var) or {"unreachable": True}
        lost = unplanted(written, plants)
        landed.extend(rotate_landed(profile_reads(written, plants, "rotate_plant"),
                                    profile_reads(facts.get(confirm_var) or {"skipped": True}, lost, "rotate_plant")))
    return landed


class FilterModule:
    def filters(self):
        return {
            "query_profiles": query_profiles,
            "profile_reads": profile_reads,
            "become_problem": become_problem,
            "read_problems": read_problems,
            "usable_reads": usable_reads,
            "plant_profiles": plant_profiles,
            "unplanted": unplanted,
            "unplanted_by_host": unplanted_by_host,
            "rotate_landed_by_host": rotate_landed_by_host,
        }
