# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edits of one section of an IniDocument, as new line lists, and their verification.

A new section looks like the file's others: ``aws configure`` appends sections with no blank line
between them and ends the file with a newline; a file written by a person usually separates its
sections with a blank line, and then so does ours.  Appending and removing a section are inverse by
design (a separating blank line goes with the section only in a file whose other sections are
separated so), so adding a profile and removing it again gives back the original bytes (but for a
missing final newline, which ``aws configure`` would have added too).  Every edit is re-read as
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


def blank_separated(doc, excluding=None):
    """Whether the file's sections (but ``excluding``) are separated by blank lines, as people write them.

    ``aws configure`` writes none; a file with a single section says nothing, and is taken as its.
    """
    return any(section is not excluding and _blank_above(doc, section.header) for section in doc.sections)


def _blank_above(doc, header):
    """Whether a blank line comes before the header, past the comments that head its section."""
    index = header - 1
    while index >= 0 and doc.lines[index][0].lstrip()[:1] in ("#", ";"):
        index -= 1
    return index >= 0 and index < header and _is_blank(doc.lines[index])


def appended(doc, block):
    """The lines with a new section appended in the file's own form (``aws configure``'s for a new file).

    The file then ends with a newline, as after ``aws configure``, whether it did before or not.
    """
    lines = [list(line) for line in doc.lines]
    if lines and not lines[-1][1]:
        lines[-1][1] = doc.newline
    if lines and blank_separated(doc):
        lines.append(["", doc.newline])
    lines.extend([text, doc.newline] for text in block)
    return lines


def without(doc, section):
    """The lines without the section (header to last setting) and, in a file whose other sections are
    separated by blank lines, one blank line beside it: appending a section and removing it again
    gives back the original bytes."""
    start, end = section.header, section.end
    if not blank_separated(doc, excluding=section):
        pass
    elif start > 0 and _is_blank(doc.lines[start - 1]):
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
