# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The botocore errors a detection module reports through ``fail_json_aws``.

Empty without botocore: AnsibleAWSModule then fails with the missing dependency before any call.
"""

from __future__ import annotations

try:
    from botocore.exceptions import BotoCoreError, ClientError

    AWS_ERRORS = (ClientError, BotoCoreError)
except ImportError:
    AWS_ERRORS = ()
