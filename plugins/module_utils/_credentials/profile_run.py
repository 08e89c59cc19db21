# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One profile's query, write or removal, as credentials_profile and credentials_profiles run it.

The modules differ only in how many profiles one run handles: both hand each profile's options (the
option names of credentials_profile) to ``run_profile`` and turn its exceptions into their failures.
"""

from __future__ import annotations

import os
import pwd

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.aws_settings import check_profile_name
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.config_plans import (
    plan_config_absent,
    plan_config_present,
)
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.credentials_plans import (
    plan_absent,
    plan_present,
    read_profile,
)
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.errors import CredentialsFileError
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.safe_file import TargetFile, resolve_path

# The options of one profile, as credentials_profile takes them and credentials_profiles takes each entry
# of its profiles list. secret_access_key is no_log: AnsibleModule masks it, suboption or not.
PROFILE_OPTIONS = dict(
    owner=dict(type="str", required=True),
    path=dict(type="str"),
    profile=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent", "query"]),
    access_key_id=dict(type="str", no_log=False),
    secret_access_key=dict(type="str", no_log=True),
    replaceable_key_ids=dict(type="list", elements="str", default=[], no_log=False),
    region=dict(type="str"),
    output=dict(type="str", default="json"),
    config_path=dict(type="str"),
    backup=dict(type="bool", default=False),
)

PROFILE_REQUIRED_IF = [
    ("state", "present", ("access_key_id", "secret_access_key")),
    ("state", "absent", ("access_key_id",)),
]


class ProfileError(Exception):
    """A profile that could not be handled; ``result`` is what is known of it (its path at least)."""

    def __init__(self, msg, result):
        super().__init__(msg)
        self.result = result


def _expand(path, home, default):
    """Expand a leading ~ against the owner's home (type=path would use root's under become)."""
    if not path:
        return os.path.join(home, *default)
    if not path.startswith("~"):
        return path
    name, _sep, rest = path[1:].partition("/")
    if name:
        try:
            home = pwd.getpwnam(name).pw_dir
        except KeyError:
            return path
    return home + ("/" + rest if _sep else "")


class _Files:
    """The credentials file and, with a region, the config file of one profile."""

    def __init__(self, params, user):
        self.params = params
        self.user = user
        self.path = _expand(params["path"], user.pw_dir, (".aws", "credentials"))
        self.config_path = _expand(params["config_path"], user.pw_dir, (".aws", "config"))

    def target(self, path):
        return TargetFile(resolve_path(path, self.user.pw_dir), self.user.pw_uid, self.user.pw_gid)


def _query(files, credentials):
    key_id, profiles = read_profile(credentials.read(), files.path, files.params["profile"])
    return {
        "access_key_id": key_id,
        "planted_access_key_id": key_id,
        "profiles": profiles,
        "exists": credentials.exists,
        "msg": ("profile %s in %s holds key %s" % (files.params["profile"], files.path, key_id)) if key_id
        else "profile %s in %s holds no key" % (files.params["profile"], files.path),
    }


def _plan_credentials(params, path, data):
    if params["state"] == "present":
        return plan_present(data, path, params["profile"], params["access_key_id"], params["secret_access_key"],
                            tuple(params["replaceable_key_ids"]))
    return plan_absent(data, path, params["profile"], params["access_key_id"])


def _plan_config(params, path, data):
    if params["state"] == "present":
        return plan_config_present(data, path, params["profile"], params["region"], params["output"])
    return plan_config_absent(data, path, params["profile"], params["region"], params["output"])


def _change(files, credentials, config, check_mode, diff, warn):
    params = files.params
    plan = _plan_credentials(params, files.path, credentials.read())
    config_plan = None
    # On absent the config section goes only with our profile (or after it is already gone): a
    # region section next to somebody else's profile is theirs.
    profile_ours_or_gone = plan.changed or plan.doc.section(params["profile"]) is None
    if config is not None and (params["state"] == "present" or profile_ours_or_gone):
        config_plan = _plan_config(params, files.config_path, config.read())

    result = {
        "access_key_id": plan.key_before,
        "planted_access_key_id": plan.key_after,
        "changed": plan.changed or bool(config_plan and config_plan.changed),
        "msg": "; ".join(m for m in (plan.msg, config_plan.msg if config_plan else "") if m),
    }
    if config is not None:
        result["config_path"] = files.config_path
    if config_plan and config_plan.left_alone and params["state"] == "present":
        # The canary is planted all the same; only its region hint is missing.
        warn(config_plan.msg)
    diffs = [p.diff(name) for p, name in ((plan, files.path), (config_plan, files.config_path)) if p and p.changed]
    if diff and diffs:
        result["diff"] = diffs
    if check_mode:
        return result

    # The config first: if the credentials write then fails, the play deletes the minted key and
    # what is left behind is a harmless region line, not a dead key in the credentials file.
    writes = [(plan, credentials, "backup_file"), (config_plan, config, "config_backup_file")]
    if params["state"] == "present":
        writes.reverse()
    for step, target, backup_key in writes:
        if step is not None and step.changed:
            backup_file = target.write(step.data, backup=params["backup"])
            if backup_file:
                result[backup_key] = backup_file
    return result


def run_profile(params, check_mode=False, diff=False, warn=lambda msg: None):
    """Query, write or remove the profile ``params`` names; its result (``diff``: a list of file diffs).

    Raises ProfileError, carrying what is known of the profile, when it cannot be handled: then no file
    of this profile was changed (each file is replaced atomically, the config only before the credentials).
    """
    try:
        user = pwd.getpwnam(params["owner"])
    except KeyError:
        raise ProfileError("user %s does not exist on this host" % params["owner"], {"changed": False}) from None

    files = _Files(params, user)
    result = {"changed": False, "path": files.path}
    credentials = config = None
    try:
        check_profile_name(params["profile"])
        credentials = files.target(files.path)
        if params["state"] == "query":
            result.update(_query(files, credentials))
        else:
            if params["region"]:
                config = files.target(files.config_path)
            result.update(_change(files, credentials, config, check_mode, diff, warn))
    except CredentialsFileError as exc:
        raise ProfileError(str(exc), result) from None
    except OSError as exc:
        raise ProfileError("%s: %s (%s)" % (files.path, exc.strerror, exc.filename or ""), result) from None
    finally:
        for target in (credentials, config):
            if target is not None:
                target.close()
    return result
