# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The document reads a file as botocore does on every Python, and masks what must not be shown."""

from __future__ import annotations

import pytest

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import aws_settings
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import errors
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import ini_document as ini

KEY_ID = "AKIA5555555555555555"
HIDDEN = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize("header", ["[default] # note [x]", "[default]]", "[prod] ; see [docs]"])
def test_a_header_that_pythons_name_differently_is_refused(header):
    # Python 3.9's configparser names "[default] # note [x]" "default", 3.10+ "default] # note [x".
    data = ("[a]\nx = 1\n%s\naws_access_key_id = %s\n" % (header, KEY_ID)).encode()
    with pytest.raises(errors.ParseError) as caught:
        ini.IniDocument.from_bytes(data, "F")
    assert str(caught.value) == (
        "F: the section header on line 3 holds more than one ']' (a trailing comment?), which Python 3.9 and "
        "Python 3.10+ read as different profile names; put the comment on a line of its own")


def test_a_header_with_a_trailing_comment_every_python_reads_alike_is_kept():
    doc = ini.IniDocument.from_bytes(b"[default] # note\nregion = x\n", "F")
    assert doc.profiles() == ["default"] and doc.text() == "[default] # note\nregion = x\n"


def test_the_line_ending_is_the_files_majority_the_first_on_a_tie():
    assert ini.IniDocument.from_bytes(b"[a]\nx = 1\r\ny = 2\r\n", "F").newline == "\r\n"
    assert ini.IniDocument.from_bytes(b"[a]\r\nx = 1\ny = 2", "F").newline == "\r\n"
    assert ini.IniDocument.from_bytes(b"[a]", "F").newline == "\n"


def test_masked_text_hides_values_that_are_not_key_ids_and_stray_continuation_lines():
    data = ("[a]\naws_access_key_id =\n    aws_secret_access_key = {s}\n"
            "[b]\naws_access_key_id = {s}\n"
            "[c]\nregion = eu-west-1\n  {s}\ns3 =\n  addressing_style = path\n  aws_session_token = {s}\n"
            "[d]\naws_access_key_id = {k}\n").format(s=HIDDEN, k=KEY_ID)
    masked = ini.IniDocument.from_bytes(data.encode(), "F").masked_text()
    assert HIDDEN not in masked and masked.count(aws_settings.MASK) == 4
    assert "  addressing_style = path\n" in masked and "aws_access_key_id = %s\n" % KEY_ID in masked
    assert len(masked.splitlines()) == len(data.splitlines())
