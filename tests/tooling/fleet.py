#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fleet of real SSH hosts on one machine, for the integration tests and the benchmark.

Each host is one ``sshd`` in its own mount namespace, with private directories bind-mounted over
``/home`` and ``/root`` and its own port on 127.0.0.1.  The OS users are real (their uids come from
the global ``/etc/passwd``, where the fleet adds the ones missing), but each host has its own
``/etc/passwd`` and ``/etc/shadow`` (bind-mounted copies) in which the fleet's users have the home,
shell and login the fleet needs: a machine whose own ``deploy`` or ``ops`` has another home, a
nologin shell or a locked password runs the fleet as well, and its real accounts are never changed.
A host's state lives in ``<dir>/<host>/{home,root,etc,run,log}``, so its files can be read from
outside without SSH.  Every host has the fleet's one host key; ``<dir>/keys/known_hosts`` lists it
for each host's port, and the inventory and ``ssh_argv`` check host keys against that file.

Stdlib only, so the same file runs under the repo's virtualenv (tests) and under the system
``/usr/bin/python3`` (CLI on a bare machine).  See docs/testing.md.

    python tests/tooling/fleet.py up --dir .sandbox/fleet --webservers 2 --laptops 2 --inventory inv.yml
    python tests/tooling/fleet.py down --dir .sandbox/fleet
    python tests/tooling/fleet.py hosttools
    python tests/tooling/fleet.py accounts --webservers 2 --laptops 2
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import pathlib
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ADMIN_USER = "ops"
APP_USER = "deploy"
# Laptop owners, in order; a fleet with more laptops than names reuses them with a suffix (alice2).
PEOPLE = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "kevin", "laura", "mike",
    "nina", "oscar", "peggy", "quinn", "rita", "sam", "tina", "uma", "victor", "wendy", "xavier", "yara", "zoe",
)
ACCOUNT_COMMENT = "canarykeys.aws test fleet"

# Host-side tools (AWS CLI, boto3) must run on the system interpreter: inside a host the real /root
# is hidden, and with it any interpreter or virtualenv that lives there (pyenv).
HOST_PYTHON = "/usr/bin/python3"
HOSTTOOLS = pathlib.Path("/opt/canarykeys-hosttools")
HOST_PATH = f"{HOSTTOOLS}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
SUDOERS_DROPIN = pathlib.Path("/etc/sudoers.d/canarykeys-fleet")
MARKER = ".canarykeys-fleet"
STATE = "fleet.json"
# Serialises changes to global state (/etc/passwd, sudoers, /opt) between concurrent test sessions.
LOCK_FILE = pathlib.Path(tempfile.gettempdir()) / "canarykeys-fleet.lock"
REQUIRED_TOOLS = ("ssh", "ssh-keygen", "unshare", "nsenter", "runuser", "useradd", "sudo", "visudo", "mount", "umount")
# The login shell every fleet user has inside the hosts, whatever its real one (often nologin).
FLEET_SHELL = "/bin/bash"
START_TIMEOUT = 20.0
BIND_RETRIES = 5


class FleetError(RuntimeError):
    """The fleet could not be brought up, reached or taken down."""


@dataclasses.dataclass
class Host:
    """One host of the fleet: its inventory group, who logs in, and whose homes it has."""

    name: str
    group: str
    login_user: str
    users: list
    become: bool
    port: int = 0


def unavailable_reason():
    """One line saying why a fleet cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the SSH test fleet needs root (one sshd per host in its own mount namespace)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    missing += [path for path in (SSHD, HOST_PYTHON) if not os.access(path, os.X_OK)]
    if missing:
        return "the SSH test fleet needs " + ", ".join(missing) + " (run tests/tooling/system_deps.sh)"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return "the SSH test fleet needs mount namespaces, and unshare --mount failed here"
    return None


def plan_hosts(webservers=2, laptops=2):
    """Host specs: web01..webNN (admin login, become) and laptop-<person> (the person logs in)."""
    hosts = [Host(f"web{i:02d}", "webservers", ADMIN_USER, [ADMIN_USER, APP_USER], True) for i in range(1, webservers + 1)]
    for i in range(laptops):
        person = PEOPLE[i % len(PEOPLE)] + (str(i // len(PEOPLE) + 1) if i >= len(PEOPLE) else "")
        hosts.append(Host(f"laptop-{person}", "laptops", person, [person], False))
    return hosts


def home_inside(user):
    """A user's home directory as seen inside a host."""
    return "/root" if user == "root" else f"/home/{user}"


