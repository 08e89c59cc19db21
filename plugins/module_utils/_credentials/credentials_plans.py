# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read, plant and remove one profile of an AWS shared credentials file: pure plans, no I/O.

Never overwrite a profile we did not create: a profile holding a key that is neither the one
asked for nor a known previous canary key, or settings without a key, is refused.
"""

from __future__ import annotations

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.aws_settings import (
    KEY_ID,
    SECRET,
    SESSION_OPTIONS,
    check_profile_name,
    check_token,
    is_access_key_id,
)
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.errors import RefusedError
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.ini_document import IniDocument
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.ini_edits import (
    appended,
    verified,
    with_settings,
    without,
)
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.plan import Plan


def _credentials_document(data, label):
    doc = IniDocument.from_bytes(data, label)
    defaults = doc.defaults_section()
    if defaults is not None:
        # botocore hands [DEFAULT]'s settings to every profile: a planted profile would be read
        # with, say, a foreign aws_session_token and fail, or its key would serve another profile.
        raise RefusedError(
            "%s has a [DEFAULT] section with settings (line %d), which the AWS CLI and SDKs add to every "
            "profile; move them into the profiles that need them" % (label, defaults.header + 1))
    return doc


def _raw_key(section):
    option = section.option(KEY_ID) if section else None
    return (option.value or None) if option else None


def _not_a_key_id(profile, label):
    # The value is not quoted: a value that is not a key id may be a secret pasted in the wrong place.
    return ("profile %s in %s has an aws_access_key_id that is not an access key id (its value is not shown)"
            % (profile, label))


def _key_id(section, profile, label):
    """The access key id the profile holds, or None; refuses a value not shaped like a key id."""
    current = _raw_key(section)
    if current is not None and not is_access_key_id(current):
        raise RefusedError(_not_a_key_id(profile, label) + "; refusing to read or change it")
    return current


def read_profile(data, label, profile):
    """(access key id of the profile or None, profile names): the only facts a query returns."""
    doc = _credentials_document(data, label)
    return _key_id(doc.section(profile), profile, label), doc.profiles()


def plan_present(data, label, profile, access_key_id, secret_access_key, replaceable_key_ids=()):
    """Ensure the profile holds exactly this key, refusing to clobber a key that is not ours."""
    check_profile_name(profile)
    check_token(access_key_id, "access_key_id")
    check_token(secret_access_key, "secret_access_key")
    doc = _credentials_document(data, label)
    section = doc.section(profile)
    wanted = {KEY_ID: access_key_id, SECRET: secret_access_key}
    settings = doc.settings()
    if section is None:
        new_lines = appended(doc, ["[%s]" % profile, "%s = %s" % (KEY_ID, access_key_id), "%s = %s" % (SECRET, secret_access_key)])
        new_doc = verified(doc, new_lines, settings + [(profile, wanted)])
        return Plan(doc, new_doc, None, access_key_id, "profile %s added to %s" % (profile, label))
    current = _key_id(section, profile, label)
    own = section.values()
    if current is None and any(own.values()):
        raise RefusedError(
            "refusing to overwrite profile %s in %s: it holds settings but no access key id, so it is "
            "not a canary this play planted" % (profile, label))
    if current is not None and current != access_key_id and current not in replaceable_key_ids:
        raise RefusedError(
            "refusing to overwrite profile %s in %s: it holds key %s which is not a canary key this play knows"
            % (profile, label, current))
    expected_own = {name: value for name, value in own.items() if name not in SESSION_OPTIONS}
    expected_own.update(wanted)
    if expected_own == own:
        return Plan(doc, None, current, current, "profile %s in %s already holds key %s" % (profile, label, current))
    new_lines = with_settings(doc, section, wanted, drop=SESSION_OPTIONS)
    expected = [(name, expected_own if name == profile else values) for name, values in settings]
    new_doc = verified(doc, new_lines, expected)
    if current == access_key_id:
        msg = "profile %s in %s updated" % (profile, label)
    elif current is None:
        msg = "key written into the empty profile %s in %s" % (profile, label)
    else:
        msg = "profile %s in %s: key %s replaced" % (profile, label, current)
    return Plan(doc, new_doc, current, access_key_id, msg)


def plan_absent(data, label, profile, access_key_id):
    """Remove the profile only when it holds this key; another key is left alone, not an error."""
    check_profile_name(profile)
    doc = _credentials_document(data, label)
    section = doc.section(profile)
    if section is None:
        return Plan(doc, msg="profile %s is not in %s" % (profile, label))
    current = _raw_key(section)
    if current is not None and not is_access_key_id(current):
        return Plan(doc, msg=_not_a_key_id(profile, label) + "; left alone", left_alone=True)
    if current != access_key_id:
        return Plan(doc, None, current, current,
                    "profile %s in %s left alone: it holds %s, not %s"
                    % (profile, label, "key " + current if current else "no access key id", access_key_id),
                    left_alone=True)
    expected = [(name, values) for name, values in doc.settings() if name != profile]
    new_doc = verified(doc, without(doc, section), expected)
    return Plan(doc, new_doc, current, None, "profile %s removed from %s" % (profile, label))
