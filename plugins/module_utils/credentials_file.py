# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWS shared credentials and config files, edited without disturbing them.

A canary is only convincing if the file it lands in still looks hand-written, so
every edit here keeps each byte outside the managed profile: other profiles,
comments, blank lines, spacing, CRLF line endings and a missing final newline.
A file is read the way botocore reads it (``configparser.RawConfigParser`` on
the decoded lines, then botocore's nested ``key =`` blocks); a file botocore
would reject, or an edit that would change what botocore reads anywhere else,
is refused and the file left as it was.

Files are reached through directory descriptors opened without following
symlinks, because the module runs as root inside users' home directories,
which those users control.

Standard library only and free of Ansible: it runs on fleet hosts with a bare
``/usr/bin/python3`` and is unit-tested as plain Python.
"""

from __future__ import annotations

import codecs
import configparser
import errno
import os
import re
import secrets
import shlex
import stat
import time

KEY_ID = "aws_access_key_id"
SECRET = "aws_secret_access_key"
REGION = "region"
# Session credentials belong to the key they were derived from; left beside a new key they would
# make every call with the profile fail, which is not how a working profile looks.
SESSION_OPTIONS = ("aws_session_token", "aws_security_token")
SECRET_OPTIONS = frozenset((SECRET,) + SESSION_OPTIONS)
MASK = "********"

# configparser treats [DEFAULT] as defaults for every section: a profile by that name would
# hand its key to every other profile in the file.
_RESERVED_PROFILES = frozenset((configparser.DEFAULTSECT,))
# Names that survive both "[name]" in the credentials file and botocore's shlex split of
# "[profile name]" in the config file.
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9_.@+=,:/-]{1,128}$")
# Keys, secrets and regions are written as one token on one line: anything with white space or
# control characters could end the line and inject settings.
_TOKEN = re.compile(r"^[!-~]{1,1024}$")

_NEWLINE = re.compile(r"\r\n|\r|\n")
# The very expressions configparser parses with, so both read the same lines the same way.
_SECTCRE = configparser.RawConfigParser.SECTCRE
_OPTCRE = configparser.RawConfigParser.OPTCRE
_NONSPACE = configparser.RawConfigParser.NONSPACECRE
_COMMENT_PREFIXES = ("#", ";")

# O_PATH (Linux) walks directories the caller may search but not list; elsewhere O_RDONLY.
_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted at the path must not hang the module.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE_MODE = 0o600
NEW_DIR_MODE = 0o700


class CredentialsFileError(Exception):
    """A refusal: nothing was written, and the message says why (never with a secret in it)."""


class ParseError(CredentialsFileError):
    """The file is not one botocore can read, or not one this module can edit safely."""


class RefusedError(CredentialsFileError):
    """The file is readable but the requested change would clobber something that is not ours."""


def check_profile_name(profile):
    if profile in _RESERVED_PROFILES or not _PROFILE_NAME.match(profile or ""):
        raise RefusedError(
            "profile name %r is not usable: use letters, digits and _ . @ + = , : / - only, "
            "at most 128 characters, and not DEFAULT" % (profile,))


def check_token(value, what):
    """Refuse a value that could not sit on one line as one token (the message omits the value)."""
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise RefusedError("%s must be 1 to 1024 printable ASCII characters without spaces" % what)


def config_section_name(profile):
    """The config file's section for a profile, as ``aws configure`` names it."""
    return "default" if profile == "default" else "profile " + profile


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


def _is_blank(line):
    return not line[0].strip()


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
                            "has a line without '='" % (label, option, section))
            values[option] = value
        view[section] = values
    return view, parser.defaults()


