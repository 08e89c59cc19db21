# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Matching the outcomes of one canary_key_batch run back to the hosts that asked for them.

The seed and rotate roles send the placements of every host of the play to one batch run and each
host then takes its own outcomes back.  A placement is named by (host, path, profile) in requests and
outcomes alike; the outcome's index in the batch is how a later task reaches the one secret it needs
without the secret travelling in a loop item or a fact.
"""

from __future__ import annotations


def placement_of(item) -> tuple:
    """(host, path, profile): what names one placement in a request, an outcome or a loop item."""
    return (item.get("host"), item.get("path"), item.get("profile"))


def outcomes_for_host(outcomes, requests, host) -> list:
    """``(index, request, outcome)`` for each of ``host``'s requests that has an outcome in the batch."""
    index_of = {placement_of(outcome): index for index, outcome in enumerate(outcomes or [])}
    return [
        (index_of[placement_of(request)], request, outcomes[index_of[placement_of(request)]])
        for request in requests or []
        if request.get("host") == host and placement_of(request) in index_of
    ]