def free_ports(count):
    """Ports the kernel says are free now; the sockets stay open until all are picked so none repeats."""
    socks = []
    try:
        for _index in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@contextlib.contextmanager
def _global_lock():
    with open(LOCK_FILE, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv, **kwargs):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise FleetError(f"{shlex.join(argv)} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
    return proc


def _run_retrying(argv, attempts=10):
    # useradd fails at once when another process holds the /etc/passwd lock.
    for attempt in range(attempts):
        try:
            return _run(argv)
        except FleetError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)
    return None


def ensure_accounts(users, admins):
    """Create the fleet's OS users missing here (global) and let the admins sudo without a password.

    A user that exists already is taken as it is (its uid and group); whatever its home, shell or
    password, the hosts' own passwd and shadow (``host_user_database``) give it what the fleet needs.
    """
    with _global_lock():
        for user in users:
            try:
                pwd.getpwnam(user)
            except KeyError:
                _run_retrying(["useradd", "--no-create-home", "--home-dir", home_inside(user), "--shell", FLEET_SHELL,
                               "--user-group", "--comment", ACCOUNT_COMMENT, user])
        rules = "".join(f"{admin} ALL=(ALL:ALL) NOPASSWD: ALL\n" for admin in sorted(admins))
        text = "# canarykeys.aws test fleet: the admin login user becomes root without a password (Ansible become).\n" + rules
        if not SUDOERS_DROPIN.exists() or SUDOERS_DROPIN.read_text(encoding="utf-8") != text:
            staged = SUDOERS_DROPIN.with_name(".canarykeys-fleet.new")
            staged.write_text(text, encoding="utf-8")
            staged.chmod(0o440)
            try:
                _run(["visudo", "-c", "-q", "-f", str(staged)])
            except FleetError:
                staged.unlink()
                raise
            staged.rename(SUDOERS_DROPIN)


