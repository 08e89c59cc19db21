# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a module for real through the ``ansible`` CLI, as the credentials module tests do.

The module runs under the host's bare /usr/bin/python3 (no boto3, no Ansible installed) when there
is one, as on the fleet. Every run's whole output (stdout and stderr) is searched for the secrets
the test names, so a leak fails the test that caused it.

run_ansible   function  run_ansible(collections, module, secrets, args, ...) -> the host's JSON result
file_state    function  bytes, inode, mtime and mode of a file, to prove a run touched nothing
current_user  function  the name of the user the tests run as
"""

from __future__ import annotations

import json
import os
import pathlib
import pwd
import stat
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[4]
ANSIBLE = pathlib.Path(sys.executable).parent / "ansible"
INTERPRETER = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def run_ansible(collections, module, secrets, args, check=False, diff=False, become_user=None, verbosity=0,
                callback="json", with_output=False):
    """Run ``module`` with ``args`` on localhost; its result (json callback) or its whole output (others)."""
    command = [str(ANSIBLE), "localhost", "-i", "localhost,", "-c", "local", "-m", module,
               "-a", json.dumps(args), "-e", "ansible_python_interpreter=%s" % INTERPRETER]
    if check:
        command.append("--check")
    if diff:
        command.append("--diff")
    if become_user:
        command += ["--become", "--become-method", "su", "--become-user", become_user]
    if verbosity:
        command.append("-" + "v" * verbosity)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_STDOUT_CALLBACK=callback,
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_PIPELINING="1", ANSIBLE_NOCOLOR="1",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_LOCALHOST_WARNING="0")
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    for secret in secrets:
        assert secret not in output, "a secret leaked into the ansible output"
    if callback != "json":
        return output
    result = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return (result, output) if with_output else result


def file_state(path):
    """Bytes and inode facts of a file, to prove a refused run touched nothing."""
    info = os.lstat(path)
    return path.read_bytes(), info.st_ino, info.st_mtime_ns, stat.S_IMODE(info.st_mode)


def current_user():
    return pwd.getpwuid(os.getuid()).pw_name
