# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many placements in one module run (canary_key_batch), and their outcomes matched back to their hosts.

The seed and the rotation run one controller task for the whole play instead of one module run per
placement: each placement is still decided on its own, by the functions of module_utils/_iam/apply.py,
and one placement's failure is reported in its own result without stopping the others.

IAM answers one request at a time per connection and most of a call is waiting for it, so
independent calls run on a few threads (``parallel_map``; the estate listing uses it too).  boto3
clients are thread-safe; AnsibleAWSModule's retrying client retries each call on its own.

Each host then takes its own outcomes back (the seed and rotate filters): a placement is named by
(host, path, profile) in requests and outcomes alike, and the outcome's index in the batch is how a
later task reaches the one secret it needs without the secret travelling in a loop item or a fact.
"""

from __future__ import annotations

import concurrent.futures

from ansible_collections.canarykeys.aws.plugins.module_utils._iam.apply import begin_rotation, ensure_present, finish_rotation
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.errors import NO_CREDENTIALS, IAMCallError, PlacementError, error_message
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.plans import Placement

MAX_CONCURRENCY = 16


def parallel_map(function, items, concurrency: int) -> list:
    """``[function(item) for item in items]``, in order, with up to ``concurrency`` calls at once."""
    items = list(items)
    if concurrency <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        return list(pool.map(function, items))


ACTIONS = {
    "ensure": lambda client, placement, request, options: ensure_present(
        client, placement, request.get("planted_key_id") or "", known_user_name=request.get("user_name") or "", **options),
    # A rotation's steps decide on what the bulk read listed, when the request carries it (module_utils/_iam/listed.py).
    "begin": lambda client, placement, request, options: begin_rotation(
        client, placement, request.get("planted_key_id") or "", request.get("max_age_days") or 0, listing=request.get("listing"),
        **options),
    "finish": lambda client, placement, request, options: finish_rotation(
        client, placement, request.get("planted_key_id") or "", request.get("rotated_key_id") or "", listing=request.get("listing"),
        **options),
}


def run_many(client, requests, action="ensure", concurrency=4, no_credentials_message=NO_CREDENTIALS, **options) -> list:
    """Run ``action`` for every request (host, path, profile_name and the action's key ids), in order, a few at a time.

    Each result names its placement (host, path, profile); a placement that failed has ``failed: true``
    and ``msg`` and nothing else, since nothing was handed out for it.
    """
    if action not in ACTIONS:
        raise PlacementError(f"action must be one of {', '.join(ACTIONS)}")

    def one(request):
        placement = Placement(host=request["host"], path=request["path"], profile=request["profile_name"],
                              reminder=request.get("reminder") or "", planted_by=request.get("planted_by") or "")
        named = {"host": placement.host, "path": placement.path, "profile": placement.profile}
        # A group's own naming, and the inline policies the bulk read saw, travel with the placement.
        own = dict(options, template=request.get("user_name_template") or options.get("template"),
                   policy_names=request.get("inline_policies"))
        try:
            return dict(named, **ACTIONS[action](client, placement, request, own))
        except (PlacementError, IAMCallError) as error:
            return dict(named, failed=True, changed=False, minted=False, msg=error_message(error, no_credentials_message))

    return parallel_map(one, requests, concurrency)


def placement_of(item) -> tuple:
    """(host, path, profile): what names one placement in a request, an outcome or a loop item."""
    return (item.get("host"), item.get("path"), item.get("profile"))


def landed_index(landed):
    """The rotate filter's landed entries by placement and new key: facts left by an earlier run never match a new key."""
    return {placement_of(item) + (item.get("access_key_id"),): item for item in landed or [] if item}


def finish_outcomes(finish):
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