class IniDocument:
    """One credentials or config file: its exact lines and botocore's reading of them."""

    def __init__(self, lines, label):
        self.lines = lines
        self.label = label
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
                current = _Section(header.group("header"), index)
                self.sections.append(current)
                option = None
                continue
            setting = _OPTCRE.match(stripped)
            option = _Option(setting.group("option").rstrip().lower(), index, setting.group("value").strip())
            current.options.append(option)

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
    def newline(self):
        for _text, ending in self.lines:
            if ending:
                return ending
        return "\n"

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

    def settings(self):
        """Every section's own settings, in file order, for comparing two versions of a file."""
        return [(section.name, section.values()) for section in self.sections]

    def text(self, lines=None):
        return "".join(text + ending for text, ending in (self.lines if lines is None else lines))

    def masked_text(self):
        """The file with every secret value (of every profile) replaced by ********."""
        lines = [list(line) for line in self.lines]
        for section in self.sections:
            for option in section.options:
                if option.name not in SECRET_OPTIONS:
                    continue
                if lines[option.line][0].strip() and _value_span(lines[option.line][0])[2]:
                    lines[option.line][0] = _with_value(lines[option.line][0], MASK)
                for index in option.continuations:
                    text = lines[index][0]
                    lead = len(text) - len(text.lstrip())
                    lines[index][0] = text[:lead] + MASK + text[len(text.rstrip()):]
        return self.text(lines)

    # ---------------------------------------------------------------- editing

    def _finish(self, lines):
        """Give every line but the last an ending; keep a missing final newline missing."""
        for line in lines[:-1]:
            if not line[1]:
                line[1] = self.newline
        if lines and not self.has_final_newline:
            lines[-1][1] = ""
        return lines

    def appended(self, block):
        """The lines with a new section appended after one blank line, in ``aws configure``'s form."""
        lines = [list(line) for line in self.lines]
        if lines:
            lines.append(["", self.newline])
        lines.extend([text, self.newline] for text in block)
        return self._finish(lines)

    def without(self, section):
        """The lines without the section (header to last setting) and one blank line beside it,
        so that appending a section and removing it again gives back the original bytes."""
        start, end = section.header, section.end
        if start > 0 and _is_blank(self.lines[start - 1]):
            start -= 1
        elif end < len(self.lines) and _is_blank(self.lines[end]):
            end += 1
        lines = [list(line) for line in self.lines[:start] + self.lines[end:]]
        return self._finish(lines)

    def _next_header_indent(self, section):
        # The next header stays a header only if it is not indented deeper than our new settings.
        position = self.sections.index(section)
        if position + 1 < len(self.sections):
            return _indent(self.lines[self.sections[position + 1].header][0])
        return ""

    def with_settings(self, section, values, drop=()):
        """The lines with ``values`` set in the section in place (spacing kept, new settings styled
        like their neighbour) and the ``drop`` settings removed with their continuation lines."""
        replace = {}
        removed = set()
        before = {}
        after = {}
        for option in section.options:
            if option.name in drop:
                removed.add(option.line)
            if option.name in drop or option.name in values:
                removed.update(option.continuations)
            if option.name in values:
                replace[option.line] = _with_value(self.lines[option.line][0], values[option.name])
        present = [option for option in section.options if option.name in values and option.name not in drop]
        missing = [name for name in values if section.option(name) is None]
        if missing:
            if present:
                # A missing setting goes next to a present one, before it if it comes first in values.
                anchor = present[0]
                order = list(values)
                first = [name for name in missing if order.index(name) < order.index(anchor.name)]
                last = [name for name in missing if name not in first]
                model = self.lines[anchor.line][0]
                before[anchor.line] = [_styled_like(model, name, values[name]) for name in first]
                after[anchor.line] = [_styled_like(model, name, values[name]) for name in last]
            elif section.options:
                # Styled like the section's first setting and placed before it: a line indented less
                # than the settings after it would turn them into continuation lines of ours.
                model = self.lines[section.options[0].line][0]
                before[section.options[0].line] = [_styled_like(model, name, values[name]) for name in missing]
            else:
                indent = self._next_header_indent(section)
                after[section.header] = ["%s%s = %s" % (indent, name, values[name]) for name in missing]
        lines = []
        for index, line in enumerate(self.lines):
            lines.extend([text, self.newline] for text in before.get(index, ()))
            if index in replace:
                lines.append([replace[index], line[1]])
            elif index not in removed:
                lines.append(list(line))
            lines.extend([text, self.newline] for text in after.get(index, ()))
        return self._finish(lines)


def _indent(text):
    return text[:len(text) - len(text.lstrip())]


