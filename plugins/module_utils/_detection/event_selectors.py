# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CloudTrail advanced event selectors: when the trail's selectors already are the desired ones.

Pure logic with no Ansible and no AWS calls, for the ``cloudtrail_event_selectors`` module.
"""

from __future__ import annotations

import json

# The operators of an advanced field selector; each holds a list of values whose order means nothing.
OPERATORS = ("Equals", "StartsWith", "EndsWith", "NotEquals", "NotStartsWith", "NotEndsWith")


def _canonical_field(field_selector) -> dict:
    canonical = {"Field": field_selector["Field"]}
    for operator in OPERATORS:
        if field_selector.get(operator):
            canonical[operator] = sorted(field_selector[operator])
    return canonical


def canonical(selectors) -> list:
    """The selectors in one order with empty operators dropped: AWS may answer in another order.

    The order of the selectors and of their field selectors does not change what a trail records.
    """
    result = []
    for selector in selectors or []:
        fields = sorted((_canonical_field(field) for field in selector.get("FieldSelectors", [])), key=lambda f: f["Field"])
        result.append({"Name": selector.get("Name"), "FieldSelectors": fields})
    return sorted(result, key=lambda selector: json.dumps(selector, sort_keys=True))


def differ(current, desired) -> bool:
    """Whether the trail's advanced selectors differ from the desired ones."""
    return canonical(current) != canonical(desired)


def validate(selectors) -> list:
    """Problems AWS would report less clearly; empty when fine."""
    problems = []
    for index, selector in enumerate(selectors or []):
        fields = selector.get("FieldSelectors")
        if not fields:
            problems.append(f"advanced_event_selectors[{index}] has no FieldSelectors.")
            continue
        for field in fields:
            if "Field" not in field or not any(field.get(operator) for operator in OPERATORS):
                problems.append(f"advanced_event_selectors[{index}] has a field selector without Field or operator: {field}.")
    return problems
