# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hypothesis properties of the credentials-file merge over random hand-edited files.

Every result is read back by botocore's ``raw_config_parse`` from a real file."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import aws_settings
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import errors
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import config_plans as config
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import ini_document as ini
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import ini_edits as edits
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import credentials_plans as plans


KEY = "AKIA1111111111111111"
SECRET = "FAKEKYnew0000000000000000000000000000000"
OLD_KEY = "AKIA2222222222222222"


# ------------------------------------------------------------------------------ property tests

_NAME = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=8)
_PLAIN = st.text("abcdefghijklmnopqrstuvwxyz0123456789=:/#;._- ", max_size=12).map(str.strip)
_SECRET_VALUE = st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789+/", min_size=8, max_size=20).map(lambda s: "FAKEKY" + s)
_KEY_VALUE = st.text("0123456789", min_size=16, max_size=16).map(lambda s: "AKIA" + s)
_SPACE = st.sampled_from(["", " ", "  ", "\t", " \t "])
_COMMENT = st.builds(lambda indent, prefix, text: indent + prefix + text,
                     st.sampled_from(["", "  "]), st.sampled_from(["#", ";"]),
                     st.text(st.characters(blacklist_categories=["Cc", "Cs", "Zl", "Zp"]), max_size=15))
_BLANK = st.sampled_from(["", " ", "\t", "   "])
_OPTION_NAMES = ["aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region", "output",
                 "role_arn", "source_profile", "s3", "mfa_serial"]


@st.composite
def _setting(draw, name, indent):
    lines = []
    spelled = draw(st.sampled_from([name, name.upper()])) if name.startswith("aws_") else name
    delimiter = draw(_SPACE) + draw(st.sampled_from(["=", ":"])) + draw(_SPACE)
    if name == "aws_access_key_id":
        value = draw(st.one_of(_KEY_VALUE, _KEY_VALUE, _KEY_VALUE, st.just("")))
    elif name in aws_settings.SECRET_OPTIONS:
        value = draw(_SECRET_VALUE)
    elif name == "s3":
        nested = draw(st.lists(st.tuples(st.sampled_from(["addressing_style", "max_concurrent_requests"]), _PLAIN),
                               min_size=1, max_size=2, unique_by=lambda t: t[0]))
        lines.append(indent + spelled + delimiter.rstrip())
        lines.extend(indent + "    " + key + " = " + value for key, value in nested)
        return lines
    else:
        value = draw(_PLAIN)
    lines.append(indent + spelled + delimiter + value + draw(st.sampled_from(["", " ", "\t"])))
    if name not in ("aws_access_key_id",) and value and draw(st.integers(0, 9)) == 0:
        # A multi-line value: a deeper-indented continuation line.
        lines.append(indent + "   " + draw(_SECRET_VALUE if name in aws_settings.SECRET_OPTIONS else _PLAIN.filter(bool)))
    return lines


@st.composite
def _section(draw, name, header_indents):
    """A section's lines and the indent of its settings (None without settings)."""
    indent = draw(st.sampled_from(["", "", "", " ", "\t"]))
    header = draw(st.sampled_from(header_indents)) + "[%s]" % name + draw(st.sampled_from(["", " ", "\t"]))
    lines = [header]
    names = draw(st.lists(st.sampled_from(_OPTION_NAMES), max_size=5, unique=True))
    if "aws_access_key_id" not in names and draw(st.booleans()):
        names.insert(0, "aws_access_key_id")
    for option in names:
        lines.extend(draw(st.lists(st.one_of(_COMMENT, _BLANK), max_size=1)))
        lines.extend(draw(_setting(option, indent)))
    lines.extend(draw(st.lists(st.one_of(_COMMENT, _BLANK), max_size=2)))
    return lines, (indent if names else None)


