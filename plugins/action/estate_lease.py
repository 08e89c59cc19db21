# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of canarykeys.aws.estate_lease: names the ansible-playbook process that holds the lease.

It runs in a worker that the ansible-playbook process forked for this task, so its parent is the
run itself: every task of one run records the same process, and a later run on this controller can
tell that a lease's run was killed.  The module, a short-lived child of the connection, cannot.
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from ansible_collections.canarykeys.aws.plugins.module_utils._lease import process_start


class ActionModule(ActionBase):
    """Add holder_pid and holder_pid_start, then run the module."""

    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        pid = os.getppid()
        module_args = dict(self._task.args, holder_pid=pid, holder_pid_start=process_start(pid))
        result.update(self._execute_module(module_name="canarykeys.aws.estate_lease", module_args=module_args,
                                           task_vars=task_vars))
        return result
