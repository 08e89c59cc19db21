# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The credentials_profiles module (several profiles of one host in one run), run for real by the
``ansible`` CLI against files in a temp dir and, as root, in throwaway users' homes.

Every run's whole output is searched for every secret the tests use (ansible_cli.py)."""

from __future__ import annotations

import functools
import os
import pathlib
import stat

import pytest
from botocore.configloader import raw_config_parse

from ansible_cli import current_user, file_state, run_ansible

MODULE = "canarykeys.aws.credentials_profiles"

# Each key id with its secret; the foreign pair is a profile the play did not plant.
KEY, SECRET = "AKIAQMULTIKEY0000001", "ckMultiSecret/" + "0ne" * 9
OTHER_KEY, OTHER_SECRET = "AKIAQMULTIKEY0000002", "ckMultiSecret/" + "Tw0" * 9
FOREIGN_KEY, FOREIGN_SECRET = "AKIAQFOREIGN00000007", "ckForeignMulti/" + "F0r" * 8
ALL_SECRETS = (SECRET, OTHER_SECRET, FOREIGN_SECRET)

FOREIGN = "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (FOREIGN_KEY, FOREIGN_SECRET)


@pytest.fixture(name="run")
def fixture_run(ansible_collections_path):
    return functools.partial(run_ansible, ansible_collections_path, MODULE, ALL_SECRETS)


def _entry(path, profile="prod", key=KEY, secret=SECRET, owner=None, **extra):
    """A present entry; path None means the owner's default file."""
    entry = {"owner": owner or current_user(), "profile": profile, "access_key_id": key, "secret_access_key": secret}
    if path is not None:
        entry["path"] = str(path)
    entry.update(extra)
    return entry


def _query(path, profile="prod", owner=None):
    return _entry(path, profile, key=None, secret=None, owner=owner, state="query")


def _owned_by(path, user):
    info = os.stat(path)
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def test_query_and_write_profiles_of_two_owners_in_one_run(run, make_user):
    deploy, backup = make_user(), make_user()
    # deploy already holds a foreign profile in a group-readable file it owns.
    aws = pathlib.Path(deploy.pw_dir) / ".aws"
    aws.mkdir(mode=0o700)
    os.chown(aws, deploy.pw_uid, deploy.pw_gid)
    (aws / "credentials").write_bytes(FOREIGN.encode())
    os.chown(aws / "credentials", deploy.pw_uid, deploy.pw_gid)
    (aws / "credentials").chmod(0o640)

    queried = run({"profiles": [_query(None, "default", deploy.pw_name), _query(None, "prod", deploy.pw_name),
                                _query(None, "prod", backup.pw_name)]})
    assert not queried.get("failed") and not queried["changed"]
    default, prod, other = queried["outcomes"]
    assert (default["access_key_id"], default["profiles"], default["exists"]) == (FOREIGN_KEY, ["default"], True)
    assert default["path"] == str(aws / "credentials") and not default["failed"]
    assert (prod["access_key_id"], prod["exists"], prod["failed"]) == (None, True, False)
    assert (other["access_key_id"], other["exists"], other["profiles"]) == (None, False, [])
    assert other["path"] == os.path.join(backup.pw_dir, ".aws", "credentials")
    assert queried["summary"] == {"profiles": 3, "changed": 0, "failed": 0}

    planted = run({"profiles": [_entry(None, owner=deploy.pw_name),
                                _entry(None, "backup", OTHER_KEY, OTHER_SECRET, owner=backup.pw_name)]})
    assert planted["changed"] and planted["summary"] == {"profiles": 2, "changed": 2, "failed": 0}
    assert [o["planted_access_key_id"] for o in planted["outcomes"]] == [KEY, OTHER_KEY]
    # The existing file keeps its owner and mode; the new one is its owner's, private.
    assert _owned_by(aws / "credentials", deploy) == (deploy.pw_uid, deploy.pw_gid, 0o640)
    backup_aws = pathlib.Path(backup.pw_dir) / ".aws"
    assert _owned_by(backup_aws, backup) == (backup.pw_uid, backup.pw_gid, 0o700)
    assert _owned_by(backup_aws / "credentials", backup) == (backup.pw_uid, backup.pw_gid, 0o600)
    assert raw_config_parse(str(aws / "credentials"))["prod"]["aws_secret_access_key"] == SECRET
    assert raw_config_parse(str(aws / "credentials"))["default"]["aws_secret_access_key"] == FOREIGN_SECRET
    assert raw_config_parse(str(backup_aws / "credentials"))["backup"]["aws_secret_access_key"] == OTHER_SECRET

    again = run({"profiles": [_query(None, "prod", deploy.pw_name), _query(None, "backup", backup.pw_name)]})
    assert [o["access_key_id"] for o in again["outcomes"]] == [KEY, OTHER_KEY]


def test_a_refused_profile_fails_alone_and_the_next_is_written(run, tmp_path):
    (tmp_path / "theirs").mkdir()
    (tmp_path / "ours").mkdir()
    theirs, ours = tmp_path / "theirs" / "credentials", tmp_path / "ours" / "credentials"
    theirs.write_bytes(FOREIGN.encode())
    before = file_state(theirs)

    result = run({"profiles": [_entry(theirs, "default", replaceable_key_ids=[OTHER_KEY]), _entry(ours)]})
    assert not result.get("failed") and result["changed"]
    refused, written = result["outcomes"]
    assert refused["failed"] and not refused["changed"] and refused["path"] == str(theirs)
    assert refused["msg"] == ("refusing to overwrite profile default in %s: it holds key %s which is not a canary key "
                              "this play knows" % (theirs, FOREIGN_KEY))
    assert file_state(theirs) == before and os.listdir(theirs.parent) == ["credentials"]
    assert not written["failed"] and written["changed"] and written["planted_access_key_id"] == KEY
    assert raw_config_parse(str(ours))["prod"] == {"aws_access_key_id": KEY, "aws_secret_access_key": SECRET}
    assert result["summary"] == {"profiles": 2, "changed": 1, "failed": 1}


