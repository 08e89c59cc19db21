# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The credentials_profile module, run for real by the ``ansible`` CLI against files in a temp dir.

The module runs under the host's bare /usr/bin/python3 (no boto3, no Ansible installed) when there
is one, as on the fleet. Every run's whole output is searched for the secrets the test used
(ansible_cli.py); the throwaway OS users come from conftest.py."""

from __future__ import annotations

import functools
import os
import pathlib
import stat

import pytest
from botocore.configloader import raw_config_parse

from ansible_cli import current_user as _me, file_state as _state, run_ansible

MODULE = "canarykeys.aws.credentials_profile"

KEY = "AKIAQTESTKEY00000001"
SECRET = "ckTestSecret/" + "N3w" * 9
NEXT_KEY = "AKIAQTESTKEY00000002"
NEXT_SECRET = "ckTestSecret/" + "R0t" * 9
FOREIGN_KEY = "AKIAQFOREIGN00000009"
FOREIGN_SECRET = "ckForeignSecret/" + "F0r" * 8
ALL_SECRETS = (SECRET, NEXT_SECRET, FOREIGN_SECRET)

FOREIGN = (
    "# hand-written\r\n"
    "[default]\r\n"
    "aws_access_key_id=%s\r\n"
    "aws_secret_access_key  =  %s\r\n"
    "\r\n"
    "; legacy\r\n"
    "[legacy]\r\n"
    "region: eu-west-1"
) % (FOREIGN_KEY, FOREIGN_SECRET)


@pytest.fixture(name="run")
def fixture_run(ansible_collections_path):
    return functools.partial(run_ansible, ansible_collections_path, MODULE, ALL_SECRETS)


def _present(path, key=KEY, secret=SECRET, **extra):
    args = {"owner": _me(), "path": str(path), "profile": "prod", "access_key_id": key, "secret_access_key": secret}
    args.update(extra)
    return args


def test_plant_rerun_rotate_query_and_retire_restore_the_file(run, tmp_path):
    path = tmp_path / "credentials"
    path.write_bytes(FOREIGN.encode())
    path.chmod(0o640)

    planted = run(_present(path))
    assert planted["changed"] and planted["access_key_id"] is None and planted["planted_access_key_id"] == KEY
    # A final newline, as `aws configure` leaves one; the blank line as the file separates its sections.
    assert path.read_bytes() == (FOREIGN + "\r\n\r\n[prod]\r\naws_access_key_id = %s\r\naws_secret_access_key = %s\r\n"
                                 % (KEY, SECRET)).encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    read = raw_config_parse(str(path))
    assert read["prod"] == {"aws_access_key_id": KEY, "aws_secret_access_key": SECRET}
    assert read["default"]["aws_secret_access_key"] == FOREIGN_SECRET

    again = run(_present(path))
    assert not again["changed"] and again["access_key_id"] == KEY

    queried = run({"owner": _me(), "path": str(path), "profile": "prod", "state": "query"})
    assert queried["access_key_id"] == KEY and queried["exists"] and queried["profiles"] == ["default", "legacy", "prod"]
    assert not queried["changed"]

    rotated = run(_present(path, NEXT_KEY, NEXT_SECRET, replaceable_key_ids=[KEY]))
    assert rotated["changed"] and rotated["access_key_id"] == KEY and rotated["planted_access_key_id"] == NEXT_KEY
    assert raw_config_parse(str(path))["prod"]["aws_secret_access_key"] == NEXT_SECRET

    stale = run({"owner": _me(), "path": str(path), "profile": "prod", "access_key_id": KEY, "state": "absent"})
    assert not stale["changed"] and "left alone" in stale["msg"]

    retired = run({"owner": _me(), "path": str(path), "profile": "prod", "access_key_id": NEXT_KEY, "state": "absent"})
    assert retired["changed"] and retired["access_key_id"] == NEXT_KEY and retired["planted_access_key_id"] is None
    assert path.read_bytes() == (FOREIGN + "\r\n").encode()


def test_query_of_a_missing_file_is_not_an_error(run, tmp_path):
    result = run({"owner": _me(), "path": str(tmp_path / "none" / "credentials"), "profile": "prod", "state": "query"})
    assert not result.get("failed") and not result["exists"]
    assert result["access_key_id"] is None and result["profiles"] == []
    assert not (tmp_path / "none").exists()


def test_a_foreign_profile_is_refused_and_left_byte_identical(run, tmp_path):
    path = tmp_path / "credentials"
    path.write_bytes(FOREIGN.encode())
    before = _state(path)
    result = run(dict(_present(path), profile="default", replaceable_key_ids=[NEXT_KEY]))
    assert result["failed"]
    assert result["msg"] == ("refusing to overwrite profile default in %s: it holds key %s which is not a canary key "
                             "this play knows" % (path, FOREIGN_KEY))
    assert _state(path) == before and os.listdir(tmp_path) == ["credentials"]


@pytest.mark.parametrize("content, reason", [
    (b"aws_access_key_id = AKIA\n[prod]\n", "before the first [section]"),
    (b"[prod]\nx = 1\n[prod]\n", "appears more than once"),
    (b"[a]\ns3 =\n    no equals sign\n", "indented block"),
])
def test_a_malformed_file_fails_and_stays_untouched(run, tmp_path, content, reason):
    path = tmp_path / "credentials"
    path.write_bytes(content)
    before = _state(path)
    result = run(_present(path, profile="other"))
    assert result["failed"] and reason in result["msg"] and "cannot be parsed by the AWS CLI" in result["msg"]
    assert _state(path) == before


def test_a_secret_in_the_wrong_place_is_never_echoed(run, tmp_path):
    # botocore reads "aws_access_key_id =" and an indented line as a nested block: the secret
    # is not a key id and must not reach the message or the result (run() searches the output).
    path = tmp_path / "credentials"
    path.write_bytes(("[prod]\naws_access_key_id =\n    aws_secret_access_key = %s\n" % FOREIGN_SECRET).encode())
    before = _state(path)
    for args in ({"owner": _me(), "path": str(path), "profile": "prod", "state": "query"},
                 _present(path, replaceable_key_ids=[FOREIGN_KEY])):
        result = run(args)
        assert result["failed"] and "has an aws_access_key_id that is not an access key id" in result["msg"]
    assert _state(path) == before


def test_a_directory_is_refused(run, tmp_path):
    result = run(_present(tmp_path))
    assert result["failed"] and "is a directory" in result["msg"]
    assert os.listdir(tmp_path) == []


def test_a_symlink_out_of_the_home_is_refused(run, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"[x]\na = 1\n")
    before = _state(target)
    (tmp_path / "credentials").symlink_to(target)
    for state in ("query", "present"):
        result = run(dict(_present(tmp_path / "credentials"), state=state))
        assert result["failed"] and "outside the owner's home" in result["msg"]
    assert _state(target) == before


def test_an_unknown_user_fails_with_one_message(run, tmp_path):
    result = run(dict(_present(tmp_path / "credentials"), owner="no-such-user-ck"))
    assert result["failed"] and result["msg"] == "user no-such-user-ck does not exist on this host"


def test_check_mode_writes_nothing_and_the_diff_masks_every_secret(run, tmp_path):
    path = tmp_path / "credentials"
    path.write_bytes(FOREIGN.encode())
    before = _state(path)
    config = tmp_path / "config"
    result, output = run(_present(path, region="us-east-1", config_path=str(config)), check=True, diff=True, with_output=True)
    assert result["changed"] and result["planted_access_key_id"] == KEY
    assert _state(path) == before and not config.exists()
    credentials_diff, config_diff = result["diff"]
    assert credentials_diff["before_header"] == credentials_diff["after_header"] == str(path)
    assert "aws_secret_access_key  =  ********\r\n" in credentials_diff["before"]
    assert credentials_diff["after"].endswith("[prod]\r\naws_access_key_id = %s\r\naws_secret_access_key = ********\r\n" % KEY)
    assert config_diff["after"] == "[profile prod]\nregion = us-east-1\noutput = json\n"
    assert "********" in output


def test_verbose_default_output_leaks_no_secret(run, tmp_path):
    path = tmp_path / "credentials"
    path.write_bytes(FOREIGN.encode())
    output = run(_present(path), diff=True, verbosity=4, callback="default")
    assert "aws_access_key_id = %s" % KEY in output
    assert raw_config_parse(str(path))["prod"]["aws_secret_access_key"] == SECRET


def test_region_goes_to_the_config_file_and_leaves_with_the_profile(run, tmp_path):
    path, config = tmp_path / "credentials", tmp_path / "config"
    config.write_bytes(b"[default]\nregion = eu-west-1\n")
    config.chmod(0o644)
    extra = {"region": "us-east-1", "config_path": str(config)}
    result = run(_present(path, **extra))
    assert result["changed"] and result["config_path"] == str(config)
    # As `aws configure --profile prod` writes it (region us-east-1, output json).
    assert config.read_bytes() == b"[default]\nregion = eu-west-1\n[profile prod]\nregion = us-east-1\noutput = json\n"
    assert stat.S_IMODE(config.stat().st_mode) == 0o644
    rerun = run(_present(path, **extra))
    assert not rerun["changed"] and not rerun.get("warnings")
    result = run({"owner": _me(), "path": str(path), "profile": "prod", "access_key_id": KEY, "state": "absent", **extra})
    assert result["changed"] and config.read_bytes() == b"[default]\nregion = eu-west-1\n"
    assert path.read_bytes() == b""


def test_a_config_section_set_up_by_someone_else_is_left_alone_with_a_warning(run, tmp_path):
    path, config = tmp_path / "credentials", tmp_path / "config"
    config.write_bytes(b"[profile prod]\nregion = eu-west-1\noutput = text\n")
    result = run(_present(path, region="us-east-1", config_path=str(config)))
    assert result["changed"] and "left alone" in result["msg"] and result["warnings"]
    assert config.read_bytes() == b"[profile prod]\nregion = eu-west-1\noutput = text\n"


def test_backup_keeps_the_old_file(run, tmp_path):
    path = tmp_path / "credentials"
    path.write_bytes(FOREIGN.encode())
    result = run(_present(path, backup=True))
    backup = pathlib.Path(result["backup_file"])
    assert backup.parent == tmp_path and backup.name.startswith("credentials.") and backup.name.endswith("~")
    assert backup.read_bytes() == FOREIGN.encode()
    unchanged = run(_present(path, backup=True))
    assert "backup_file" not in unchanged and len(os.listdir(tmp_path)) == 2


# ------------------------------------------------------------------------------ another OS user (root only)


def _user_args(user, **extra):
    args = {"owner": user.pw_name, "profile": "prod", "access_key_id": KEY, "secret_access_key": SECRET}
    args.update(extra)
    return args


def test_as_root_for_another_user_the_file_is_private_and_theirs(run, user):
    result = run(_user_args(user, region="us-east-1"))
    aws = pathlib.Path(user.pw_dir) / ".aws"
    assert result["changed"] and result["path"] == str(aws / "credentials")
    for path, mode in ((aws, 0o700), (aws / "credentials", 0o600), (aws / "config", 0o600)):
        info = path.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (mode, user.pw_uid, user.pw_gid), path
    assert raw_config_parse(str(aws / "credentials"))["prod"]["aws_access_key_id"] == KEY


def test_a_tilde_path_means_the_owners_home(run, user):
    result = run(_user_args(user, path="~/.aws/alt-credentials"))
    assert result["path"] == os.path.join(user.pw_dir, ".aws", "alt-credentials")
    assert (pathlib.Path(user.pw_dir) / ".aws" / "alt-credentials").stat().st_uid == user.pw_uid
    named = run(_user_args(user, path="~%s/.aws/alt-credentials" % user.pw_name, state="query"))
    assert named["path"] == result["path"] and named["access_key_id"] == KEY


def test_a_dotfile_symlink_inside_the_home_is_followed(run, user):
    home = pathlib.Path(user.pw_dir)
    (home / "dotfiles").mkdir()
    (home / "dotfiles" / "aws-credentials").write_bytes(FOREIGN.encode())
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").symlink_to(home / "dotfiles" / "aws-credentials")
    result = run(_user_args(user))
    assert result["changed"] and (home / ".aws" / "credentials").is_symlink()
    assert (home / "dotfiles" / "aws-credentials").read_bytes().startswith(FOREIGN.encode() + b"\r\n\r\n[prod]")


def test_as_the_owner_itself_without_root(run, user):
    result = run(_user_args(user), become_user=user.pw_name)
    assert result["changed"]
    info = (pathlib.Path(user.pw_dir) / ".aws" / "credentials").stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, user.pw_uid)
    # A root-owned file in the user's home cannot keep its owner when the user rewrites it.
    root_file = pathlib.Path(user.pw_dir) / ".aws" / "root-owned"
    root_file.write_bytes(b"")
    root_file.chmod(0o644)
    refused = run(_user_args(user, path=str(root_file)), become_user=user.pw_name)
    assert refused["failed"] and "without root privileges" in refused["msg"] and root_file.read_bytes() == b""
