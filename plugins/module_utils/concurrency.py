# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Independent IAM calls made a few at a time.

IAM answers one request at a time per connection and most of a call is waiting for it, so the
modules that make one call per canary (the inventory, the batched mint) run them on a few threads.
boto3 clients are thread-safe; AnsibleAWSModule's retrying client retries each call on its own.
"""

from __future__ import annotations

import concurrent.futures

MAX_CONCURRENCY = 16


def parallel_map(function, items, concurrency: int) -> list:
    """``[function(item) for item in items]``, in order, with up to ``concurrency`` calls at once."""
    items = list(items)
    if concurrency <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        return list(pool.map(function, items))
