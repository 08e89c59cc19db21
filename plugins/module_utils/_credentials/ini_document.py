# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One credentials or config file as its exact lines, and botocore's reading of them.

A canary is only convincing if the file it lands in still looks hand-written, so the document
keeps every byte: other profiles, comments, blank lines, spacing, line endings and a missing final
newline. It is read the way botocore reads it (``configparser.RawConfigParser`` on the decoded
lines, then botocore's nested ``key =`` blocks); a file botocore would reject, or would read
differently on another Python, is refused.
"""

from __future__ import annotations

import codecs
import configparser
import re

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.aws_settings import (
    KEY_ID,
    MASK,
    SECRET_OPTIONS,
    is_access_key_id,
)
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.errors import ParseError

_NEWLINE = re.compile(r"\r\n|\r|\n")
# The very expressions configparser parses with, so both read the same lines the same way.
_SECTCRE = configparser.RawConfigParser.SECTCRE
_OPTCRE = configparser.RawConfigParser.OPTCRE
_NONSPACE = configparser.RawConfigParser.NONSPACECRE
_COMMENT_PREFIXES = ("#", ";")
# Settings botocore reads as nested blocks: only these names are quoted in a message, since the
# name of a mangled line may be a fragment of a secret.
_NESTED_SETTINGS = frozenset(("s3", "api_versions", "proxies_config"))


class _Option:
    __slots__ = ("name", "line", "continuations", "parts")

    def __init__(self, name, line, first_value):
        self.name = name
        self.line = line
        self.continuations = []
        # Values as configparser collects them: blank lines are kept inside a value, comments not.
        self.parts = [first_value]

    @property
    def value(self):
        return "\n".join(self.parts).rstrip()

    @property
    def last_line(self):
        return self.continuations[-1] if self.continuations else self.line


class _Section:
    __slots__ = ("name", "header", "options")

    def __init__(self, name, header):
        self.name = name
        self.header = header
        self.options = []

    @property
    def end(self):
        """One past the section's last setting: trailing comments and blank lines stay outside,
        since they usually introduce what follows."""
        if not self.options:
            return self.header + 1
        return max(option.last_line for option in self.options) + 1

    def option(self, name):
        for option in self.options:
            if option.name == name:
                return option
        return None

    def values(self):
        return {option.name: option.value for option in self.options}


def split_lines(text):
    """Lines as [text, ending] pairs, split like Python's universal newlines (as botocore reads)."""
    lines = []
    position = 0
    for match in _NEWLINE.finditer(text):
        lines.append([text[position:match.start()], match.group()])
        position = match.end()
    if position < len(text):
        lines.append([text[position:], ""])
    return lines


def _majority_newline(lines):
    # New lines take the ending most lines have (the first one seen on a tie; \n in a new file).
    counts = {}
    for _text, ending in lines:
        if ending:
            counts[ending] = counts.get(ending, 0) + 1
    return max(counts, key=counts.get) if counts else "\n"


def _describe_parser_error(exc):
    # configparser's own messages quote the offending line, which may hold a secret.
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return "line %d comes before the first [section] header" % exc.lineno
    if isinstance(exc, configparser.DuplicateSectionError):
        return "section [%s] appears more than once (line %s)" % (exc.section, exc.lineno)
    if isinstance(exc, configparser.DuplicateOptionError):
        # The setting's name is left out: on a mangled line it may be a fragment of a secret.
        return "a setting appears more than once in section [%s] (line %s)" % (exc.section, exc.lineno)
    if isinstance(exc, configparser.ParsingError):
        numbers = ", ".join(str(lineno) for lineno, _line in exc.errors)
        return "line %s is neither a [section] header, a 'name = value' setting nor a comment" % numbers
    return type(exc).__name__


def _botocore_view(lines, label):
    """What ``botocore.configloader.raw_config_parse`` returns for these lines, or ParseError."""
    parser = configparser.RawConfigParser()
    try:
        parser.read_file([text + "\n" for text, _ending in lines], source=label)
    except configparser.Error as exc:
        raise ParseError("%s cannot be parsed by the AWS CLI and SDKs: %s" % (label, _describe_parser_error(exc))) from None
    view = {}
    for section in parser.sections():
        values = {}
        for option in parser.options(section):
            value = parser.get(section, option)
            if value.startswith("\n"):
                # botocore reads an indented block under "name =" as nested "key = value" settings.
                for nested in value.splitlines():
                    if nested.strip() and "=" not in nested:
                        raise ParseError(
                            "%s cannot be parsed by the AWS CLI and SDKs: the indented block under %s in [%s] "
                            "has a line without '='"
                            % (label, option if option in _NESTED_SETTINGS else "a setting", section))
            values[option] = value
        view[section] = values
    return view, parser.defaults()


class IniDocument:
    """One credentials or config file: its exact lines and botocore's reading of them."""

    def __init__(self, lines, label):
        self.lines = lines
        self.label = label
        self.newline = _majority_newline(lines)
        self.view, defaults = _botocore_view(lines, label)
        self.sections = []
        self._classify()
        self._cross_check(defaults)

    @classmethod
    def from_bytes(cls, data, label):
        """Parse a file's bytes (None or empty for a missing file), refusing what botocore refuses."""
        if not data:
            return cls([], label)
        if data.startswith(codecs.BOM_UTF8):
            raise ParseError("%s starts with a UTF-8 byte order mark, which the AWS CLI and SDKs cannot parse" % label)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("%s is not UTF-8 text (byte %d), which the AWS CLI and SDKs cannot parse" % (label, exc.start)) from None
        return cls(split_lines(text), label)

    def _classify(self):
        """Find headers, settings and their continuation lines exactly as configparser's _read does."""
        current = None
        option = None
        indent_level = 0
        for index, (text, _ending) in enumerate(self.lines):
            stripped = text.strip()
            if stripped.startswith(_COMMENT_PREFIXES):
                continue
            if not stripped:
                if option is not None:
                    option.parts.append("")
                continue
            nonspace = _NONSPACE.search(text)
            indent = nonspace.start() if nonspace else 0
            if current is not None and option is not None and indent > indent_level:
                option.continuations.append(index)
                option.parts.append(stripped)
                continue
            indent_level = indent
            header = _SECTCRE.match(stripped)
            if header:
                self._check_header(stripped, index)
                current = _Section(header.group("header"), index)
                self.sections.append(current)
                option = None
                continue
            setting = _OPTCRE.match(stripped)
            option = _Option(setting.group("option").rstrip().lower(), index, setting.group("value").strip())
            current.options.append(option)

    def _check_header(self, stripped, index):
        # Python 3.9's configparser ends a header name at its first "]", 3.10 and later at its
        # last: "[default] # note [x]" is profile "default" to one and "default] # note [x" to the
        # other, and the module and the host's AWS CLI may run on different Pythons.
        if stripped.count("]") > 1:
            raise ParseError(
                "%s: the section header on line %d holds more than one ']' (a trailing comment?), which Python 3.9 "
                "and Python 3.10+ read as different profile names; put the comment on a line of its own"
                % (self.label, index + 1))

    def _cross_check(self, defaults):
        # Our line map is what every edit relies on: if it ever read the file differently from
        # configparser, editing by it could damage what botocore reads, so refuse instead.
        own_defaults = {}
        for section in self.sections:
            if section.name == configparser.DEFAULTSECT:
                own_defaults.update(section.values())
        names = [section.name for section in self.sections if section.name != configparser.DEFAULTSECT]
        consistent = names == list(self.view) and own_defaults == dict(defaults)
        for section in self.sections:
            if not consistent or section.name == configparser.DEFAULTSECT:
                continue
            own = section.values()
            expected = dict(defaults)
            expected.update(own)
            consistent = expected == self.view[section.name]
        if not consistent:
            raise ParseError("%s has a layout this module cannot edit safely; it was left untouched" % self.label)

    # ---------------------------------------------------------------- reading

    @property
    def has_final_newline(self):
        return not self.lines or self.lines[-1][1] != ""

    def profiles(self):
        return list(self.view)

    def section(self, name):
        for section in self.sections:
            if section.name == name and name != configparser.DEFAULTSECT:
                return section
        return None

    def defaults_section(self):
        """The [DEFAULT] section when it holds settings (every other section inherits them), else None."""
        for section in self.sections:
            if section.name == configparser.DEFAULTSECT and section.options:
                return section
        return None

    def settings(self):
        """Every section's own settings, in file order, for comparing two versions of a file."""
        return [(section.name, section.values()) for section in self.sections]

    def text(self, lines=None):
        return "".join(text + ending for text, ending in (self.lines if lines is None else lines))

    def masked_text(self):
        """The file with every secret value (of every profile) replaced by ********.

        Masked too: an aws_access_key_id that is not shaped like one (a swapped secret, a nested
        block), and every continuation line that is not a nested setting of a non-secret name."""
        lines = [list(line) for line in self.lines]
        for section in self.sections:
            for option in section.options:
                if _is_secret(option.name, option.value):
                    if _value_span(lines[option.line][0])[2]:
                        lines[option.line][0] = with_value(lines[option.line][0], MASK)
                    for index in option.continuations:
                        lines[index][0] = _masked_line(lines[index][0])
                    continue
                for index in option.continuations:
                    # Only a nested "name = value" of a setting that is not secret is shown: any
                    # other continuation line may be a secret that lost its place.
                    nested = _OPTCRE.match(lines[index][0].strip())
                    if not nested or _is_secret(nested.group("option").strip().lower(), nested.group("value").strip()):
                        lines[index][0] = _masked_line(lines[index][0])
        return self.text(lines)


def _is_secret(name, value):
    return name in SECRET_OPTIONS or (name == KEY_ID and not is_access_key_id(value))


def _masked_line(text):
    lead = len(text) - len(text.lstrip())
    return text[:lead] + MASK + text[len(text.rstrip()):]


def indent_of(text):
    return text[:len(text) - len(text.lstrip())]


def _value_span(text):
    """(start, end, value) of a setting line's value inside the line text."""
    lead = len(text) - len(text.lstrip())
    stripped = text.strip()
    match = _OPTCRE.match(stripped)
    return lead + match.start("value"), lead + len(stripped), match.group("value")


def with_value(text, value):
    """A setting line with its value replaced, keeping its indent and the spacing around '='."""
    start, end, old = _value_span(text)
    prefix = text[:start]
    if not old and not prefix[-1:].isspace():
        # "name =" with nothing after it: write "name = value", matching the space before "=".
        stripped = prefix.rstrip()
        spaced = len(stripped) > 1 and stripped[-2].isspace()
        prefix = stripped + (" " if spaced else "")
    return prefix + value + text[end:]


def styled_like(model, name, value):
    """A new setting line with the indent and the spacing around '=' of an existing one."""
    lead = len(model) - len(model.lstrip())
    stripped = model.strip()
    match = _OPTCRE.match(stripped)
    delimiter = stripped[match.end("option"):match.start("value")]
    # A placeholder value lets with_value space "name = value" like the model; an empty model
    # value goes through with_value's own spacing rule instead.
    placeholder = "x" if match.group("value") else ""
    return with_value(model[:lead] + name + delimiter + placeholder, value)
