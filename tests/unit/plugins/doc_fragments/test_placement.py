# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The placement doc fragment: canary_key_batch's placements document exactly canary_key's placement options plus its own."""

from __future__ import annotations

import yaml

from ansible_collections.canarykeys.aws.plugins.doc_fragments.placement import ModuleDocFragment
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.options import BATCH_PLACEMENT_SPEC, PLACEMENT_SPEC


def test_the_batch_suboptions_are_the_placement_options_plus_the_batch_ones():
    single = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    batch = yaml.safe_load(ModuleDocFragment.BATCH)["options"]["placements"]["suboptions"]
    assert {name: batch[name] for name in single} == single
    # canary_key documents planted_key_id itself (its meaning differs with state); the batch documents it here.
    assert set(single) | {"planted_key_id"} == set(PLACEMENT_SPEC)
    assert set(batch) == set(BATCH_PLACEMENT_SPEC)
