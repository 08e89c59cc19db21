# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options canary_key and canary_key_batch share: one argument spec and one validation.

Their documentation is the doc fragments canarykeys.aws.placement and canarykeys.aws.naming
(plugins/doc_fragments/).  The placement's profile option is ``profile_name``: ``profile`` is
amazon.aws's own option (with its alias ``aws_profile``), the controller's AWS profile.
"""

from __future__ import annotations

from ansible_collections.canarykeys.aws.plugins.module_utils._iam.batch import MAX_CONCURRENCY
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.errors import PlacementError
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.naming import DEFAULT_TEMPLATE, candidate_names, check_iam_path

# One placement: canary_key's top-level options, canary_key_batch's placements[] items.
PLACEMENT_SPEC = dict(
    host=dict(type="str", required=True),
    path=dict(type="str", required=True),
    profile_name=dict(type="str", required=True),
    planted_key_id=dict(type="str", no_log=False),
    reminder=dict(type="str", default=""),
    planted_by=dict(type="str", default=""),
)

NAMING_SPEC = dict(
    user_name_template=dict(type="str", default=DEFAULT_TEMPLATE),
    iam_path=dict(type="str", default="/"),
    deny_all=dict(type="bool", default=False),
)

# What the bulk read listed of a placement's user, for a rotation's steps (module_utils/_iam/listed.py).
LISTING_SPEC = dict(
    user_name=dict(type="str", required=True),
    user_arn=dict(type="str", default=""),
    iam_path=dict(type="str", default="/"),
    mapping=dict(type="dict", required=True),
    key_history=dict(type="list", elements="str", default=[], no_log=False),
    keys=dict(type="list", elements="dict", required=True, no_log=False, options=dict(
        access_key_id=dict(type="str", required=True, no_log=False),
        status=dict(type="str", default="Active", choices=["Active", "Inactive"]),
        create_date=dict(type="str", required=True),
    )),
)

# canary_key_batch's placements[] items: one placement, plus what differs per placement in a batch
# (the key read back, a group's own naming) and what the bulk read already knows (inline_policies, listing).
BATCH_PLACEMENT_SPEC = dict(
    PLACEMENT_SPEC,
    rotated_key_id=dict(type="str", no_log=False),
    user_name_template=dict(type="str"),
    inline_policies=dict(type="list", elements="str"),
    user_name=dict(type="str"),
    account=dict(type="str", default=""),
    listing=dict(type="dict", options=LISTING_SPEC),
)


def validate(placements, template, iam_path, max_age_days=None, concurrency=None, rotated_key_required=False) -> None:
    """Raise PlacementError for the first bad option, before any AWS call, so a refusal creates nothing anywhere.

    ``placements``: dicts with host, path, profile_name (a placement without them, e.g. canary_key retiring a
    user by name, is not named and not checked).  ``max_age_days`` and ``concurrency`` are checked when given.
    """
    check_iam_path(iam_path)
    for placement in placements:
        candidate_names(placement["host"], placement["path"], placement["profile_name"], placement.get("user_name_template") or template)
    if concurrency is not None and not 1 <= concurrency <= MAX_CONCURRENCY:
        raise PlacementError(f"concurrency must be between 1 and {MAX_CONCURRENCY}")
    if max_age_days is not None and max_age_days < 0:
        raise PlacementError(f"max_age_days must be 0 or more, not {max_age_days}")
    if rotated_key_required:
        missing = [f"{p['host']}:{p['path']} [{p['profile_name']}]" for p in placements if not p.get("rotated_key_id")]
        if missing:
            raise PlacementError(f"rotated_key_id is required to finish a rotation; missing for {', '.join(missing)}")