@st.composite
def credentials_files(draw):
    """Random credentials files the AWS CLI can read, with the quirks of hand-edited ones."""
    names = draw(st.lists(_NAME, max_size=4, unique=True))
    lines = draw(st.lists(st.one_of(_COMMENT, _BLANK), max_size=3))
    settings_indent = None
    for name in names:
        # An indented header is still a header unless the setting above it is indented less.
        header_indents = ["", "", "", " "] if settings_indent is None or settings_indent else [""]
        section, settings_indent = draw(_section(name, header_indents))
        lines.extend(section)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines)
    if lines and draw(st.booleans()):
        text += newline
    return text.encode("utf-8"), names


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _others(read, profile):
    return {name: values for name, values in read.items() if name != profile}


@PROPERTY
@given(credentials_files(), _NAME)
def test_property_add_then_remove_restores_every_byte(botocore_reads, generated, profile):
    original, names = generated
    assume(profile not in names)
    before = botocore_reads(original)
    plan = plans.plan_present(original, "F", profile, KEY, SECRET)
    assert plan.data.startswith(original)
    # As after `aws configure`, the file ends with a newline.
    assert plan.data.endswith((b"\n", b"\r"))
    read = botocore_reads(plan.data)
    assert read[profile] == {"aws_access_key_id": KEY, "aws_secret_access_key": SECRET}
    assert _others(read, profile) == before
    assert not plans.plan_present(plan.data, "F", profile, KEY, SECRET).changed
    restored = plans.plan_absent(plan.data, "F", profile, KEY).data
    assert restored == original or (not original.endswith((b"\n", b"\r")) and restored.rstrip(b"\r\n") == original.rstrip(b"\r\n"))


def _lines(data):
    return ini.split_lines(data.decode("utf-8"))


def _one_profile(botocore_reads, generated, data):
    """(bytes, a drawn profile, botocore's reading, the document, the profile's section, its key id)."""
    original, names = generated
    assume(names)
    profile = data.draw(st.sampled_from(names))
    before = botocore_reads(original)
    doc = ini.IniDocument.from_bytes(original, "F")
    return original, profile, before, doc, doc.section(profile), before[profile].get("aws_access_key_id") or None


@PROPERTY
@given(credentials_files(), st.data())
def test_property_update_touches_only_the_profile(botocore_reads, generated, data):
    original, profile, before, doc, section, current = _one_profile(botocore_reads, generated, data)
    own_values = any(option.value for option in section.options)
    if current is None and own_values:
        with pytest.raises(errors.RefusedError):
            plans.plan_present(original, "F", profile, KEY, SECRET, [OLD_KEY])
        return
    if current is not None:
        with pytest.raises(errors.RefusedError, match=current):
            plans.plan_present(original, "F", profile, KEY, SECRET, [OLD_KEY])
    plan = plans.plan_present(original, "F", profile, KEY, SECRET, [current] if current else [])
    read = botocore_reads(plan.data)
    expected = {k: v for k, v in before[profile].items() if k not in aws_settings.SESSION_OPTIONS}
    expected.update({"aws_access_key_id": KEY, "aws_secret_access_key": SECRET})
    assert read[profile] == expected
    assert _others(read, profile) == _others(before, profile)
    lines = doc.lines
    head = "".join(text + ending for text, ending in lines[:section.header + 1])
    tail = "".join(text + ending for text, ending in lines[section.end:])
    result = plan.data.decode()
    assert result.startswith(head) and result.endswith(tail)
    assert SECRET not in plan.diff("F")["after"]


