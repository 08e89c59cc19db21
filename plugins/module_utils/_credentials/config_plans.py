# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The region of a canary profile in the AWS config file: pure plans, no I/O.

A config section set up by someone else (any setting of its own) is left alone, never altered.
"""

from __future__ import annotations

import shlex

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.aws_settings import (
    OUTPUT,
    REGION,
    check_profile_name,
    check_token,
    config_section_name,
)
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.ini_document import IniDocument
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.ini_edits import (
    appended,
    verified,
    with_settings,
    without,
)
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.plan import Plan


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


def _ours(region, output):
    """The settings of a section this module writes, in the order ``aws configure`` writes them."""
    return {REGION: region, OUTPUT: output} if output else {REGION: region}


def plan_config_present(data, label, profile, region, output=None):
    """Ensure the profile's config section names the region; never alter a section set up by someone else.

    A new section also gets ``output`` when given, as ``aws configure`` writes both; an existing one is
    left its own output.
    """
    check_profile_name(profile)
    check_token(region, "region")
    if output:
        check_token(output, "output")
    doc = IniDocument.from_bytes(data, label)
    sections = _config_sections(doc, profile)
    if len(sections) > 1:
        return Plan(doc, msg="%s left alone: several sections define profile %s" % (label, profile), left_alone=True)
    if not sections:
        name = config_section_name(profile)
        settings = _ours(region, output)
        new_lines = appended(doc, ["[%s]" % name] + ["%s = %s" % item for item in settings.items()])
        new_doc = verified(doc, new_lines, doc.settings() + [(name, settings)])
        return Plan(doc, new_doc, msg="[%s] with region %s added to %s" % (name, region, label))
    section = sections[0]
    own = section.values()
    if own.get(REGION) == region:
        return Plan(doc, msg="[%s] in %s already has region %s" % (section.name, label, region))
    if any(own.values()):
        return Plan(doc, msg="[%s] in %s left alone: it holds other settings" % (section.name, label), left_alone=True)
    # Empty settings ("region =", "output =", as some tools leave them) stay as they are, but the region.
    wanted = dict(own)
    wanted[REGION] = region
    new_lines = with_settings(doc, section, {REGION: region})
    expected = [(name, wanted if name == section.name else values) for name, values in doc.settings()]
    new_doc = verified(doc, new_lines, expected)
    return Plan(doc, new_doc, msg="region %s set in [%s] in %s" % (region, section.name, label))


def plan_config_absent(data, label, profile, region, output=None):
    """Remove the profile's config section only when it is exactly what plan_config_present writes."""
    check_profile_name(profile)
    doc = IniDocument.from_bytes(data, label)
    sections = _config_sections(doc, profile)
    if not sections:
        return Plan(doc)
    section = sections[0]
    ours = [_ours(region, output), _ours(region, None)]
    if (len(sections) > 1 or section.values() not in ours or section.end - section.header != 1 + len(section.values())
            or any(option.continuations for option in section.options)):
        return Plan(doc, msg="[%s] in %s left alone: it holds more than region %s" % (section.name, label, region),
                    left_alone=True)
    expected = [(name, values) for name, values in doc.settings() if name != section.name]
    new_doc = verified(doc, without(doc, section), expected)
    return Plan(doc, new_doc, msg="[%s] removed from %s" % (section.name, label))
