# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edits of one section of an IniDocument, as new line lists, and their verification.

Appending and removing a section are inverse by design (one blank line goes with the section), so
adding a profile and removing it again gives back the original bytes. Every edit is re-read as
botocore would read it and must change exactly the intended settings, or it is refused.
"""

from __future__ import annotations

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.errors import ParseError
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.ini_document import (
    IniDocument,
    indent_of,
    styled_like,
    with_value,
)


def _is_blank(line):
    return not line[0].strip()


def _finish(doc, lines):
    """Give every line but the last an ending; keep a missing final newline missing."""
    for line in lines[:-1]:
        if not line[1]:
            line[1] = doc.newline
    if lines and not doc.has_final_newline:
        lines[-1][1] = ""
    return lines


def appended(doc, block):
    """The lines with a new section appended after one blank line, in ``aws configure``'s form."""
    lines = [list(line) for line in doc.lines]
    if lines:
        lines.append(["", doc.newline])
    lines.extend([text, doc.newline] for text in block)
    return _finish(doc, lines)


def without(doc, section):
    """The lines without the section (header to last setting) and one blank line beside it,
    so that appending a section and removing it again gives back the original bytes."""
    start, end = section.header, section.end
    if start > 0 and _is_blank(doc.lines[start - 1]):
        start -= 1
    elif end < len(doc.lines) and _is_blank(doc.lines[end]):
        end += 1
    lines = [list(line) for line in doc.lines[:start] + doc.lines[end:]]
    return _finish(doc, lines)


def _next_header_indent(doc, section):
    # The next header stays a header only if it is not indented deeper than our new settings.
    position = doc.sections.index(section)
    if position + 1 < len(doc.sections):
        return indent_of(doc.lines[doc.sections[position + 1].header][0])
    return ""


def _inserted(doc, section, values, present, missing):
    """(before, after): new setting lines to insert before or after given line numbers."""
    if present:
        # A missing setting goes next to a present one, before it if it comes first in values.
        anchor = present[0]
        order = list(values)
        first = [name for name in missing if order.index(name) < order.index(anchor.name)]
        last = [name for name in missing if name not in first]
        model = doc.lines[anchor.line][0]
        return ({anchor.line: [styled_like(model, name, values[name]) for name in first]},
                {anchor.line: [styled_like(model, name, values[name]) for name in last]})
    if section.options:
        # Styled like the section's first setting and placed before it: a line indented less
        # than the settings after it would turn them into continuation lines of ours.
        model = doc.lines[section.options[0].line][0]
        return {section.options[0].line: [styled_like(model, name, values[name]) for name in missing]}, {}
    indent = _next_header_indent(doc, section)
    return {}, {section.header: ["%s%s = %s" % (indent, name, values[name]) for name in missing]}


def with_settings(doc, section, values, drop=()):
    """The lines with ``values`` set in the section in place (spacing kept, new settings styled
    like their neighbour) and the ``drop`` settings removed with their continuation lines."""
    replace = {}
    removed = set()
    for option in section.options:
        if option.name in drop:
            removed.add(option.line)
        if option.name in drop or option.name in values:
            removed.update(option.continuations)
        if option.name in values:
            replace[option.line] = with_value(doc.lines[option.line][0], values[option.name])
    present = [option for option in section.options if option.name in values and option.name not in drop]
    missing = [name for name in values if section.option(name) is None]
    before, after = _inserted(doc, section, values, present, missing) if missing else ({}, {})
    lines = []
    for index, line in enumerate(doc.lines):
        lines.extend([text, doc.newline] for text in before.get(index, ()))
        if index in replace:
            lines.append([replace[index], line[1]])
        elif index not in removed:
            lines.append(list(line))
        lines.extend([text, doc.newline] for text in after.get(index, ()))
    return _finish(doc, lines)


def verified(old, new_lines, expected):
    """Re-read the edited lines as botocore would and insist on exactly the expected settings."""
    try:
        new = IniDocument(new_lines, old.label)
    except ParseError:
        new = None
    if new is None or new.settings() != expected:
        raise ParseError(
            "%s: the change cannot be made without altering how the rest of the file is read "
            "(unusual indentation?); it was left untouched" % old.label)
    return new