def _value_span(text):
    """(start, end, value) of a setting line's value inside the line text."""
    lead = len(text) - len(text.lstrip())
    stripped = text.strip()
    match = _OPTCRE.match(stripped)
    return lead + match.start("value"), lead + len(stripped), match.group("value")


def _with_value(text, value):
    start, end, old = _value_span(text)
    prefix = text[:start]
    if not old and not prefix[-1:].isspace():
        # "name =" with nothing after it: write "name = value", matching the space before "=".
        stripped = prefix.rstrip()
        spaced = len(stripped) > 1 and stripped[-2].isspace()
        prefix = stripped + (" " if spaced else "")
    return prefix + value + text[end:]


def _styled_like(model, name, value):
    """A new setting line with the indent and the spacing around '=' of an existing one."""
    lead = len(model) - len(model.lstrip())
    stripped = model.strip()
    match = _OPTCRE.match(stripped)
    delimiter = stripped[match.end("option"):match.start("value")]
    # A placeholder value lets _with_value space "name = value" like the model; an empty model
    # value goes through _with_value's own spacing rule instead.
    placeholder = "x" if match.group("value") else ""
    return _with_value(model[:lead] + name + delimiter + placeholder, value)


def _verify(old, new_lines, expected):
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


class Plan:
    """The outcome of one requested change, computed without touching the file."""

    def __init__(self, doc, new_doc=None, key_before=None, key_after=None, msg="", left_alone=False):
        self.doc = doc
        self.new_doc = new_doc
        self.key_before = key_before
        self.key_after = key_after
        self.msg = msg
        # Something that is not ours stood where the change should go; msg says what.
        self.left_alone = left_alone

    @property
    def changed(self):
        return self.new_doc is not None

    @property
    def data(self):
        """The bytes to write (only meaningful when changed)."""
        return self.new_doc.text().encode("utf-8")

    def diff(self, header):
        return {
            "before": self.doc.masked_text(),
            "after": (self.new_doc or self.doc).masked_text(),
            "before_header": header,
            "after_header": header,
        }


def _key_id(section):
    option = section.option(KEY_ID) if section else None
    return (option.value or None) if option else None


def read_profile(data, label, profile):
    """(access key id of the profile or None, profile names): the only facts a query returns."""
    doc = IniDocument.from_bytes(data, label)
    return _key_id(doc.section(profile)), doc.profiles()


def plan_present(data, label, profile, access_key_id, secret_access_key, replaceable_key_ids=()):
    """Ensure the profile holds exactly this key, refusing to clobber a key that is not ours."""
    check_profile_name(profile)
    check_token(access_key_id, "access_key_id")
    check_token(secret_access_key, "secret_access_key")
    doc = IniDocument.from_bytes(data, label)
    section = doc.section(profile)
    wanted = {KEY_ID: access_key_id, SECRET: secret_access_key}
    settings = doc.settings()
    if section is None:
        new_lines = doc.appended(["[%s]" % profile, "%s = %s" % (KEY_ID, access_key_id), "%s = %s" % (SECRET, secret_access_key)])
        new_doc = _verify(doc, new_lines, settings + [(profile, wanted)])
        return Plan(doc, new_doc, None, access_key_id, "profile %s added to %s" % (profile, label))
    current = _key_id(section)
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
    new_lines = doc.with_settings(section, wanted, drop=SESSION_OPTIONS)
    expected = [(name, expected_own if name == profile else values) for name, values in settings]
    new_doc = _verify(doc, new_lines, expected)
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
    doc = IniDocument.from_bytes(data, label)
    section = doc.section(profile)
    if section is None:
        return Plan(doc, msg="profile %s is not in %s" % (profile, label))
    current = _key_id(section)
    if current != access_key_id:
        return Plan(doc, None, current, current,
                    "profile %s in %s left alone: it holds %s, not %s"
                    % (profile, label, "key " + current if current else "no access key id", access_key_id),
                    left_alone=True)
    expected = [(name, values) for name, values in doc.settings() if name != profile]
    new_doc = _verify(doc, doc.without(section), expected)
    return Plan(doc, new_doc, current, None, "profile %s removed from %s" % (profile, label))


