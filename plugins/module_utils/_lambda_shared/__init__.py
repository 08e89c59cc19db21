# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: the modules the collection shares with the detection Lambda.

Each file here is standard library only and is packaged verbatim at the root of the Lambda zip
(roles/detection/files/lambda_zip.py), where the files import each other by bare name: one source,
never two copies that drift.  Nothing outside this collection may import them.
"""
