# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The account's credential report for canary_key_info: the shared reader, with the collection's error.

The parsing and the download live in module_utils/_lambda_shared/credential_report.py (standard library
only), which the last-used detector Lambda ships too.
"""

from __future__ import annotations

import time

from ansible_collections.canarykeys.aws.plugins.module_utils._iam.errors import EstateError
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared.credential_report import (  # noqa: F401 (re-exported)
    CredentialReport,
    ReportNotReady,
    fetch,
)


def credential_report(call, poll_interval: float = 0.5, timeout: float = 300.0,
                      sleep=time.sleep, clock=time.monotonic) -> CredentialReport:
    """Generate (or reuse, if under 4 hours old) the account's credential report and download it."""
    try:
        return fetch(call, poll_interval, timeout, sleep, clock)
    except ReportNotReady as error:
        raise EstateError(str(error)) from None