def host_user_database(users, passwd_text):
    """(passwd, shadow) text of a host: the machine's passwd, with ``users`` as the fleet needs them.

    Each of ``users`` gets its home under /home (/root for root) and a login shell; in the shadow they
    have no password but are not locked ("*": with UsePAM no, sshd refuses a "!" account even for a key
    login), and every other account is locked ("!"): no real password hash is ever copied.
    """
    users = set(users)
    today = int(time.time() // 86400)
    passwd_lines, shadow_lines = [], []
    for line in passwd_text.splitlines():
        fields = line.split(":")
        if len(fields) != 7 or not fields[0] or fields[0].startswith(("+", "-")):
            continue
        if fields[0] in users:
            fields[5], fields[6] = home_inside(fields[0]), FLEET_SHELL
        passwd_lines.append(":".join(fields))
        shadow_lines.append(f"{fields[0]}:{'*' if fields[0] in users else '!'}:{today}:0:99999:7:::")
    missing = users - {line.split(":", 1)[0] for line in passwd_lines}
    if missing:
        raise FleetError(f"users {', '.join(sorted(missing))} are not in /etc/passwd (fleet.py accounts makes them)")
    return "\n".join(passwd_lines) + "\n", "\n".join(shadow_lines) + "\n"


def ensure_host_accounts(hosts):
    """The OS users of these hosts (``plan_hosts``), and sudo for their admin logins."""
    hosts = list(hosts)
    ensure_accounts(sorted({user for host in hosts for user in host.users}),
                    sorted({host.login_user for host in hosts if host.become}))


def _mkdir(path, mode, user=None):
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _is_alive(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            # A zombie holds its pid but no namespace: it is gone for our purposes.
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _dir_identity(path):
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def _processes_by_home(homes):
    """Pids of processes in any mount namespace whose /home is one of ``homes`` ({(dev, ino): host}).

    That identifies a host's processes exactly (its sshd, the sessions, commands run inside it)
    without trusting a pidfile a crashed run may have left, and never matches anyone else's process.
    """
    own = os.readlink("/proc/self/ns/mnt")
    by_namespace = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            namespace = os.readlink(f"/proc/{entry.name}/ns/mnt")
        except OSError:
            continue
        if namespace != own:
            by_namespace.setdefault(namespace, []).append(int(entry.name))
    found = {}
    for pids in by_namespace.values():
        for pid in pids:
            try:
                host = homes.get(_dir_identity(f"/proc/{pid}/root/home"))
            except OSError:
                continue
            if host is not None:
                found.setdefault(host, []).extend(pids)
            break
    return found


def _kill_all(pids, timeout=5.0):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_is_alive(pid) for pid in pids):
            time.sleep(0.02)
        if not any(_is_alive(pid) for pid in pids):
            return
    raise FleetError(f"processes survived SIGKILL: {[pid for pid in pids if _is_alive(pid)]}")


def _host_homes(directory):
    homes = {}
    if directory.is_dir():
        for child in directory.iterdir():
            if (child / "home").is_dir() and not child.is_symlink():
                homes[_dir_identity(child / "home")] = child.name
    return homes


def _mounts_under(directory):
    prefix = str(directory.resolve())
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def teardown(directory):
    """Stop every host of the fleet in ``directory`` and remove it; safe after a crashed run."""
    directory = pathlib.Path(directory)
    if not directory.exists():
        return
    if not (directory / MARKER).exists() and any(directory.iterdir()):
        raise FleetError(f"{directory} is not a fleet directory (no {MARKER}); refusing to remove it")
    # One kill for all hosts: a 50-host fleet goes down as fast as one host.
    _kill_all([pid for pids in _processes_by_home(_host_homes(directory)).values() for pid in pids])
    # Mounts live in the hosts' namespaces and die with them; this only catches a bind made by hand.
    for point in _mounts_under(directory):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    shutil.rmtree(directory)


def reap_stale(parent):
    """Tear down fleets under ``parent`` whose owning process (a test session) is gone."""
    parent = pathlib.Path(parent)
    if not parent.is_dir():
        return []
    reaped = []
    for child in parent.iterdir():
        try:
            owner = json.loads((child / STATE).read_text(encoding="utf-8")).get("owner_pid")
        except (OSError, ValueError):
            continue
        # A fleet without an owner was brought up by the CLI: it stays until `down`.
        if owner is not None and not _is_alive(owner):
            teardown(child)
            reaped.append(child)
    return reaped


def _yaml_lines(value, indent=0):
    """Block YAML for nested dicts of scalars; JSON string quoting is valid YAML double quoting."""
    lines = []
    for key, item in value.items():
        pad = " " * indent
        if isinstance(item, dict):
            lines.append(f"{pad}{key}:" + ("" if item else " {}"))
            lines += _yaml_lines(item, indent + 2)
        elif isinstance(item, bool):
            lines.append(f"{pad}{key}: {'true' if item else 'false'}")
        elif isinstance(item, int):
            lines.append(f"{pad}{key}: {item}")
        else:
            lines.append(f"{pad}{key}: {json.dumps(str(item))}")
    return lines


class Fleet:
    """The fleet in one directory: bring it up, reach into its hosts, take it down."""

    def __init__(self, directory, hosts, owner_pid=None):
        self.dir = pathlib.Path(directory).absolute()
        for hidden in ("/home", "/root"):
            if self.dir == pathlib.Path(hidden) or pathlib.Path(hidden) in self.dir.parents:
                raise FleetError(f"the fleet directory {self.dir} must be outside {hidden}, which every host hides")
        self.hosts = {host.name: host for host in hosts}
        self.owner_pid = owner_pid
        self.key = self.dir / "keys" / "id_ed25519"
        self.host_key = self.dir / "keys" / "ssh_host_ed25519_key"
        # The fleet's host key at each host's port: what the inventory and ssh_argv check hosts against.
        self.known_hosts = self.dir / "keys" / "known_hosts"
        self.inventory_path = None

    @classmethod
    def create(cls, directory, webservers=2, laptops=2, owner_pid=None):
        return cls(directory, plan_hosts(webservers, laptops), owner_pid)

    @classmethod
    def load(cls, directory):
        """The fleet that `up` recorded in ``directory`` (for another process: CLI, benchmark)."""
        state = json.loads((pathlib.Path(directory) / STATE).read_text(encoding="utf-8"))
        fleet = cls(directory, [Host(**host) for host in state["hosts"]], state.get("owner_pid"))
        fleet.inventory_path = state.get("inventory")
        return fleet

    # -- paths --------------------------------------------------------------------------------------

    def host(self, name):
        try:
            return self.hosts[name]
        except KeyError:
            raise FleetError(f"no host {name} in the fleet ({', '.join(self.hosts)})") from None

    def group(self, group):
        return [host for host in self.hosts.values() if host.group == group]

    def host_dir(self, name):
        return self.dir / self.host(name).name

    def outside_path(self, host, user, path=".aws/credentials"):
        """Where a file of ``user`` on ``host`` lives on the real filesystem.

        ``path`` is relative to the user's home, or absolute inside the host under /home or /root.
        """
        inside = pathlib.PurePosixPath(path)
        if not inside.is_absolute():
            inside = pathlib.PurePosixPath(home_inside(user)) / inside
        for top in ("home", "root"):
            if inside.parts[1:2] == (top,):
                return self.host_dir(host).joinpath(top, *inside.parts[2:])
        raise FleetError(f"{inside}: only files under /home and /root are private to a host")

    # -- lifecycle ----------------------------------------------------------------------------------

    def up(self):
        """Bring every host up (replacing whatever a previous run left in the directory)."""
        reason = unavailable_reason()
        if reason:
            raise FleetError(reason)
        teardown(self.dir)
        self.dir.mkdir(parents=True)
        (self.dir / MARKER).write_text("canarykeys.aws test fleet; remove with: fleet.py down --dir .\n", encoding="utf-8")
        # The owner is recorded before anything runs, so a concurrent reap_stale never takes a fleet
        # that is still being built for a live session.
        self._save()
        ensure_host_accounts(self.hosts.values())
        _mkdir(self.dir / "keys", 0o700)
        for key in (self.key, self.host_key):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "canarykeys-fleet", "-f", str(key)])
        # sshd's privilege-separation directory; /run is a fresh tmpfs after a reboot.
        _mkdir(pathlib.Path("/run/sshd"), 0o755)
        for host, port in zip(self.hosts.values(), free_ports(len(self.hosts))):
            host.port = port
            self._prepare(host)
        self._save()
        self._start(list(self.hosts.values()))
        return self

    def down(self):
        teardown(self.dir)

    def stop_host(self, name):
        """Take a host offline: its sshd and every session and command inside it end."""
        host_dir = self.host_dir(name)
        for pids in _processes_by_home({_dir_identity(host_dir / "home"): name}).values():
            _kill_all(pids)
        with contextlib.suppress(FileNotFoundError):
            (host_dir / "run" / "sshd.pid").unlink()

    def start_host(self, name):
        """Bring an offline host back on its old port (the inventory stays valid)."""
        if self.is_up(name):
            return
        self._start([self.host(name)], keep_ports=True)

    def is_up(self, name):
        try:
            self.pid(name)
        except FleetError:
            return False
        return True

    def pid(self, name):
        """The pid of a running host's sshd (checked to be that host's, not a stale pidfile's)."""
        host_dir = self.host_dir(name)
        try:
            pid = int((host_dir / "run" / "sshd.pid").read_text(encoding="utf-8").split()[0])
            if _is_alive(pid) and _dir_identity(f"/proc/{pid}/root/home") == _dir_identity(host_dir / "home"):
                return pid
        except (OSError, ValueError, IndexError):
            pass
        raise FleetError(f"host {name} is not running")

    def _prepare(self, host):
        host_dir = self.dir / host.name
        for sub, mode in (("home", 0o755), ("root", 0o700), ("etc", 0o755), ("run", 0o755), ("log", 0o755)):
            _mkdir(host_dir / sub, mode)
        for user in host.users:
            _mkdir(host_dir / "home" / user, 0o750, user)
        with open("/etc/passwd", encoding="utf-8") as passwd:
            passwd_text, shadow_text = host_user_database(host.users, passwd.read())
        (host_dir / "etc" / "passwd").write_text(passwd_text, encoding="utf-8")
        os.chmod(host_dir / "etc" / "passwd", 0o644)
        shadow = host_dir / "etc" / "shadow"
        shadow.write_text(shadow_text, encoding="utf-8")
        os.chmod(shadow, 0o600)
        ssh_dir = host_dir / "home" / host.login_user / ".ssh"
        _mkdir(ssh_dir, 0o700, host.login_user)
        self.write_file(host.name, host.login_user, ".ssh/authorized_keys",
                        self.key.with_suffix(".pub").read_text(encoding="utf-8"), mode=0o600)
        config = [
            f"# canarykeys.aws test fleet: host {host.name} ({host.group})",
            f"Port {host.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {host_dir / 'run' / 'sshd.pid'}",
            "AuthorizedKeysFile .ssh/authorized_keys",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin no",
            f"AllowUsers {host.login_user}",
            "StrictModes yes",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            # Ansible opens many sessions at once (forks, ControlMaster); the defaults drop some.
            "MaxStartups 200:30:400",
            "MaxSessions 100",
            "LogLevel INFO",
            f"Subsystem sftp {SFTP_SERVER}",
        ]
        (host_dir / "etc" / "sshd_config").write_text("\n".join(config) + "\n", encoding="utf-8")

    def _spawn(self, host):
        host_dir = self.dir / host.name
        config = host_dir / "etc" / "sshd_config"
        text = config.read_text(encoding="utf-8").splitlines()
        config.write_text("\n".join(f"Port {host.port}" if line.startswith("Port ") else line for line in text) + "\n",
                          encoding="utf-8")
        with contextlib.suppress(FileNotFoundError):
            (host_dir / "run" / "sshd.pid").unlink()
        (host_dir / "log" / "sshd.log").write_text("", encoding="utf-8")
        # sshd daemonises and writes its pidfile only once it listens: the pidfile is the readiness signal.
        script = ('mount --bind "$1" /home && mount --bind "$2" /root && mount --bind "$3" /etc/passwd'
                  ' && mount --bind "$4" /etc/shadow && exec "$5" -f "$6" -E "$7"')
        return subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "fleet-host",
             str(host_dir / "home"), str(host_dir / "root"), str(host_dir / "etc" / "passwd"), str(host_dir / "etc" / "shadow"),
             SSHD, str(config), str(host_dir / "log" / "sshd.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )

    def _start(self, hosts, keep_ports=False):
        """Start hosts concurrently; a port taken meanwhile by someone else is re-picked and retried."""
        pending = list(hosts)
        for attempt in range(BIND_RETRIES):
            spawned = [(host, self._spawn(host)) for host in pending]
            for host, proc in spawned:
                output = proc.communicate(timeout=START_TIMEOUT)[0]
                if proc.returncode != 0:
                    raise FleetError(f"host {host.name}: sshd did not start: {output.strip()}")
            pending = self._wait_ready(pending)
            if not pending:
                return
            if attempt == BIND_RETRIES - 1:
                break
            if keep_ports:
                time.sleep(0.5)
            else:
                for host, port in zip(pending, free_ports(len(pending))):
                    host.port = port
                self._save()
        raise FleetError(f"hosts {', '.join(host.name for host in pending)} could not bind a port")

    def _wait_ready(self, hosts):
        """Wait for the hosts' pidfiles; return those whose port was taken (the others must be up)."""
        waiting = {host.name: host for host in hosts}
        port_taken = []
        deadline = time.monotonic() + START_TIMEOUT
        while waiting and time.monotonic() < deadline:
            for name in list(waiting):
                if self.is_up(name):
                    del waiting[name]
                    continue
                log = (self.dir / name / "log" / "sshd.log").read_text(encoding="utf-8", errors="replace")
                if "Address already in use" in log or "Cannot bind any address" in log:
                    port_taken.append(waiting.pop(name))
                elif "fatal" in log.lower():
                    raise FleetError(f"host {name}: sshd failed: {log.strip()[-500:]}")
            time.sleep(0.02)
        if waiting:
            raise FleetError(f"hosts did not come up within {START_TIMEOUT:.0f} s: {', '.join(waiting)}")
        return port_taken

    def _save(self):
        state = {
            "owner_pid": self.owner_pid,
            "key": str(self.key),
            "inventory": str(self.inventory_path) if self.inventory_path else None,
            "hosts": [dataclasses.asdict(host) for host in self.hosts.values()],
        }
        (self.dir / STATE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        self._write_known_hosts()

    def _write_known_hosts(self):
        public = self.host_key.with_suffix(".pub")
        if not public.exists():
            return
        key = " ".join(public.read_text(encoding="utf-8").split()[:2])
        lines = [f"[127.0.0.1]:{host.port} {key}" for host in self.hosts.values() if host.port]
        staged = self.known_hosts.with_name(".known_hosts.new")
        staged.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        staged.replace(self.known_hosts)

    def ssh_options(self):
        """ssh -o options that check every host's key against the fleet's known_hosts file."""
        return ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"]

    # -- inventory ----------------------------------------------------------------------------------

    def write_inventory(self, path, controller_python=None):
        """YAML inventory: webservers (admin + become), laptops (the person), and a local localhost."""
        groups = {}
        for group in ("webservers", "laptops"):
            hosts = {}
            for host in self.group(group):
                hosts[host.name] = {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": host.port,
                    "ansible_user": host.login_user,
                    "ansible_ssh_private_key_file": str(self.key),
                    # Host keys are checked, against the file the fleet wrote (ansible.cfg no longer turns
                    # checking off for everyone).
                    "ansible_ssh_common_args": shlex.join(self.ssh_options()),
                    # The host-side modules are stdlib only, and a venv under the real /root is hidden here.
                    "ansible_python_interpreter": HOST_PYTHON,
                }
                if host.become:
                    hosts[host.name]["ansible_become"] = True
            groups[group] = {"hosts": hosts}
        inventory = {"all": {
            "hosts": {"localhost": {
                "ansible_connection": "local",
                "ansible_python_interpreter": controller_python or sys.executable,
            }},
            "children": groups,
        }}
        path = pathlib.Path(path).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("---\n# canarykeys.aws test fleet (generated by tests/tooling/fleet.py)\n"
                        + "\n".join(_yaml_lines(inventory)) + "\n", encoding="utf-8")
        self.inventory_path = path
        if (self.dir / STATE).exists():
            self._save()
        return path

    # -- files and commands inside hosts ------------------------------------------------------------

    def write_file(self, host, user, path, content, mode=0o600, dir_mode=0o755):
        """Write a file as ``user`` on ``host`` (parents created as the user; bytes kept as given).

        ``dir_mode`` 0755 for new directories is what the AWS CLI leaves with the usual umask.
        """
        target = self.outside_path(host, user, path)
        home = self.outside_path(host, user, home_inside(user))
        missing = [parent for parent in reversed(target.parents) if home in parent.parents and not parent.exists()]
        for parent in missing:
            _mkdir(parent, dir_mode, user)
        data = content.encode("utf-8") if isinstance(content, str) else content
        target.write_bytes(data)
        os.chmod(target, mode)
        entry = pwd.getpwnam(user)
        os.chown(target, entry.pw_uid, entry.pw_gid)
        return target

    def read_file(self, host, user, path=".aws/credentials"):
        """A file of ``user`` on ``host`` as text with its line endings untouched, or None if absent."""
        try:
            return self.outside_path(host, user, path).read_bytes().decode("utf-8")
        except FileNotFoundError:
            return None

    def run_as(self, host, user, command, env=None, input=None, timeout=300, check=False):  # pylint: disable=redefined-builtin
        """Run ``command`` (argv list, or a shell string) as ``user`` inside ``host``, in its home.

        The environment is clean (HOME, USER, PATH with the host tools first) plus ``env``: nothing of
        the caller's environment (AWS variables, the controller's virtualenv) leaks in by accident.
        """
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        home = home_inside(user)
        variables = {"HOME": home, "USER": user, "LOGNAME": user, "SHELL": "/bin/bash", "PATH": HOST_PATH, "LANG": "C.UTF-8"}
        variables.update(env or {})
        full = ["nsenter", "--target", str(self.pid(host)), "--mount", "--", "runuser", "-u", user, "--",
                "env", "-i", "-C", home, *(f"{key}={value}" for key, value in variables.items()), *argv]
        return subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout, check=check)

    def ssh_argv(self, host, user=None):
        """The ssh command line that logs into ``host`` (as its login user by default)."""
        host = self.host(host)
        return ["ssh", "-i", str(self.key), "-p", str(host.port), "-o", "BatchMode=yes", *self.ssh_options(),
                "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
                f"{user or host.login_user}@127.0.0.1"]


# -- host-side tools ---------------------------------------------------------------------------------

def _pins():
    """The controller virtualenv's AWS CLI/SDK versions, so both sides run the same, known-compatible set."""
    from importlib import metadata  # pylint: disable=import-outside-toplevel

    pins = []
    for name in ("awscli", "boto3", "botocore"):
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def ensure_hosttools(target=HOSTTOOLS):
    """A virtualenv of the system python with the AWS CLI and boto3, outside /root and /home."""
    target = pathlib.Path(target)
    probe = [str(target / "bin" / "python"), "-c", "import awscli, boto3, botocore"]

    def ready():
        return (target / "bin" / "aws").exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0

    if ready():
        return target
    with _global_lock():
        if ready():
            return target
        # Every user of every host runs these tools: keep them world-readable whatever root's umask is.
        old_umask = os.umask(0o022)
        try:
            shutil.rmtree(target, ignore_errors=True)
            _run([HOST_PYTHON, "-m", "venv", str(target)])
            _run([str(target / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "--no-input", *_pins()])
        except FleetError:
            shutil.rmtree(target, ignore_errors=True)
            raise
        finally:
            os.umask(old_umask)
    if not ready():
        raise FleetError(f"{target}: the AWS CLI/boto3 did not install")
    return target


# -- command line ------------------------------------------------------------------------------------

def _say(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="bring a fleet up (replacing one left in DIR)")
    up.add_argument("--dir", required=True, type=pathlib.Path)
    up.add_argument("--webservers", type=int, default=2)
    up.add_argument("--laptops", type=int, default=2)
    up.add_argument("--inventory", type=pathlib.Path, help="write an Ansible inventory here")
    up.add_argument("--controller-python", default=sys.executable, help="ansible_python_interpreter of localhost")
    commands.add_parser("down", help="stop every host and remove DIR").add_argument("--dir", required=True, type=pathlib.Path)
    commands.add_parser("status", help="list the hosts and whether they run").add_argument("--dir", required=True, type=pathlib.Path)
    for name, text in (("stop", "take a host offline"), ("start", "bring an offline host back")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--dir", required=True, type=pathlib.Path)
        sub.add_argument("host")
    run = commands.add_parser("run", help="run a command as a user inside a host")
    run.add_argument("--dir", required=True, type=pathlib.Path)
    run.add_argument("host")
    run.add_argument("user")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    accounts = commands.add_parser("accounts", help="create the OS users of a fleet of this size (what `up` does first)")
    accounts.add_argument("--webservers", type=int, default=2)
    accounts.add_argument("--laptops", type=int, default=2)
    hosttools = commands.add_parser("hosttools", help=f"create {HOSTTOOLS} (AWS CLI + boto3 on {HOST_PYTHON})")
    hosttools.add_argument("--target", type=pathlib.Path, default=HOSTTOOLS)
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            started = time.monotonic()
            fleet = Fleet.create(args.dir, args.webservers, args.laptops).up()
            elapsed = time.monotonic() - started
            if args.inventory:
                fleet.write_inventory(args.inventory, args.controller_python)
            _say(f"fleet up: {len(fleet.hosts)} hosts ({args.webservers} webservers, {args.laptops} laptops) "
                 f"in {elapsed:.2f} s; dir {fleet.dir}" + (f"; inventory {fleet.inventory_path}" if args.inventory else ""))
        elif args.command == "down":
            started = time.monotonic()
            teardown(args.dir)
            _say(f"fleet down: {args.dir} removed in {time.monotonic() - started:.2f} s")
        elif args.command == "status":
            fleet = Fleet.load(args.dir)
            for host in fleet.hosts.values():
                _say(f"{host.name:24} {host.group:11} port {host.port:5}  {host.login_user:8} {'up' if fleet.is_up(host.name) else 'DOWN'}")
        elif args.command in ("stop", "start"):
            fleet = Fleet.load(args.dir)
            (fleet.stop_host if args.command == "stop" else fleet.start_host)(args.host)
            _say(f"{args.host}: {'up' if fleet.is_up(args.host) else 'offline'}")
        elif args.command == "run":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            proc = Fleet.load(args.dir).run_as(args.host, args.user, cmd)
            sys.stdout.write(proc.stdout)
            sys.stderr.write(proc.stderr)
            return proc.returncode
        elif args.command == "accounts":
            reason = unavailable_reason()
            if reason:
                raise FleetError(reason)
            hosts = plan_hosts(args.webservers, args.laptops)
            ensure_host_accounts(hosts)
            _say("fleet accounts ready: " + ", ".join(sorted({user for host in hosts for user in host.users})))
        elif args.command == "hosttools":
            started = time.monotonic()
            target = ensure_hosttools(args.target)
            _say(f"host tools ready in {target} ({time.monotonic() - started:.1f} s)")
    except FleetError as exc:
        sys.stderr.write(f"fleet: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
