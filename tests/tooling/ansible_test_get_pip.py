# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline stand-in for the get-pip.py that ansible-test downloads.

ansible-test bootstraps pip into each sanity virtualenv with a script it fetches from
its own CI file host, which this network cannot reach.  It runs the script as
``python get_pip.py [pip options] pip==X --no-setuptools --no-wheel``; this stand-in
seeds pip with the standard library's ensurepip, then brings it to the version asked
for from the package index, passing the system CA bundle explicitly (the seeded pip
does not find it by itself here).
"""

from __future__ import annotations

import os
import subprocess
import sys

CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def main(argv):
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
    wanted = [arg for arg in argv if arg not in ("--no-setuptools", "--no-wheel")]
    command = [sys.executable, "-m", "pip", "install", "--quiet"]
    for bundle in CA_BUNDLES:
        if os.path.exists(bundle):
            command += ["--cert", bundle]
            break
    subprocess.check_call(command + wanted)


if __name__ == "__main__":
    main(sys.argv[1:])