def _config_sections(doc, profile):
    """The config sections botocore's build_profile_map turns into this profile."""
    found = []
    for section in doc.sections:
        name = section.name
        if name.startswith("profile"):
            try:
                parts = shlex.split(name)
            except ValueError:
                continue
            if len(parts) == 2 and parts[1] == profile:
                found.append(section)
        elif name == "default" and profile == "default":
            found.append(section)
    return found


def plan_config_present(data, label, profile, region):
    """Ensure the profile's config section names the region; never alter a section set up by someone else."""
    check_profile_name(profile)
    check_token(region, "region")
    doc = IniDocument.from_bytes(data, label)
    sections = _config_sections(doc, profile)
    if len(sections) > 1:
        return Plan(doc, msg="%s left alone: several sections define profile %s" % (label, profile), left_alone=True)
    if not sections:
        name = config_section_name(profile)
        new_lines = doc.appended(["[%s]" % name, "%s = %s" % (REGION, region)])
        new_doc = _verify(doc, new_lines, doc.settings() + [(name, {REGION: region})])
        return Plan(doc, new_doc, msg="[%s] with region %s added to %s" % (name, region, label))
    section = sections[0]
    own = section.values()
    if own.get(REGION) == region:
        return Plan(doc, msg="[%s] in %s already has region %s" % (section.name, label, region))
    if any(own.values()):
        return Plan(doc, msg="[%s] in %s left alone: it holds other settings" % (section.name, label), left_alone=True)
    new_lines = doc.with_settings(section, {REGION: region})
    expected = [(name, {REGION: region} if name == section.name else values) for name, values in doc.settings()]
    new_doc = _verify(doc, new_lines, expected)
    return Plan(doc, new_doc, msg="region %s set in [%s] in %s" % (region, section.name, label))


def plan_config_absent(data, label, profile, region):
    """Remove the profile's config section only when it is exactly what plan_config_present writes."""
    check_profile_name(profile)
    doc = IniDocument.from_bytes(data, label)
    sections = _config_sections(doc, profile)
    if not sections:
        return Plan(doc)
    section = sections[0]
    if (len(sections) > 1 or section.end - section.header != 2 or section.values() != {REGION: region}
            or section.options[0].continuations):
        return Plan(doc, msg="[%s] in %s left alone: it holds more than region %s" % (section.name, label, region),
                    left_alone=True)
    expected = [(name, values) for name, values in doc.settings() if name != section.name]
    new_doc = _verify(doc, doc.without(section), expected)
    return Plan(doc, new_doc, msg="[%s] removed from %s" % (section.name, label))


# -------------------------------------------------------------------- files


def _inside(path, directory):
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def resolve_path(path, home):
    """The real file behind ``path``, refusing a directory and a symlink that leads out of ``home``."""
    if not os.path.isabs(path):
        raise RefusedError("%s is not an absolute path" % path)
    normal = os.path.normpath(path)
    real = os.path.realpath(normal)
    if os.path.isdir(real):
        raise RefusedError("%s is a directory, not a credentials file" % path)
    if real != normal and not _inside(real, os.path.realpath(home)):
        # Root follows links planted in users' homes: one out of the home could make it
        # overwrite any file on the host.
        raise RefusedError("refusing %s: it resolves through a symlink to %s, outside the owner's home %s" % (path, real, home))
    return real


