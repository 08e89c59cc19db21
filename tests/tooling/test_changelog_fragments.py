# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every changelog fragment in antsibull-changelog's format: known sections, one line per entry."""

from __future__ import annotations

import pathlib

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((REPO / "changelogs" / "config.yaml").read_text(encoding="utf-8"))
SECTIONS = {name for name, _title in CONFIG["sections"]} | {CONFIG["trivial_section_name"], CONFIG["prelude_section_name"]}
FRAGMENTS = sorted((REPO / "changelogs" / "fragments").glob("*.y*ml"))


def test_there_are_fragments():
    assert FRAGMENTS


@pytest.mark.parametrize("path", FRAGMENTS, ids=lambda path: path.name)
def test_fragment_has_known_sections_and_one_line_entries(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n"), "a fragment starts with the YAML document marker"
    data = yaml.safe_load(text)
    assert isinstance(data, dict) and data, "a fragment maps sections to entries"
    assert set(data) <= SECTIONS, f"unknown sections {sorted(set(data) - SECTIONS)}"
    entry_lines = [line for line in text.splitlines()[1:] if not line.endswith(":")]
    for section, entries in data.items():
        if section == CONFIG["prelude_section_name"]:
            assert isinstance(entries, str)
            continue
        assert isinstance(entries, list) and entries, f"{section}: a list of entries"
        for entry in entries:
            assert isinstance(entry, str) and entry.strip() and "\n" not in entry
    # One entry, one line of the file: no folded (>-) or continued scalars.
    assert all(line.startswith("  - ") and not line.rstrip().endswith((">-", "|", ">")) for line in entry_lines), entry_lines
    assert len(entry_lines) == sum(len(entries) for entries in data.values() if isinstance(entries, list))
