# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plans for the credentials file keep every byte they do not own, and botocore agrees with them.

Each result is read back by botocore itself (``raw_config_parse`` on a real file), the reader the
AWS CLI and every SDK on the host would use."""

from __future__ import annotations

import os
import tempfile

import pytest
from botocore.configloader import raw_config_parse

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import aws_settings
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import errors
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import ini_document as ini
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import credentials_plans as plans


KEY = "AKIA1111111111111111"
SECRET = "FAKEKYnew0000000000000000000000000000000"
OLD_KEY = "AKIA2222222222222222"
OLD_SECRET = "FAKEKYold1111111111111111111111111111111"
FOREIGN_KEY = "AKIA9999999999999999"
FOREIGN_SECRET = "FAKEKYforeign999999999999999999999999999"

FOREIGN = (
    "# managed by hand\n"
    "[default]\n"
    "aws_access_key_id=%s\n"
    "aws_secret_access_key   =   %s   \n"
    "\n"
    "; work account\n"
    "[work]\n"
    "aws_access_key_id : AKIA3333333333333333\n"
    "aws_secret_access_key : FAKEKYwork333333333333333333333333333333\n"
    "s3 =\n"
    "    addressing_style = path\n"
    "    signature_version = s3v4\n"
) % (FOREIGN_KEY, FOREIGN_SECRET)


def block(profile, key=KEY, secret=SECRET, newline="\n"):
    return newline.join(["[%s]" % profile, "aws_access_key_id = %s" % key, "aws_secret_access_key = %s" % secret]) + newline


# ------------------------------------------------------------------------------ present


@pytest.mark.parametrize("data", [None, b""])
def test_new_file_is_written_as_aws_configure_writes_it(botocore_reads, data):
    plan = plans.plan_present(data, "F", "prod", KEY, SECRET)
    assert plan.changed and plan.key_before is None and plan.key_after == KEY
    assert plan.data == block("prod").encode()
    assert botocore_reads(plan.data) == {"prod": {"aws_access_key_id": KEY, "aws_secret_access_key": SECRET}}


def test_new_profile_is_appended_after_one_blank_line_leaving_the_rest(botocore_reads):
    original = FOREIGN.encode()
    plan = plans.plan_present(original, "F", "prod", KEY, SECRET)
    assert plan.data == original + b"\n" + block("prod").encode()
    read = botocore_reads(plan.data)
    assert read["prod"] == {"aws_access_key_id": KEY, "aws_secret_access_key": SECRET}
    assert {k: v for k, v in read.items() if k != "prod"} == botocore_reads(original)
    assert read["work"]["s3"] == {"addressing_style": "path", "signature_version": "s3v4"}


def test_crlf_is_kept_and_a_missing_final_newline_added_as_aws_configure_does():
    original = FOREIGN.replace("\n", "\r\n").rstrip("\r\n").encode()
    plan = plans.plan_present(original, "F", "prod", KEY, SECRET)
    assert plan.data == original + b"\r\n\r\n" + block("prod", newline="\r\n").encode()
    assert b"\n" not in plan.data.replace(b"\r\n", b"")
    assert plans.plan_absent(plan.data, "F", "prod", KEY).data == original + b"\r\n"


def test_a_file_aws_configure_wrote_gets_its_form_and_a_hand_written_one_its_own(tmp_path):
    # What `aws configure` (AWS CLI v2, in .venv) writes: sections one after another, " = ", a final newline.
    configured = b"[default]\naws_access_key_id = AKIA1111111111111111\naws_secret_access_key = x\n"
    plan = plans.plan_present(configured, "F", "prod", KEY, SECRET)
    assert plan.data == configured + block("prod").encode()
    assert plans.plan_absent(plan.data, "F", "prod", KEY).data == configured
    by_hand = b"[default]\naws_access_key_id=AKIA1111111111111111\naws_secret_access_key=x\n\n# work\n[work]\nregion=eu-west-1\n"
    plan = plans.plan_present(by_hand, "F", "prod", KEY, SECRET)
    assert plan.data == by_hand + b"\n" + block("prod").encode()
    assert plans.plan_absent(plan.data, "F", "prod", KEY).data == by_hand


def test_same_key_and_secret_is_a_no_op():
    data = FOREIGN.encode() + b"\n" + block("prod").encode()
    plan = plans.plan_present(data, "F", "prod", KEY, SECRET)
    assert not plan.changed and plan.key_before == plan.key_after == KEY


def test_update_in_place_keeps_spacing_comments_and_other_settings_and_drops_the_token():
    original = (
        "[prod]\n"
        "# planted by the canary play\n"
        "  aws_access_key_id   =   %s   \n"
        "region = eu-west-1\n"
        "aws_session_token = FwoGZXIvYXdzEXAMPLETOKEN\n"
        "aws_secret_access_key=%s\n"
        "[other]\n"
        "x = 1\n"
    ) % (OLD_KEY, OLD_SECRET)
    plan = plans.plan_present(original.encode(), "F", "prod", KEY, SECRET, [OLD_KEY])
    assert plan.key_before == OLD_KEY and plan.key_after == KEY
    assert plan.data.decode() == (
        "[prod]\n"
        "# planted by the canary play\n"
        "  aws_access_key_id   =   %s   \n"
        "region = eu-west-1\n"
        "aws_secret_access_key=%s\n"
        "[other]\n"
        "x = 1\n"
    ) % (KEY, SECRET)


def test_same_key_new_secret_is_an_update():
    data = block("prod", secret=OLD_SECRET).encode()
    plan = plans.plan_present(data, "F", "prod", KEY, SECRET)
    assert plan.changed and plan.data == block("prod").encode()


def test_a_missing_secret_is_added_beside_the_key_in_its_style():
    plan = plans.plan_present(b"[prod]\n\taws_access_key_id: %s" % OLD_KEY.encode(), "F", "prod", KEY, SECRET, [OLD_KEY])
    assert plan.data == ("[prod]\n\taws_access_key_id: %s\n\taws_secret_access_key: %s" % (KEY, SECRET)).encode()


def test_an_empty_profile_is_filled_in_and_a_placeholder_value_is_spaced():
    plan = plans.plan_present(b"[prod]\n# to do\n[x]\na=1\n", "F", "prod", KEY, SECRET)
    assert plan.data == b"[prod]\naws_access_key_id = %s\naws_secret_access_key = %s\n# to do\n[x]\na=1\n" % (
        KEY.encode(), SECRET.encode())
    plan = plans.plan_present(b"[prod]\naws_secret_access_key =\n", "F", "prod", KEY, SECRET)
    assert plan.data == b"[prod]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (KEY.encode(), SECRET.encode())


def test_a_foreign_key_is_refused_naming_file_profile_and_key():
    with pytest.raises(errors.RefusedError) as caught:
        plans.plan_present(FOREIGN.encode(), "/home/u/.aws/credentials", "default", KEY, SECRET, [OLD_KEY])
    message = str(caught.value)
    assert "refusing to overwrite profile default in /home/u/.aws/credentials" in message
    assert FOREIGN_KEY in message and "not a canary key this play knows" in message
    assert FOREIGN_SECRET not in message


def test_a_profile_with_settings_but_no_key_is_refused():
    with pytest.raises(errors.RefusedError, match="holds settings but no access key id"):
        plans.plan_present(b"[prod]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n", "F", "prod", KEY, SECRET)


@pytest.mark.parametrize("profile", ["DEFAULT", "", "a b", "a]b", "x\n[evil]", "#x", "é"])
def test_unusable_profile_names_are_refused(profile):
    with pytest.raises(errors.RefusedError, match="profile name"):
        plans.plan_present(b"", "F", profile, KEY, SECRET)


@pytest.mark.parametrize("value", ["", "AKIA X", "AKIA\n[evil]", "AKIA\r", "x" * 1025])
def test_values_that_do_not_fit_one_token_are_refused_without_echoing_them(value):
    with pytest.raises(errors.RefusedError) as caught:
        plans.plan_present(b"", "F", "prod", KEY, value)
    assert "secret_access_key must be" in str(caught.value)
    with pytest.raises(errors.RefusedError):
        plans.plan_present(b"", "F", "prod", value, SECRET)


# ------------------------------------------------------------------------------ absent / query


def test_absent_removes_only_our_key_and_restores_the_original():
    original = FOREIGN.encode()
    planted = plans.plan_present(original, "F", "prod", KEY, SECRET).data
    plan = plans.plan_absent(planted, "F", "prod", KEY)
    assert plan.changed and plan.key_before == KEY and plan.key_after is None
    assert plan.data == original


def test_absent_leaves_a_foreign_profile_alone_with_a_reason():
    plan = plans.plan_absent(FOREIGN.encode(), "F", "default", KEY)
    assert not plan.changed and plan.key_before == FOREIGN_KEY
    assert "left alone" in plan.msg and FOREIGN_KEY in plan.msg


def test_absent_of_a_missing_profile_or_file_is_unchanged():
    assert not plans.plan_absent(FOREIGN.encode(), "F", "prod", KEY).changed
    assert not plans.plan_absent(None, "F", "prod", KEY).changed


def test_removing_a_middle_section_takes_one_separating_blank_line():
    original = b"[a]\nx=1\n\n[prod]\naws_access_key_id = %s\n# note\n\n[c]\nz=3\n" % KEY.encode()
    assert plans.plan_absent(original, "F", "prod", KEY).data == b"[a]\nx=1\n# note\n\n[c]\nz=3\n"
    first = b"[prod]\naws_access_key_id = %s\n\n[c]\nz=3" % KEY.encode()
    assert plans.plan_absent(first, "F", "prod", KEY).data == b"[c]\nz=3"


def test_a_removal_that_would_change_how_the_rest_parses_is_refused(botocore_reads):
    # "  [c]" is a header only because the option above it is indented deeper; with [prod] gone it
    # would become a continuation of x and section c would vanish for botocore.
    original = b"[a]\nx = 1\n[prod]\n    aws_access_key_id = %s\n  [c]\n  z = 3\n" % KEY.encode()
    assert sorted(botocore_reads(original)) == ["a", "c", "prod"]
    with pytest.raises(errors.ParseError, match="left untouched"):
        plans.plan_absent(original, "F", "prod", KEY)


def test_query_returns_key_ids_and_names_only():
    key_id, profiles = plans.read_profile(FOREIGN.encode(), "F", "default")
    assert key_id == FOREIGN_KEY and profiles == ["default", "work"]
    assert plans.read_profile(FOREIGN.encode(), "F", "prod") == (None, ["default", "work"])
    assert plans.read_profile(None, "F", "prod") == (None, [])


# ------------------------------------------------------------------------------ malformed files


@pytest.mark.parametrize("data, reason", [
    (b"aws_access_key_id = x\n[a]\n", "before the first [section]"),
    (b"[a]\nx=1\n[a]\n", "section [a] appears more than once"),
    (b"[a]\nx=1\nX = 2\n", "a setting appears more than once in section [a] (line 3)"),
    (b"[a]\naws_secret_access_key FAKEKYleak\n", "line 2 is neither"),
    (b"[a]\ns3 =\n    FAKEKYleak\n", "indented block under s3"),
    (b"\xef\xbb\xbf[a]\nx=1\n", "byte order mark"),
    (b"[a]\nx=\xff\n", "not UTF-8"),
])
def test_files_botocore_cannot_read_are_refused_with_a_reason_and_no_content(data, reason):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c")
        with open(path, "wb") as handle:
            handle.write(data)
        with pytest.raises(Exception):
            raw_config_parse(path)
    for call in (lambda: plans.read_profile(data, "F", "a"),
                 lambda: plans.plan_present(data, "F", "a", KEY, SECRET, ["x"]),
                 lambda: plans.plan_absent(data, "F", "a", KEY)):
        with pytest.raises(errors.ParseError) as caught:
            call()
        assert reason in str(caught.value) and "FAKEKYleak" not in str(caught.value)


# ------------------------------------------------------------------------------ diff masking


def test_masked_text_hides_every_secret_and_keeps_the_rest():
    data = FOREIGN + "[t]\naws_session_token = FAKEKYtokenpart1\n    FAKEKYtokenpart2\n"
    doc = ini.IniDocument.from_bytes(data.encode(), "F")
    masked = doc.masked_text()
    assert "FAKEKY" not in masked
    assert masked.count(aws_settings.MASK) == 4
    assert FOREIGN_KEY in masked and "aws_secret_access_key   =   ********   \n" in masked
    assert len(masked.splitlines()) == len(data.splitlines())


def test_plan_diff_masks_old_and_new_secrets():
    plan = plans.plan_present(FOREIGN.encode(), "F", "prod", KEY, SECRET)
    diff = plan.diff("F")
    assert diff["before_header"] == diff["after_header"] == "F"
    assert SECRET not in repr(diff) and FOREIGN_SECRET not in repr(diff) and KEY in diff["after"]


# ------------------------------------------------------------------------------ files other tools read differently


def test_a_default_section_with_settings_is_refused_everywhere():
    # Every profile inherits [DEFAULT]: botocore would read the planted profile with this token.
    original = b"[DEFAULT]\naws_session_token = FAKEKYtoken\n\n[prod]\naws_access_key_id = %s\n" % OLD_KEY.encode()
    for call in (lambda: plans.read_profile(original, "F", "prod"),
                 lambda: plans.plan_present(original, "F", "prod", KEY, SECRET, [OLD_KEY]),
                 lambda: plans.plan_present(original, "F", "other", KEY, SECRET),
                 lambda: plans.plan_absent(original, "F", "prod", OLD_KEY)):
        with pytest.raises(errors.RefusedError) as caught:
            call()
        message = str(caught.value)
        assert message.startswith("F has a [DEFAULT] section with settings (line 1)") and "FAKEKY" not in message


def test_an_empty_default_section_is_kept(botocore_reads):
    original = b"[DEFAULT]\n\n[prod]\naws_access_key_id = %s\n" % OLD_KEY.encode()
    plan = plans.plan_present(original, "F", "prod", KEY, SECRET, [OLD_KEY])
    assert plan.data == original.replace(OLD_KEY.encode(), KEY.encode()) + b"aws_secret_access_key = %s\n" % SECRET.encode()
    assert botocore_reads(plan.data)["prod"] == {"aws_access_key_id": KEY, "aws_secret_access_key": SECRET}


@pytest.mark.parametrize("original", [
    # "aws_access_key_id =" and an indented line: botocore reads a nested block holding the secret.
    "[prod]\naws_access_key_id =\n    aws_secret_access_key = %s\n" % FOREIGN_SECRET,
    "[prod]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (FOREIGN_SECRET, FOREIGN_KEY),
    "[prod]\naws_access_key_id = %s\n  %s\n" % (FOREIGN_KEY, FOREIGN_SECRET),
])
def test_a_value_that_is_not_an_access_key_id_is_never_echoed(original):
    data = original.encode()
    for call in (lambda: plans.read_profile(data, "F", "prod"),
                 lambda: plans.plan_present(data, "F", "prod", KEY, SECRET, [FOREIGN_KEY])):
        with pytest.raises(errors.RefusedError) as caught:
            call()
        assert "not an access key id" in str(caught.value) and FOREIGN_SECRET not in str(caught.value)
    absent = plans.plan_absent(data, "F", "prod", KEY)
    assert not absent.changed and absent.left_alone and absent.key_before is None
    assert "not an access key id" in absent.msg and FOREIGN_SECRET not in absent.msg
    beside = plans.plan_present(data, "F", "other", KEY, SECRET)
    assert beside.changed and FOREIGN_SECRET not in repr(beside.diff("F"))


def test_new_lines_take_the_files_majority_line_ending():
    original = b"[a]\nx = 1\r\ny = 2\r\n"
    plan = plans.plan_present(original, "F", "prod", KEY, SECRET)
    assert plan.data == original + block("prod", newline="\r\n").encode()
    assert plans.plan_absent(plan.data, "F", "prod", KEY).data == original
    update = plans.plan_present(b"[prod]\r\naws_access_key_id = %s\n\n" % OLD_KEY.encode(), "F", "prod", KEY, SECRET, [OLD_KEY])
    assert update.data == b"[prod]\r\naws_access_key_id = %s\naws_secret_access_key = %s\n\n" % (KEY.encode(), SECRET.encode())
