# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The credentials-file merge keeps every byte it does not own, and botocore agrees with it.

Each result is read back by botocore itself (``raw_config_parse`` on a real file), the reader the
AWS CLI and every SDK on the host would use."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import stat
import tempfile

import pytest
from botocore.configloader import raw_config_parse
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

CF_FILE = pathlib.Path(__file__).resolve().parents[4] / "plugins" / "module_utils" / "credentials_file.py"
_spec = importlib.util.spec_from_file_location("credentials_file", CF_FILE)
cf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cf)

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


def botocore_reads(data):
    """What botocore reads from these bytes, through a real file as the AWS CLI would."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "credentials")
        with open(path, "wb") as handle:
            handle.write(data)
        return raw_config_parse(path)


def block(profile, key=KEY, secret=SECRET, newline="\n"):
    return newline.join(["[%s]" % profile, "aws_access_key_id = %s" % key, "aws_secret_access_key = %s" % secret]) + newline


# ------------------------------------------------------------------------------ present


@pytest.mark.parametrize("data", [None, b""])
def test_new_file_is_written_as_aws_configure_writes_it(data):
    plan = cf.plan_present(data, "F", "prod", KEY, SECRET)
    assert plan.changed and plan.key_before is None and plan.key_after == KEY
    assert plan.data == block("prod").encode()
    assert botocore_reads(plan.data) == {"prod": {"aws_access_key_id": KEY, "aws_secret_access_key": SECRET}}


def test_new_profile_is_appended_after_one_blank_line_leaving_the_rest():
    original = FOREIGN.encode()
    plan = cf.plan_present(original, "F", "prod", KEY, SECRET)
    assert plan.data == original + b"\n" + block("prod").encode()
    read = botocore_reads(plan.data)
    assert read["prod"] == {"aws_access_key_id": KEY, "aws_secret_access_key": SECRET}
    assert {k: v for k, v in read.items() if k != "prod"} == botocore_reads(original)
    assert read["work"]["s3"] == {"addressing_style": "path", "signature_version": "s3v4"}


def test_crlf_and_missing_final_newline_are_kept():
    original = FOREIGN.replace("\n", "\r\n").rstrip("\r\n").encode()
    plan = cf.plan_present(original, "F", "prod", KEY, SECRET)
    assert plan.data == original + b"\r\n\r\n" + block("prod", newline="\r\n").rstrip("\r\n").encode()
    assert not plan.data.endswith(b"\n")
    assert b"\n" not in plan.data.replace(b"\r\n", b"")
    assert cf.plan_absent(plan.data, "F", "prod", KEY).data == original


def test_same_key_and_secret_is_a_no_op():
    data = FOREIGN.encode() + b"\n" + block("prod").encode()
    plan = cf.plan_present(data, "F", "prod", KEY, SECRET)
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
    plan = cf.plan_present(original.encode(), "F", "prod", KEY, SECRET, [OLD_KEY])
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
    plan = cf.plan_present(data, "F", "prod", KEY, SECRET)
    assert plan.changed and plan.data == block("prod").encode()


def test_a_missing_secret_is_added_beside_the_key_in_its_style():
    plan = cf.plan_present(b"[prod]\n\taws_access_key_id: %s" % OLD_KEY.encode(), "F", "prod", KEY, SECRET, [OLD_KEY])
    assert plan.data == ("[prod]\n\taws_access_key_id: %s\n\taws_secret_access_key: %s" % (KEY, SECRET)).encode()


def test_an_empty_profile_is_filled_in_and_a_placeholder_value_is_spaced():
    plan = cf.plan_present(b"[prod]\n# to do\n[x]\na=1\n", "F", "prod", KEY, SECRET)
    assert plan.data == b"[prod]\naws_access_key_id = %s\naws_secret_access_key = %s\n# to do\n[x]\na=1\n" % (
        KEY.encode(), SECRET.encode())
    plan = cf.plan_present(b"[prod]\naws_secret_access_key =\n", "F", "prod", KEY, SECRET)
    assert plan.data == b"[prod]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (KEY.encode(), SECRET.encode())


def test_a_foreign_key_is_refused_naming_file_profile_and_key():
    with pytest.raises(cf.RefusedError) as caught:
        cf.plan_present(FOREIGN.encode(), "/home/u/.aws/credentials", "default", KEY, SECRET, [OLD_KEY])
    message = str(caught.value)
    assert "refusing to overwrite profile default in /home/u/.aws/credentials" in message
    assert FOREIGN_KEY in message and "not a canary key this play knows" in message
    assert FOREIGN_SECRET not in message


def test_a_profile_with_settings_but_no_key_is_refused():
    with pytest.raises(cf.RefusedError, match="holds settings but no access key id"):
        cf.plan_present(b"[prod]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n", "F", "prod", KEY, SECRET)


@pytest.mark.parametrize("profile", ["DEFAULT", "", "a b", "a]b", "x\n[evil]", "#x", "é"])
def test_unusable_profile_names_are_refused(profile):
    with pytest.raises(cf.RefusedError, match="profile name"):
        cf.plan_present(b"", "F", profile, KEY, SECRET)


@pytest.mark.parametrize("value", ["", "AKIA X", "AKIA\n[evil]", "AKIA\r", "x" * 1025])
def test_values_that_do_not_fit_one_token_are_refused_without_echoing_them(value):
    with pytest.raises(cf.RefusedError) as caught:
        cf.plan_present(b"", "F", "prod", KEY, value)
    assert "secret_access_key must be" in str(caught.value)
    with pytest.raises(cf.RefusedError):
        cf.plan_present(b"", "F", "prod", value, SECRET)


def test_default_section_is_validated_and_kept():
    original = b"[DEFAULT]\nregion = eu-west-1\n\n[prod]\naws_access_key_id = %s\naws_secret_access_key = x\n" % OLD_KEY.encode()
    plan = cf.plan_present(original, "F", "prod", KEY, SECRET, [OLD_KEY])
    assert plan.data == original.replace(OLD_KEY.encode(), KEY.encode()).replace(b"= x\n", b"= %s\n" % SECRET.encode())
    assert botocore_reads(plan.data)["prod"]["region"] == "eu-west-1"


# ------------------------------------------------------------------------------ absent / query


def test_absent_removes_only_our_key_and_restores_the_original():
    original = FOREIGN.encode()
    planted = cf.plan_present(original, "F", "prod", KEY, SECRET).data
    plan = cf.plan_absent(planted, "F", "prod", KEY)
    assert plan.changed and plan.key_before == KEY and plan.key_after is None
    assert plan.data == original


def test_absent_leaves_a_foreign_profile_alone_with_a_reason():
    plan = cf.plan_absent(FOREIGN.encode(), "F", "default", KEY)
    assert not plan.changed and plan.key_before == FOREIGN_KEY
    assert "left alone" in plan.msg and FOREIGN_KEY in plan.msg


def test_absent_of_a_missing_profile_or_file_is_unchanged():
    assert not cf.plan_absent(FOREIGN.encode(), "F", "prod", KEY).changed
    assert not cf.plan_absent(None, "F", "prod", KEY).changed


def test_removing_a_middle_section_takes_one_separating_blank_line():
    original = b"[a]\nx=1\n\n[prod]\naws_access_key_id = %s\n# note\n\n[c]\nz=3\n" % KEY.encode()
    assert cf.plan_absent(original, "F", "prod", KEY).data == b"[a]\nx=1\n# note\n\n[c]\nz=3\n"
    first = b"[prod]\naws_access_key_id = %s\n\n[c]\nz=3" % KEY.encode()
    assert cf.plan_absent(first, "F", "prod", KEY).data == b"[c]\nz=3"


def test_a_removal_that_would_change_how_the_rest_parses_is_refused():
    # "  [c]" is a header only because the option above it is indented deeper; with [prod] gone it
    # would become a continuation of x and section c would vanish for botocore.
    original = b"[a]\nx = 1\n[prod]\n    aws_access_key_id = %s\n  [c]\n  z = 3\n" % KEY.encode()
    assert sorted(botocore_reads(original)) == ["a", "c", "prod"]
    with pytest.raises(cf.ParseError, match="left untouched"):
        cf.plan_absent(original, "F", "prod", KEY)


def test_query_returns_key_ids_and_names_only():
    key_id, profiles = cf.read_profile(FOREIGN.encode(), "F", "default")
    assert key_id == FOREIGN_KEY and profiles == ["default", "work"]
    assert cf.read_profile(FOREIGN.encode(), "F", "prod") == (None, ["default", "work"])
    assert cf.read_profile(None, "F", "prod") == (None, [])


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
    for call in (lambda: cf.read_profile(data, "F", "a"),
                 lambda: cf.plan_present(data, "F", "a", KEY, SECRET, ["x"]),
                 lambda: cf.plan_absent(data, "F", "a", KEY)):
        with pytest.raises(cf.ParseError) as caught:
            call()
        assert reason in str(caught.value) and "FAKEKYleak" not in str(caught.value)


# ------------------------------------------------------------------------------ diff masking


def test_masked_text_hides_every_secret_and_keeps_the_rest():
    data = FOREIGN + "[t]\naws_session_token = FAKEKYtokenpart1\n    FAKEKYtokenpart2\n"
    doc = cf.IniDocument.from_bytes(data.encode(), "F")
    masked = doc.masked_text()
    assert "FAKEKY" not in masked
    assert masked.count(cf.MASK) == 4
    assert FOREIGN_KEY in masked and "aws_secret_access_key   =   ********   \n" in masked
    assert len(masked.splitlines()) == len(data.splitlines())


def test_plan_diff_masks_old_and_new_secrets():
    plan = cf.plan_present(FOREIGN.encode(), "F", "prod", KEY, SECRET)
    diff = plan.diff("F")
    assert diff["before_header"] == diff["after_header"] == "F"
    assert SECRET not in repr(diff) and FOREIGN_SECRET not in repr(diff) and KEY in diff["after"]


# ------------------------------------------------------------------------------ config file


def test_config_section_is_added_and_removed_exactly():
    original = b"[default]\r\nregion = eu-west-1\r\noutput = json"
    plan = cf.plan_config_present(original, "C", "prod", "us-east-1")
    assert plan.data == original + b"\r\n\r\n[profile prod]\r\nregion = us-east-1"
    assert botocore_reads(plan.data)["profile prod"] == {"region": "us-east-1"}
    assert not cf.plan_config_present(plan.data, "C", "prod", "us-east-1").changed
    assert cf.plan_config_absent(plan.data, "C", "prod", "us-east-1").data == original


def test_config_default_profile_uses_the_default_section():
    plan = cf.plan_config_present(None, "C", "default", "us-east-1")
    assert plan.data == b"[default]\nregion = us-east-1\n"


def test_config_sections_with_other_content_are_left_alone():
    sso = b'[profile "prod"]\nsso_session = corp\nregion = eu-west-1\n'
    plan = cf.plan_config_present(sso, "C", "prod", "us-east-1")
    assert not plan.changed and plan.left_alone and "left alone" in plan.msg
    assert not cf.plan_config_present(b"[profile prod]\nregion = us-east-1\n", "C", "prod", "us-east-1").left_alone
    plan = cf.plan_config_absent(sso, "C", "prod", "eu-west-1")
    assert not plan.changed and "left alone" in plan.msg
    commented = b"[profile prod]\n# mine\nregion = us-east-1\n"
    assert not cf.plan_config_absent(commented, "C", "prod", "us-east-1").changed
    assert not cf.plan_config_absent(b"[profile prod]\nregion = eu-west-1\n", "C", "prod", "us-east-1").changed


def test_config_empty_section_gets_the_region():
    plan = cf.plan_config_present(b"[profile prod]\n[x]\na=1\n", "C", "prod", "us-east-1")
    assert plan.data == b"[profile prod]\nregion = us-east-1\n[x]\na=1\n"


# ------------------------------------------------------------------------------ files on disk


@pytest.fixture(name="home")
def fixture_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return home


def _write(target_path, home, data, backup=False):
    real = cf.resolve_path(str(target_path), str(home))
    with cf.TargetFile(real, os.getuid(), os.getgid()) as target:
        target.read()
        return target.write(data, backup=backup)


def test_new_file_and_directory_get_private_modes(home):
    old_umask = os.umask(0)
    try:
        _write(home / ".aws" / "credentials", home, b"[a]\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((home / ".aws").stat().st_mode) == 0o700
    assert stat.S_IMODE((home / ".aws" / "credentials").stat().st_mode) == 0o600
    assert (home / ".aws" / "credentials").read_bytes() == b"[a]\n"
    assert os.listdir(home / ".aws") == ["credentials"]


def test_existing_file_keeps_its_mode_and_backup_keeps_the_old_bytes(home):
    path = home / "credentials"
    path.write_bytes(b"[old]\n")
    path.chmod(0o640)
    backup = _write(path, home, b"[new]\n", backup=True)
    assert path.read_bytes() == b"[new]\n" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert backup.startswith(str(path) + ".") and backup.endswith("~")
    assert pathlib.Path(backup).read_bytes() == b"[old]\n"
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o640


def test_symlink_inside_home_is_followed_and_kept(home):
    (home / "dotfiles").mkdir()
    (home / "dotfiles" / "aws-credentials").write_bytes(b"[a]\n")
    (home / ".aws").mkdir()
    link = home / ".aws" / "credentials"
    link.symlink_to(home / "dotfiles" / "aws-credentials")
    _write(link, home, b"[b]\n")
    assert link.is_symlink() and (home / "dotfiles" / "aws-credentials").read_bytes() == b"[b]\n"


def test_symlink_out_of_home_and_directories_are_refused(home, tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"[a]\n")
    (home / "creds").symlink_to(outside)
    with pytest.raises(cf.RefusedError, match="outside the owner's home"):
        cf.resolve_path(str(home / "creds"), str(home))
    (home / "dir").mkdir()
    with pytest.raises(cf.RefusedError, match="is a directory"):
        cf.resolve_path(str(home / "dir"), str(home))
    with pytest.raises(cf.RefusedError, match="not an absolute path"):
        cf.resolve_path("creds", str(home))
    assert outside.read_bytes() == b"[a]\n"


def test_a_fifo_is_refused_without_hanging(home):
    os.mkfifo(home / "credentials")
    with cf.TargetFile(str(home / "credentials"), os.getuid(), os.getgid()) as target:
        with pytest.raises(cf.RefusedError, match="not a regular file"):
            target.read()


def test_a_hard_linked_file_is_refused(home):
    (home / "credentials").write_bytes(b"[a]\n")
    os.link(home / "credentials", home / "other")
    with cf.TargetFile(str(home / "credentials"), os.getuid(), os.getgid()) as target:
        with pytest.raises(cf.RefusedError, match="2 hard links"):
            target.read()


def test_a_symlink_swapped_in_after_the_checks_is_refused(home, tmp_path):
    (home / ".aws").mkdir()
    real = cf.resolve_path(str(home / ".aws" / "credentials"), str(home))
    (home / ".aws").rename(home / "aws-moved")
    (home / ".aws").symlink_to(tmp_path)
    with cf.TargetFile(real, os.getuid(), os.getgid()) as target:
        with pytest.raises(cf.RefusedError, match="replaced by a symlink"):
            target.read()
    assert not (tmp_path / "credentials").exists()


def test_a_concurrent_change_is_not_overwritten(home):
    path = home / "credentials"
    path.write_bytes(b"[a]\n")
    with cf.TargetFile(str(path), os.getuid(), os.getgid()) as target:
        target.read()
        path.write_bytes(b"[a]\n[b]\n")
        with pytest.raises(cf.RefusedError, match="changed while"):
            target.write(b"[c]\n")
    assert path.read_bytes() == b"[a]\n[b]\n"
    assert os.listdir(home) == ["credentials"]


def test_missing_directories_are_read_as_a_missing_file_and_only_the_last_is_created(home):
    with cf.TargetFile(str(home / "no" / "such" / "credentials"), os.getuid(), os.getgid()) as target:
        assert target.read() is None and not target.exists
        with pytest.raises(cf.RefusedError, match="does not exist"):
            target.write(b"[a]\n")


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
    elif name in cf.SECRET_OPTIONS:
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
        lines.append(indent + "   " + draw(_SECRET_VALUE if name in cf.SECRET_OPTIONS else _PLAIN.filter(bool)))
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
def test_property_add_then_remove_restores_every_byte(generated, profile):
    original, names = generated
    assume(profile not in names)
    before = botocore_reads(original)
    plan = cf.plan_present(original, "F", profile, KEY, SECRET)
    assert plan.data.startswith(original)
    assert plan.data.endswith(b"\n") == (original.endswith(b"\n") or not original)
    read = botocore_reads(plan.data)
    assert read[profile] == {"aws_access_key_id": KEY, "aws_secret_access_key": SECRET}
    assert _others(read, profile) == before
    assert not cf.plan_present(plan.data, "F", profile, KEY, SECRET).changed
    assert cf.plan_absent(plan.data, "F", profile, KEY).data == original


def _lines(data):
    return cf.split_lines(data.decode("utf-8"))


@PROPERTY
@given(credentials_files(), st.data())
def test_property_update_touches_only_the_profile(generated, data):
    original, names = generated
    assume(names)
    profile = data.draw(st.sampled_from(names))
    before = botocore_reads(original)
    doc = cf.IniDocument.from_bytes(original, "F")
    section = doc.section(profile)
    current = before[profile].get("aws_access_key_id") or None
    own_values = any(option.value for option in section.options)
    if current is None and own_values:
        with pytest.raises(cf.RefusedError):
            cf.plan_present(original, "F", profile, KEY, SECRET, [OLD_KEY])
        return
    if current is not None:
        with pytest.raises(cf.RefusedError, match=current):
            cf.plan_present(original, "F", profile, KEY, SECRET, [OLD_KEY])
    plan = cf.plan_present(original, "F", profile, KEY, SECRET, [current] if current else [])
    read = botocore_reads(plan.data)
    expected = {k: v for k, v in before[profile].items() if k not in cf.SESSION_OPTIONS}
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
def test_property_remove_takes_the_section_and_one_blank_line_only(generated, data):
    original, names = generated
    assume(names)
    profile = data.draw(st.sampled_from(names))
    before = botocore_reads(original)
    current = before[profile].get("aws_access_key_id") or None
    doc = cf.IniDocument.from_bytes(original, "F")
    section = doc.section(profile)
    try:
        plan = cf.plan_absent(original, "F", profile, current or KEY)
    except cf.ParseError:
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
    if start > 0 and not lines[start - 1][0].strip():
        candidates = [(start - 1, end)]
    elif end < len(lines) and not lines[end][0].strip():
        candidates = [(start, end + 1)]
    expected = []
    for first, last in candidates:
        text = "".join(t + e for t, e in lines[:first] + lines[last:])
        if not original.endswith((b"\n", b"\r")) and text:
            text = text[:-len(cf.split_lines(text)[-1][1]) or None]
        expected.append(text.encode())
    assert plan.data in expected


@PROPERTY
@given(credentials_files())
def test_property_masked_text_holds_no_secret(generated):
    original, _names = generated
    masked = cf.IniDocument.from_bytes(original, "F").masked_text()
    assert "FAKEKY" not in masked
    assert len(cf.split_lines(masked)) == len(_lines(original))
