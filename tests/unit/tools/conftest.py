# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local AWS tooling lives at the repo root (``tools.local_aws``), which pytest does not put on the path.

This directory has no ``__init__.py`` on purpose: with one, pytest would import it as a package named
``tools`` and shadow the code under test.
"""

from __future__ import annotations

import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