@PROPERTY
@given(credentials_files(), st.data())
def test_property_remove_takes_the_section_and_one_blank_line_only(botocore_reads, generated, data):
    original, profile, before, doc, section, current = _one_profile(botocore_reads, generated, data)
    try:
        plan = plans.plan_absent(original, "F", profile, current or KEY)
    except errors.ParseError:
        # Only an indented header after the section can make a removal unsafe.
        assert any(text[:1].isspace() for text, _ending in doc.lines[section.end:] if text.strip().startswith("["))
        return
    if current is None:
        assert not plan.changed
        return
    assert _others(botocore_reads(plan.data), profile) == _others(before, profile)
    lines = doc.lines
    start, end = section.header, section.end
    candidates = [(start, end)]
    if not edits.blank_separated(doc, excluding=section):
        pass
    elif start > 0 and not lines[start - 1][0].strip():
        candidates = [(start - 1, end)]
    elif end < len(lines) and not lines[end][0].strip():
        candidates = [(start, end + 1)]
    expected = []
    for first, last in candidates:
        text = "".join(t + e for t, e in lines[:first] + lines[last:])
        if not original.endswith((b"\n", b"\r")) and text:
            text = text[:-len(ini.split_lines(text)[-1][1]) or None]
        expected.append(text.encode())
    assert plan.data in expected


@PROPERTY
@given(credentials_files())
def test_property_masked_text_holds_no_secret(generated):
    original, _names = generated
    masked = ini.IniDocument.from_bytes(original, "F").masked_text()
    assert "FAKEKY" not in masked
    assert len(ini.split_lines(masked)) == len(_lines(original))


# ------------------------------------------------------------------------------ no secret echoed from malformed files

# Secret-looking: mixed-case base64 like a real secret (never the shape of an access key id).
_LEAKY = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", min_size=16, max_size=40).map(
    lambda s: "wJ" + s + "Kq")
_LINE_FORMS = [
    "[{name}]", "[{name}] # note [x]", "[{name}]]", "[DEFAULT]", "[profile {name}]",
    "aws_access_key_id = AKIA{digits}", "aws_access_key_id =", "aws_access_key_id = {secret}",
    "aws_secret_access_key = {secret}", "aws_session_token = {secret}", "aws_secret_access_key {secret}",
    "{secret}", "s3 =", "region = eu-west-1", "region =", "output =", "# a comment", "",
]


@st.composite
def malformed_files(draw):
    """Files with secrets in every wrong place (swapped, nested, bare, indented), and the secrets."""
    secrets = []
    lines = []
    for _index in range(draw(st.integers(1, 12))):
        secret = draw(_LEAKY)
        form = draw(st.sampled_from(_LINE_FORMS))
        if "{secret}" in form:
            secrets.append(secret)
        line = form.format(name=draw(st.sampled_from(["default", "prod", "work"])), secret=secret,
                           digits=draw(st.text("0123456789", min_size=16, max_size=16)))
        lines.append(draw(st.sampled_from(["", "", "    ", "\t"])) + line)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(lines).encode(), secrets


def _outcomes(data, profile):
    """Every message and result field the plans give for these bytes, as one text."""
    calls = (lambda: plans.read_profile(data, "F", profile),
             lambda: plans.plan_present(data, "F", profile, KEY, SECRET, [OLD_KEY]),
             lambda: plans.plan_absent(data, "F", profile, KEY),
             lambda: config.plan_config_present(data, "C", profile, "us-east-1"),
             lambda: config.plan_config_absent(data, "C", profile, "us-east-1"))
    seen = []
    for call in calls:
        try:
            outcome = call()
        except errors.CredentialsFileError as exc:
            seen.append(str(exc))
            continue
        if isinstance(outcome, tuple):
            seen.append(repr(outcome))
        else:
            seen.append(repr((outcome.key_before, outcome.key_after, outcome.msg, outcome.diff("F"))))
    return "\n".join(seen).lower()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed_files(), st.sampled_from(["default", "prod", "work", "new"]))
def test_property_no_message_or_result_holds_a_secret_from_the_file(generated, profile):
    data, secrets = generated
    text = _outcomes(data, profile)
    for secret in secrets:
        # No fragment either (configparser lower-cases setting names, so compare lower-cased).
        fragments = {secret[i:i + 12].lower() for i in range(len(secret) - 11)}
        assert not [fragment for fragment in fragments if fragment in text], "a secret from the file was echoed"
