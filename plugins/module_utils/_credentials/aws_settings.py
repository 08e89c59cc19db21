# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWS settings the module reads and writes, and the checks on the names and values it is given."""

from __future__ import annotations

import configparser
import re

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.errors import RefusedError

KEY_ID = "aws_access_key_id"
SECRET = "aws_secret_access_key"
REGION = "region"
OUTPUT = "output"
# Session credentials belong to the key they were derived from; left beside a new key they would
# make every call with the profile fail, which is not how a working profile looks.
SESSION_OPTIONS = ("aws_session_token", "aws_security_token")
SECRET_OPTIONS = frozenset((SECRET,) + SESSION_OPTIONS)
MASK = "********"

# configparser treats [DEFAULT] as defaults for every section: a profile by that name would
# hand its key to every other profile in the file.
_RESERVED_PROFILES = frozenset((configparser.DEFAULTSECT,))
# Names that survive both "[name]" in the credentials file and botocore's shlex split of
# "[profile name]" in the config file.
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9_.@+=,:/-]{1,128}$")
# Keys, secrets and regions are written as one token on one line: anything with white space or
# control characters could end the line and inject settings.
_TOKEN = re.compile(r"^[!-~]{1,1024}$")
# IAM's access key ids are 16 to 128 upper-case letters and digits (AKIA..., ASIA...). A secret is
# mixed-case base64, so a value outside this shape (a secret pasted into the wrong setting, a
# nested block) is never quoted back.
_ACCESS_KEY_ID = re.compile(r"^[A-Z0-9]{16,128}$")


def check_profile_name(profile):
    if profile in _RESERVED_PROFILES or not _PROFILE_NAME.match(profile or ""):
        raise RefusedError(
            "profile name %r is not usable: use letters, digits and _ . @ + = , : / - only, "
            "at most 128 characters, and not DEFAULT" % (profile,))


def check_token(value, what):
    """Refuse a value that could not sit on one line as one token (the message omits the value)."""
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise RefusedError("%s must be 1 to 1024 printable ASCII characters without spaces" % what)


def is_access_key_id(value):
    """Whether a value read from a file may be shown: only an access key id's shape is."""
    return bool(_ACCESS_KEY_ID.match(value or ""))


def config_section_name(profile):
    """The config file's section for a profile, as ``aws configure`` names it."""
    return "default" if profile == "default" else "profile " + profile
