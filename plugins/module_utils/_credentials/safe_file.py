# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading and atomically replacing a file inside a user's home, safely as root.

The module runs as root inside users' home directories, which those users control: files are
reached through directory descriptors opened without following symlinks, a new file is private
from its creation, and an existing one keeps its owner and mode.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import time

from ansible_collections.canarykeys.aws.plugins.module_utils._credentials.errors import RefusedError

# O_PATH (Linux) walks directories the caller may search but not list; elsewhere O_RDONLY.
_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted at the path must not hang the module.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE_MODE = 0o600
NEW_DIR_MODE = 0o700


def _inside(path, directory):
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def resolve_path(path, home):
    """The real file behind ``path``, refusing a directory and a symlink that leads out of ``home``."""
    if not os.path.isabs(path):
        raise RefusedError("%s is not an absolute path" % path)
    normal = os.path.normpath(path)
    real = os.path.realpath(normal)
    if os.path.isdir(real):
        raise RefusedError("%s is a directory, not a credentials file" % path)
    if real != normal and not _inside(real, os.path.realpath(home)):
        # Root follows links planted in users' homes: one out of the home could make it
        # overwrite any file on the host.
        raise RefusedError("refusing %s: it resolves through a symlink to %s, outside the owner's home %s" % (path, real, home))
    return real


class TargetFile:
    """A file read and replaced atomically through a directory descriptor opened without
    following symlinks: a link swapped in after the checks makes the operation fail, not stray."""

    def __init__(self, real_path, owner_uid, owner_gid):
        self.path = real_path
        self.directory, self.name = os.path.split(real_path)
        self.owner = (owner_uid, owner_gid)
        self._dir_fd = None
        self._stat = None
        self._data = None

    def close(self):
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    @property
    def exists(self):
        return self._stat is not None

    def _open_directory(self, create):
        parts = [part for part in self.directory.split(os.sep) if part]
        fd = os.open(os.sep, _DIR_FLAGS)
        try:
            for position, part in enumerate(parts):
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    if position != len(parts) - 1:
                        raise RefusedError("%s does not exist" % os.sep.join([""] + parts[:position + 1])) from None
                    child = self._make_directory(fd, part)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise RefusedError("%s is not a directory, or was replaced by a symlink while it was checked"
                                           % os.sep.join([""] + parts[:position + 1])) from None
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _make_directory(self, parent_fd, name):
        os.mkdir(name, NEW_DIR_MODE, dir_fd=parent_fd)
        fd = os.open(name, _NEW_DIR_FLAGS, dir_fd=parent_fd)
        try:
            self._own(fd, self.owner, NEW_DIR_MODE, name)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read(self):
        """The file's bytes, or None when it does not exist."""
        self._dir_fd = self._open_directory(create=False)
        if self._dir_fd is None:
            return None
        try:
            fd = os.open(self.name, _READ_FLAGS, dir_fd=self._dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RefusedError("%s was replaced by a symlink while it was checked" % self.path) from None
            if exc.errno == errno.EACCES:
                raise RefusedError("%s cannot be read: permission denied (run with become?)" % self.path) from None
            raise
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise RefusedError("%s is a directory, not a credentials file" % self.path)
            if not stat.S_ISREG(info.st_mode):
                raise RefusedError("%s is not a regular file" % self.path)
            if info.st_nlink > 1:
                # Replacing it would split the links; and a hard link in a user's home may lead root
                # to a file the user could not read.
                raise RefusedError("%s has %d hard links; refusing to read or replace it" % (self.path, info.st_nlink))
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        self._stat = info
        self._data = b"".join(chunks)
        return self._data

    def write(self, data, backup=False):
        """Replace the file atomically with ``data``; return the backup's path when one was made.

        An existing file keeps its mode and owner; a new one is 0600 and owned by the owner."""
        if self._dir_fd is None:
            self._dir_fd = self._open_directory(create=True)
        self._check_unchanged()
        if self._stat is not None:
            mode, ids = stat.S_IMODE(self._stat.st_mode), (self._stat.st_uid, self._stat.st_gid)
        else:
            mode, ids = NEW_FILE_MODE, self.owner
        backup_path = None
        if backup and self._stat is not None:
            # The same name pattern as Ansible's backup_local, so existing clean-up jobs find it.
            backup_name = "%s.%s.%s" % (self.name, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S~"))
            self._create(backup_name, self._data, mode, ids)
            backup_path = os.path.join(self.directory, backup_name)
        temp_name = ".%s.%s.tmp" % (self.name, secrets.token_hex(4))
        self._create(temp_name, data, mode, ids)
        try:
            os.replace(temp_name, self.name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        except BaseException:
            os.unlink(temp_name, dir_fd=self._dir_fd)
            raise
        self._sync_directory()
        return backup_path

    def _sync_directory(self):
        # The rename is durable only once the directory is synced; an O_PATH descriptor cannot be.
        try:
            fd = os.open(".", _NEW_DIR_FLAGS, dir_fd=self._dir_fd)
        except OSError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _check_unchanged(self):
        # Another writer (aws configure, a second play) between our read and our write: refuse
        # rather than silently discard its change.
        try:
            now = os.stat(self.name, dir_fd=self._dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        before = self._stat
        if (now is None) != (before is None) or (now is not None and (
                (now.st_ino, now.st_size, now.st_mtime_ns) != (before.st_ino, before.st_size, before.st_mtime_ns))):
            raise RefusedError("%s changed while it was being edited; nothing was written" % self.path)

    def _create(self, name, data, mode, ids):
        fd = os.open(name, _CREATE_FLAGS, NEW_FILE_MODE, dir_fd=self._dir_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            self._own(fd, ids, mode, self.path)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(name, dir_fd=self._dir_fd)
            raise
        os.close(fd)

    @staticmethod
    def _own(fd, ids, mode, what):
        info = os.fstat(fd)
        if (info.st_uid, info.st_gid) != tuple(ids):
            try:
                os.fchown(fd, ids[0], ids[1])
            except PermissionError:
                raise RefusedError("%s would not keep owner %s:%s without root privileges (run with become)"
                                   % (what, ids[0], ids[1])) from None
        # After chown, which may clear mode bits; explicit, because the umask narrowed the create mode.
        os.fchmod(fd, mode)
