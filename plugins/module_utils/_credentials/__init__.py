# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWS shared credentials and config files, edited without disturbing them (private to the collection).

``ini_document``      the file as exact lines plus botocore's reading of them (parse, validate, mask)
``ini_edits``         new line lists for one section (append, remove, set in place), re-read and verified
``aws_settings``      the setting names written, and the checks on profile names and values
``plan``              the Plan a change returns
``credentials_plans`` read / present / absent for the credentials file (pure, no I/O)
``config_plans``      present / absent of the region in the config file (pure, no I/O)
``safe_file``         path resolution, symlink-safe reads, atomic writes that keep owner and mode
``errors``            the refusals

Standard library only and free of Ansible: it runs on fleet hosts with a bare ``/usr/bin/python3``
and is unit-tested as plain Python.
"""
