# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The errors of the IAM side: the two ways a canary placement fails (and the one line each becomes for the person
running the play), and the estate listing's."""

from __future__ import annotations

try:
    import botocore.exceptions
except ImportError:
    pass  # AnsibleAWSModule reports the missing dependency

# What a controller without AWS credentials is told, by every module that mints (botocore's own message
# names no setting of ours).
NO_CREDENTIALS = (
    "The controller has no usable AWS credentials: set aws_profile (or AWS_PROFILE), or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY"
)


class PlacementError(Exception):
    """A refusal or a naming problem, with a message meant for the person running the play."""


class IAMCallError(Exception):
    """An AWS call failed; ``message`` says what was being done, ``exception`` is botocore's."""

    def __init__(self, message, exception):
        super().__init__(message)
        self.message = message
        self.exception = exception


class EstateError(Exception):
    """The estate listing could not be completed for a reason other than an AWS error."""


def error_message(error, no_credentials_message=NO_CREDENTIALS) -> str:
    """One line for a failed placement: what was being done and what AWS said, never a traceback."""
    if isinstance(error, IAMCallError):
        if isinstance(error.exception, botocore.exceptions.NoCredentialsError):
            return no_credentials_message
        return f"{error.message}: {error.exception}"
    return str(error)
