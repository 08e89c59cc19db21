# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mapping record: tag values IAM accepts, placement ids that never merge, a lossless round trip.

``canary_mapping.py`` is standard library only (it is packaged verbatim into the alert Lambda), so it
is imported by its bare name, as on Lambda (pytest.ini puts plugins/module_utils/_lambda_shared on the path)."""

from __future__ import annotations

import re

import canary_mapping as cm
from hypothesis import given
from hypothesis import strategies as st

# IAM's tag value rule: Unicode letters, digits, white space and _ . : / = + - @, at most 256 characters.
# The key rule is the same, at most 128 characters.
IAM_TAG_VALUE = re.compile(r"^[\w\s.:/=+\-@]*$", re.UNICODE)
IAM_TAG_LIMIT = 50

# A NUL cannot occur in a path, a host name or an INI profile name; placement_id uses it as its separator.
text = st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=300)


def test_sanitize_keeps_what_iam_allows():
    assert cm.sanitize_tag_value("/home/deploy/.aws/credentials") == "/home/deploy/.aws/credentials"
    assert cm.sanitize_tag_value("web03.example.com: ask ops@example.com, +44 = ok") == "web03.example.com: ask ops@example.com_ +44 = ok"
    assert cm.sanitize_tag_value("Zürich 東京") == "Zürich 東京"


def test_sanitize_replaces_the_rest_and_handles_none():
    assert cm.sanitize_tag_value("a,b;c$d'e\"f") == "a_b_c_d_e_f"
    assert cm.sanitize_tag_value(None) == ""
    assert cm.sanitize_tag_value(42) == "42"


def test_sanitize_cuts_at_256():
    assert cm.sanitize_tag_value("x" * 256) == "x" * 256
    assert cm.sanitize_tag_value("x" * 257) == "x" * 256
    assert len(cm.sanitize_tag_value("é" * 1000)) == 256


@given(text)
def test_sanitized_values_are_valid_iam_tag_values(value):
    clean = cm.sanitize_tag_value(value)
    assert len(clean) <= 256
    assert IAM_TAG_VALUE.match(clean), clean
    assert cm.sanitize_tag_value(clean) == clean


def test_placements_that_sanitise_alike_keep_distinct_ids():
    a = ("web03", "/home/dev,ops/.aws/credentials", "prod")
    b = ("web03", "/home/dev_ops/.aws/credentials", "prod")
    assert cm.mapping_tags(*a)[cm.TAG_PATH] == cm.mapping_tags(*b)[cm.TAG_PATH]
    assert cm.placement_id(*a) != cm.placement_id(*b)
    long_a, long_b = "h" * 300 + "a", "h" * 300 + "b"
    assert cm.sanitize_tag_value(long_a) == cm.sanitize_tag_value(long_b)
    assert cm.placement_id(long_a, "/p", "x") != cm.placement_id(long_b, "/p", "x")


def test_placement_id_fields_do_not_run_together():
    assert cm.placement_id("web0", "3/p", "x") != cm.placement_id("web03", "/p", "x")
    assert cm.placement_id("h", "/p", "x") == cm.placement_id("h", "/p", "x")
    assert re.fullmatch(r"[0-9a-f]{20}", cm.placement_id("h", "/p", "x"))


@given(st.tuples(text, text, text), st.tuples(text, text, text))
def test_distinct_placements_have_distinct_ids(first, second):
    assert (cm.placement_id(*first) == cm.placement_id(*second)) == (first == second)


@given(host=text, path=text, profile=text, reminder=text, planted_by=text, generation=st.integers(1, 10**6))
def test_round_trip_through_iam_tag_list(host, path, profile, reminder, planted_by, generation):
    tags = cm.mapping_tags(host, path, profile, reminder, "2025-01-31T12:00:00Z", planted_by, generation)
    assert len(tags) <= IAM_TAG_LIMIT
    for key, value in tags.items():
        assert len(key) <= 128 and IAM_TAG_VALUE.match(key)
        assert len(value) <= 256 and IAM_TAG_VALUE.match(value), (key, value)
    as_iam_returns_them = [{"Key": key, "Value": value} for key, value in tags.items()]
    mapping = cm.mapping_from_tags(as_iam_returns_them)
    assert mapping == {
        "placement_id": cm.placement_id(host, path, profile),
        "host": cm.sanitize_tag_value(host),
        "path": cm.sanitize_tag_value(path),
        "profile": cm.sanitize_tag_value(profile),
        "reminder": cm.sanitize_tag_value(reminder),
        "planted_at": "2025-01-31T12:00:00Z",
        "planted_by": cm.sanitize_tag_value(planted_by),
        "generation": generation,
        "last_used_reported": "",
    }
    assert cm.mapping_from_tags(tags) == mapping


def test_unmanaged_users_have_no_mapping():
    assert cm.mapping_from_tags([]) is None
    assert cm.mapping_from_tags([{"Key": "team", "Value": "ops"}]) is None
    tags = cm.mapping_tags("h", "/p", "x")
    tags[cm.TAG_MANAGED] = "false"
    assert cm.mapping_from_tags(tags) is None
    assert not cm.is_managed(tags)


def test_optional_tags_are_left_out_when_empty_and_generation_tolerates_garbage():
    tags = cm.mapping_tags("h", "/p", "x")
    assert cm.TAG_REMINDER not in tags and cm.TAG_PLANTED_AT not in tags and cm.TAG_PLANTED_BY not in tags
    assert tags[cm.TAG_GENERATION] == "1"
    tags[cm.TAG_GENERATION] = "two"
    assert cm.mapping_from_tags(tags)["generation"] == 1
