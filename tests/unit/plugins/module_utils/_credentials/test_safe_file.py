# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files are read and replaced atomically, privately and without following symlinks out of the home."""

from __future__ import annotations

import os
import pathlib
import stat

import pytest

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import errors
from ansible_collections.canarykeys.aws.plugins.module_utils._credentials import safe_file

# ------------------------------------------------------------------------------ files on disk


def _write(target_path, home, data, backup=False):
    real = safe_file.resolve_path(str(target_path), str(home))
    with safe_file.TargetFile(real, os.getuid(), os.getgid()) as target:
        target.read()
        return target.write(data, backup=backup)


def test_new_file_and_directory_get_private_modes(home):
    old_umask = os.umask(0)
    try:
        _write(home / ".aws" / "credentials", home, b"[a]\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((home / ".aws").stat().st_mode) == 0o700
    assert stat.S_IMODE((home / ".aws" / "credentials").stat().st_mode) == 0o600
    assert (home / ".aws" / "credentials").read_bytes() == b"[a]\n"
    assert os.listdir(home / ".aws") == ["credentials"]


def test_existing_file_keeps_its_mode_and_backup_keeps_the_old_bytes(home):
    path = home / "credentials"
    path.write_bytes(b"[old]\n")
    path.chmod(0o640)
    backup = _write(path, home, b"[new]\n", backup=True)
    assert path.read_bytes() == b"[new]\n" and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert backup.startswith(str(path) + ".") and backup.endswith("~")
    assert pathlib.Path(backup).read_bytes() == b"[old]\n"
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o640


def test_symlink_inside_home_is_followed_and_kept(home):
    (home / "dotfiles").mkdir()
    (home / "dotfiles" / "aws-credentials").write_bytes(b"[a]\n")
    (home / ".aws").mkdir()
    link = home / ".aws" / "credentials"
    link.symlink_to(home / "dotfiles" / "aws-credentials")
    _write(link, home, b"[b]\n")
    assert link.is_symlink() and (home / "dotfiles" / "aws-credentials").read_bytes() == b"[b]\n"


def test_symlink_out_of_home_and_directories_are_refused(home, tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"[a]\n")
    (home / "creds").symlink_to(outside)
    with pytest.raises(errors.RefusedError, match="outside the owner's home"):
        safe_file.resolve_path(str(home / "creds"), str(home))
    (home / "dir").mkdir()
    with pytest.raises(errors.RefusedError, match="is a directory"):
        safe_file.resolve_path(str(home / "dir"), str(home))
    with pytest.raises(errors.RefusedError, match="not an absolute path"):
        safe_file.resolve_path("creds", str(home))
    assert outside.read_bytes() == b"[a]\n"


def test_a_fifo_is_refused_without_hanging(home):
    os.mkfifo(home / "credentials")
    with safe_file.TargetFile(str(home / "credentials"), os.getuid(), os.getgid()) as target:
        with pytest.raises(errors.RefusedError, match="not a regular file"):
            target.read()


def test_a_hard_linked_file_is_refused(home):
    (home / "credentials").write_bytes(b"[a]\n")
    os.link(home / "credentials", home / "other")
    with safe_file.TargetFile(str(home / "credentials"), os.getuid(), os.getgid()) as target:
        with pytest.raises(errors.RefusedError, match="2 hard links"):
            target.read()


def test_a_symlink_swapped_in_after_the_checks_is_refused(home, tmp_path):
    (home / ".aws").mkdir()
    real = safe_file.resolve_path(str(home / ".aws" / "credentials"), str(home))
    (home / ".aws").rename(home / "aws-moved")
    (home / ".aws").symlink_to(tmp_path)
    with safe_file.TargetFile(real, os.getuid(), os.getgid()) as target:
        with pytest.raises(errors.RefusedError, match="replaced by a symlink"):
            target.read()
    assert not (tmp_path / "credentials").exists()


def test_a_concurrent_change_is_not_overwritten(home):
    path = home / "credentials"
    path.write_bytes(b"[a]\n")
    with safe_file.TargetFile(str(path), os.getuid(), os.getgid()) as target:
        target.read()
        path.write_bytes(b"[a]\n[b]\n")
        with pytest.raises(errors.RefusedError, match="changed while"):
            target.write(b"[c]\n")
    assert path.read_bytes() == b"[a]\n[b]\n"
    assert os.listdir(home) == ["credentials"]


def test_missing_directories_are_read_as_a_missing_file_and_only_the_last_is_created(home):
    with safe_file.TargetFile(str(home / "no" / "such" / "credentials"), os.getuid(), os.getgid()) as target:
        assert target.read() is None and not target.exists
        with pytest.raises(errors.RefusedError, match="does not exist"):
            target.write(b"[a]\n")