class TargetFile:
    """A file read and replaced atomically through a directory descriptor opened without
    following symlinks: a link swapped in after the checks makes the operation fail, not stray."""

    def __init__(self, real_path, owner_uid, owner_gid):
        self.path = real_path
        self.directory, self.name = os.path.split(real_path)
        self.owner = (owner_uid, owner_gid)
        self._dir_fd = None
        self._stat = None
        self._data = None

    def close(self):
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    @property
    def exists(self):
        return self._stat is not None

    def _open_directory(self, create):
        parts = [part for part in self.directory.split(os.sep) if part]
        fd = os.open(os.sep, _DIR_FLAGS)
        try:
            for position, part in enumerate(parts):
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    if position != len(parts) - 1:
                        raise RefusedError("%s does not exist" % os.sep.join([""] + parts[:position + 1])) from None
                    child = self._make_directory(fd, part)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise RefusedError("%s is not a directory, or was replaced by a symlink while it was checked"
                                           % os.sep.join([""] + parts[:position + 1])) from None
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _make_directory(self, parent_fd, name):
        os.mkdir(name, NEW_DIR_MODE, dir_fd=parent_fd)
        fd = os.open(name, _NEW_DIR_FLAGS, dir_fd=parent_fd)
        try:
            self._own(fd, self.owner, NEW_DIR_MODE, name)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read(self):
        """The file's bytes, or None when it does not exist."""
        self._dir_fd = self._open_directory(create=False)
        if self._dir_fd is None:
            return None
        try:
            fd = os.open(self.name, _READ_FLAGS, dir_fd=self._dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RefusedError("%s was replaced by a symlink while it was checked" % self.path) from None
            if exc.errno == errno.EACCES:
                raise RefusedError("%s cannot be read: permission denied (run with become?)" % self.path) from None
            raise
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise RefusedError("%s is a directory, not a credentials file" % self.path)
            if not stat.S_ISREG(info.st_mode):
                raise RefusedError("%s is not a regular file" % self.path)
            if info.st_nlink > 1:
                # Replacing it would split the links; and a hard link in a user's home may lead root
                # to a file the user could not read.
                raise RefusedError("%s has %d hard links; refusing to read or replace it" % (self.path, info.st_nlink))
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        self._stat = info
        self._data = b"".join(chunks)
        return self._data

    def write(self, data, backup=False):
        """Replace the file atomically with ``data``; return the backup's path when one was made.

        An existing file keeps its mode and owner; a new one is 0600 and owned by the owner."""
        if self._dir_fd is None:
            self._dir_fd = self._open_directory(create=True)
        self._check_unchanged()
        if self._stat is not None:
            mode, ids = stat.S_IMODE(self._stat.st_mode), (self._stat.st_uid, self._stat.st_gid)
        else:
            mode, ids = NEW_FILE_MODE, self.owner
        backup_path = None
        if backup and self._stat is not None:
            # The same name pattern as Ansible's backup_local, so existing clean-up jobs find it.
            backup_name = "%s.%s.%s" % (self.name, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S~"))
            self._create(backup_name, self._data, mode, ids)
            backup_path = os.path.join(self.directory, backup_name)
        temp_name = ".%s.%s.tmp" % (self.name, secrets.token_hex(4))
        self._create(temp_name, data, mode, ids)
        try:
            os.replace(temp_name, self.name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        except BaseException:
            os.unlink(temp_name, dir_fd=self._dir_fd)
            raise
        self._sync_directory()
        return backup_path

    def _sync_directory(self):
        # The rename is durable only once the directory is synced; an O_PATH descriptor cannot be.
        try:
            fd = os.open(".", _NEW_DIR_FLAGS, dir_fd=self._dir_fd)
        except OSError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _check_unchanged(self):
        # Another writer (aws configure, a second play) between our read and our write: refuse
        # rather than silently discard its change.
        try:
            now = os.stat(self.name, dir_fd=self._dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        before = self._stat
        if (now is None) != (before is None) or (now is not None and (
                (now.st_ino, now.st_size, now.st_mtime_ns) != (before.st_ino, before.st_size, before.st_mtime_ns))):
            raise RefusedError("%s changed while it was being edited; nothing was written" % self.path)

    def _create(self, name, data, mode, ids):
        fd = os.open(name, _CREATE_FLAGS, NEW_FILE_MODE, dir_fd=self._dir_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            self._own(fd, ids, mode, self.path)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(name, dir_fd=self._dir_fd)
            raise
        os.close(fd)

    @staticmethod
    def _own(fd, ids, mode, what):
        info = os.fstat(fd)
        if (info.st_uid, info.st_gid) != tuple(ids):
            try:
                os.fchown(fd, ids[0], ids[1])
            except PermissionError:
                raise RefusedError("%s would not keep owner %s:%s without root privileges (run with become)"
                                   % (what, ids[0], ids[1])) from None
        # After chown, which may clear mode bits; explicit, because the umask narrowed the create mode.
        os.fchmod(fd, mode)
