# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The outcome of one requested change to a file, computed without touching it."""

from __future__ import annotations


class Plan:
    """What a change would do: the document before, the document after (None when unchanged)."""

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