def test_an_unknown_owner_fails_its_entry_and_the_others_are_done(run, tmp_path):
    path = tmp_path / "credentials"
    result = run({"profiles": [_entry(path, owner="no-such-user-ck"), _entry(path, "staging"), _query(path, "staging")]})
    assert not result.get("failed")
    unknown, written, queried = result["outcomes"]
    assert unknown["failed"] and unknown["msg"] == "user no-such-user-ck does not exist on this host"
    assert written["changed"] and not written["failed"]
    # The entries run in order: the query sees what the entry before it wrote.
    assert queried["access_key_id"] == KEY and queried["profiles"] == ["staging"]
    assert list(raw_config_parse(str(path))) == ["staging"]
    assert result["summary"] == {"profiles": 3, "changed": 1, "failed": 1}


def test_two_profiles_of_one_file_are_planted_and_retired_in_one_run_each(run, tmp_path):
    path = tmp_path / "credentials"
    path.write_bytes(FOREIGN.encode())
    planted = run({"profiles": [_entry(path, "prod"), _entry(path, "staging", OTHER_KEY, OTHER_SECRET)]})
    assert planted["summary"] == {"profiles": 2, "changed": 2, "failed": 0}
    assert list(raw_config_parse(str(path))) == ["default", "prod", "staging"]
    retired = run({"profiles": [{"owner": current_user(), "path": str(path), "profile": profile, "access_key_id": key,
                                 "state": "absent"} for profile, key in (("prod", KEY), ("staging", OTHER_KEY))]})
    assert retired["summary"] == {"profiles": 2, "changed": 2, "failed": 0}
    assert path.read_bytes() == FOREIGN.encode()


def test_check_mode_writes_nothing_and_reports_the_changes(run, tmp_path):
    existing, new = tmp_path / "credentials", tmp_path / "new" / "credentials"
    existing.write_bytes(FOREIGN.encode())
    before = file_state(existing)
    result = run({"profiles": [_entry(existing), _entry(new, key=OTHER_KEY, secret=OTHER_SECRET), _query(existing)]},
                 check=True)
    assert result["changed"] and result["summary"] == {"profiles": 3, "changed": 2, "failed": 0}
    assert [o["planted_access_key_id"] for o in result["outcomes"]] == [KEY, OTHER_KEY, None]
    assert file_state(existing) == before and not new.parent.exists()
    assert "diff" not in result


def test_diff_mode_gives_one_masked_diff_per_changed_file(run, tmp_path):
    first, second, config = tmp_path / "first", tmp_path / "second", tmp_path / "config"
    first.write_bytes(FOREIGN.encode())
    second.write_bytes(FOREIGN.encode())
    run({"profiles": [_entry(second, "kept")]})

    result, output = run({"profiles": [_entry(first, region="us-east-1", config_path=str(config)),
                                       _entry(second, "kept"),
                                       _entry(second, "staging", OTHER_KEY, OTHER_SECRET)]},
                         diff=True, with_output=True)
    assert result["summary"] == {"profiles": 3, "changed": 2, "failed": 0}
    assert [(d["before_header"], d["after_header"]) for d in result["diff"]] == [
        (str(first), str(first)), (str(config), str(config)), (str(second), str(second))]
    first_diff, config_diff, second_diff = result["diff"]
    assert first_diff["before"] == "[default]\naws_access_key_id = %s\naws_secret_access_key = ********\n" % FOREIGN_KEY
    assert first_diff["after"].endswith("[prod]\naws_access_key_id = %s\naws_secret_access_key = ********\n" % KEY)
    assert config_diff["after"] == "[profile prod]\nregion = us-east-1\noutput = json\n"
    assert second_diff["after"].endswith("[staging]\naws_access_key_id = %s\naws_secret_access_key = ********\n"
                                         % OTHER_KEY)
    assert "kept" in second_diff["before"] and "********" in output
    # The diffs were of real writes: the files hold the secrets the output never showed.
    assert raw_config_parse(str(second))["staging"]["aws_secret_access_key"] == OTHER_SECRET


@pytest.mark.parametrize("broken, reason", [
    ({"profile": "prod", "access_key_id": OTHER_KEY}, "secret_access_key"),
    ({"profile": "prod", "access_key_id": OTHER_KEY, "secret_access_key": OTHER_SECRET, "state": "gone"}, "state"),
    ({"access_key_id": OTHER_KEY, "secret_access_key": OTHER_SECRET}, "profile"),
])
def test_invalid_options_fail_the_task_and_write_nothing(run, tmp_path, broken, reason):
    result = run({"profiles": [_entry(tmp_path / "credentials"),
                               dict(broken, owner=current_user(), path=str(tmp_path / "other"))]})
    assert result["failed"] and reason in result["msg"] and "outcomes" not in result
    assert os.listdir(tmp_path) == []


def test_very_verbose_output_of_a_write_leaks_no_secret(run, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    output = run({"profiles": [_entry(first), _entry(second, "staging", OTHER_KEY, OTHER_SECRET)]},
                 diff=True, verbosity=3, callback="default")
    # run() has searched the whole output for every secret; the key ids are there, so the output is not empty.
    assert "aws_access_key_id = %s" % KEY in output and "aws_access_key_id = %s" % OTHER_KEY in output
    assert raw_config_parse(str(second))["staging"]["aws_secret_access_key"] == OTHER_SECRET
