# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one comparison every detection module makes: which fields of an AWS resource differ.

Pure Python, shared by the read-compare-write modules (subscription filter, EventBridge rule, Lambda
event invoke configuration) so that "what counts as a change" is decided one way.
"""

from __future__ import annotations


def changed_fields(current, request, fields, defaulted_by_aws=frozenset()) -> list:
    """Sorted names of ``fields`` where ``current`` differs from ``request``.

    With no ``current`` (nothing exists yet) every field the request sets is a change. A field the
    request leaves out counts as "remove it", except a field in ``defaulted_by_aws``: AWS fills those
    in itself, and counting them would rewrite the resource on every run.
    """
    if not current:
        return sorted(field for field in fields if field in request)
    changed = []
    for field in fields:
        if field not in request and field in defaulted_by_aws:
            continue
        if current.get(field) != request.get(field):
            changed.append(field)
    return sorted(changed)
