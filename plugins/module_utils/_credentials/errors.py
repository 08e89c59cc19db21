# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The refusals of the credentials-file code: each leaves every file as it was."""

from __future__ import annotations


class CredentialsFileError(Exception):
    """A refusal: nothing was written, and the message says why (never with a secret in it)."""


class ParseError(CredentialsFileError):
    """The file is not one botocore can read, or not one this module can edit safely."""


class RefusedError(CredentialsFileError):
    """The file is readable but the requested change would clobber something that is not ours."""
