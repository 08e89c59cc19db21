# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the SSH test fleet itself: real sshds, real OS users, real Ansible over SSH."""

from __future__ import annotations

import os
import pathlib
import pwd
import socket
import subprocess
import sys
import time

import pytest
import yaml

from . import fleet as fleet_tool

REASON = fleet_tool.unavailable_reason()
needs_fleet = pytest.mark.skipif(REASON is not None, reason=REASON or "")
REPO = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE = pathlib.Path(sys.executable).parent / "ansible"


def ssh(fleet, host, command, user=None):
    return subprocess.run([*fleet.ssh_argv(host, user), command], capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory):
    fleet = fleet_tool.Fleet.create(tmp_path_factory.mktemp("fleet") / "hosts", webservers=1, laptops=1)
    try:
        fleet.up()
        fleet.write_inventory(fleet.dir / "inventory.yml")
        yield fleet
    finally:
        fleet.down()


# -- without root ----------------------------------------------------------------------------------

def test_plan_names_hosts_and_their_users():
    hosts = fleet_tool.plan_hosts(webservers=2, laptops=28)
    names = [host.name for host in hosts]
    assert names[:4] == ["web01", "web02", "laptop-alice", "laptop-bob"]
    assert names[-2:] == ["laptop-alice2", "laptop-bob2"]
    assert len(set(names)) == len(names)
    web, laptop = hosts[0], hosts[2]
    assert (web.login_user, web.users, web.become) == ("ops", ["ops", "deploy"], True)
    assert (laptop.login_user, laptop.users, laptop.become) == ("alice", ["alice"], False)


def test_inventory_is_yaml_with_groups_ports_and_interpreters(tmp_path):
    fleet = fleet_tool.Fleet.create(tmp_path / "fleet", webservers=1, laptops=1)
    for port, host in enumerate(fleet.hosts.values(), start=40001):
        host.port = port
    inventory = yaml.safe_load(fleet.write_inventory(tmp_path / "inv.yml", controller_python="/venv/bin/python").read_text())
    web = inventory["all"]["children"]["webservers"]["hosts"]["web01"]
    laptop = inventory["all"]["children"]["laptops"]["hosts"]["laptop-alice"]
    assert web["ansible_port"] == 40001 and web["ansible_user"] == "ops" and web["ansible_become"] is True
    assert laptop["ansible_user"] == "alice" and "ansible_become" not in laptop
    assert web["ansible_python_interpreter"] == laptop["ansible_python_interpreter"] == "/usr/bin/python3"
    assert web["ansible_ssh_private_key_file"] == str(fleet.key)
    assert inventory["all"]["hosts"]["localhost"] == {"ansible_connection": "local", "ansible_python_interpreter": "/venv/bin/python"}


def test_without_root_the_reason_is_one_line(monkeypatch):
    monkeypatch.setattr(fleet_tool.os, "geteuid", lambda: 1000)
    reason = fleet_tool.unavailable_reason()
    assert "needs root" in reason and "\n" not in reason
    with pytest.raises(fleet_tool.FleetError, match="needs root"):
        fleet_tool.Fleet.create("/tmp/never-created-fleet").up()
    assert not pathlib.Path("/tmp/never-created-fleet").exists()


def test_fleet_dir_must_not_be_hidden_by_the_hosts():
    for bad in ("/root/fleet", "/home/x/fleet"):
        with pytest.raises(fleet_tool.FleetError, match="outside"):
            fleet_tool.Fleet.create(bad)


def test_teardown_refuses_a_directory_that_is_not_a_fleet(tmp_path):
    (tmp_path / "precious").write_text("keep me")
    with pytest.raises(fleet_tool.FleetError, match="not a fleet directory"):
        fleet_tool.teardown(tmp_path)
    assert (tmp_path / "precious").read_text() == "keep me"


# -- with root: a real fleet -----------------------------------------------------------------------

@needs_fleet
def test_accounts_makes_the_users_of_a_fleet_before_any_is_up():
    """What `make system-deps` runs, so that fleets brought up side by side find their users made."""
    result = subprocess.run([sys.executable, str(pathlib.Path(fleet_tool.__file__)), "accounts", "--webservers", "1", "--laptops", "2"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "fleet accounts ready: alice, bob, deploy, ops"
    # Made here or there already, with whatever home and shell: the hosts' own passwd sees to those.
    for user in ("ops", "deploy", "alice", "bob"):
        pwd.getpwnam(user)
    assert "ops ALL=(ALL:ALL) NOPASSWD: ALL" in fleet_tool.SUDOERS_DROPIN.read_text(encoding="utf-8")


def test_host_user_database_gives_fleet_users_a_home_and_a_login_and_copies_no_password():
    passwd = ("root:x:0:0:root:/root:/bin/bash\n"
              "deploy:x:998:998:the real app user:/srv/www:/usr/sbin/nologin\n"
              "ops:x:1001:1001::/home/ops:/bin/sh\n"
              "postgres:x:120:128::/var/lib/postgresql:/bin/bash\n")
    users, shadow = fleet_tool.host_user_database(["ops", "deploy"], passwd)
    assert users.splitlines() == ["root:x:0:0:root:/root:/bin/bash",
                                  "deploy:x:998:998:the real app user:/home/deploy:/bin/bash",
                                  "ops:x:1001:1001::/home/ops:/bin/bash",
                                  "postgres:x:120:128::/var/lib/postgresql:/bin/bash"]
    assert [line.split(":")[:2] for line in shadow.splitlines()] == [["root", "!"], ["deploy", "*"], ["ops", "*"], ["postgres", "!"]]
    with pytest.raises(fleet_tool.FleetError, match="alice are not in /etc/passwd"):
        fleet_tool.host_user_database(["alice"], passwd)


def test_inventory_and_ssh_check_host_keys_against_the_fleets_known_hosts(tmp_path):
    fleet = fleet_tool.Fleet.create(tmp_path / "fleet", webservers=1, laptops=1)
    (tmp_path / "fleet" / "keys").mkdir(parents=True)
    fleet.host_key.with_suffix(".pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFleetHostKey canarykeys-fleet\n")
    for port, host in enumerate(fleet.hosts.values(), start=40001):
        host.port = port
    fleet._write_known_hosts()  # pylint: disable=protected-access
    assert fleet.known_hosts.read_text().splitlines() == [
        "[127.0.0.1]:40001 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFleetHostKey",
        "[127.0.0.1]:40002 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFleetHostKey",
    ]
    inventory = yaml.safe_load(fleet.write_inventory(tmp_path / "inv.yml").read_text())
    web = inventory["all"]["children"]["webservers"]["hosts"]["web01"]
    assert web["ansible_ssh_common_args"] == f"-o UserKnownHostsFile={fleet.known_hosts} -o StrictHostKeyChecking=yes"
    argv = " ".join(fleet.ssh_argv("web01"))
    assert "StrictHostKeyChecking=yes" in argv and "StrictHostKeyChecking=no" not in argv and "/dev/null" not in argv


@needs_fleet
def test_login_user_logs_in_over_ssh_and_nobody_else(two_hosts):
    for host in two_hosts.hosts.values():
        result = ssh(two_hosts, host.name, "id -un; echo $HOME")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [host.login_user, f"/home/{host.login_user}"]
    assert ssh(two_hosts, "web01", "true", user="deploy").returncode == 255


@needs_fleet
def test_homes_are_private_per_host(two_hosts):
    assert ssh(two_hosts, "web01", "echo web01-ops > ~/marker").returncode == 0
    assert two_hosts.run_as("laptop-alice", "alice", "echo laptop > ~/marker").returncode == 0
    assert two_hosts.read_file("web01", "ops", "marker") == "web01-ops\n"
    assert two_hosts.read_file("laptop-alice", "alice", "marker") == "laptop\n"
    # Each host sees only its own users' homes, and none of this reaches the real /home.
    assert two_hosts.run_as("web01", "root", "ls /home").stdout.split() == ["deploy", "ops"]
    assert two_hosts.run_as("laptop-alice", "root", "ls /home").stdout.split() == ["alice"]
    assert two_hosts.run_as("laptop-alice", "root", "test -e /home/ops/marker").returncode == 1
    assert not pathlib.Path("/home/ops/marker").exists() and not pathlib.Path("/home/alice/marker").exists()
    stat = two_hosts.run_as("web01", "root", "stat -c '%U %a' /home/deploy /home/ops /root").stdout.split("\n")
    assert stat[:3] == ["deploy 750", "ops 750", "root 700"]


@needs_fleet
def test_sudo_becomes_root_whose_home_is_private(two_hosts):
    result = ssh(two_hosts, "web01", "sudo -n sh -c 'id -u; echo web01-root > /root/probe'")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
    assert two_hosts.read_file("web01", "root", "probe") == "web01-root\n"
    assert not pathlib.Path("/root/probe").exists()
    assert ssh(two_hosts, "laptop-alice", "sudo -n true").returncode != 0


@needs_fleet
def test_write_file_keeps_bytes_owner_and_mode_as_the_user_sees_them(two_hosts):
    content = "[default]\r\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\r\n"
    two_hosts.write_file("laptop-alice", "alice", ".aws/credentials", content, mode=0o600)
    seen = two_hosts.run_as("laptop-alice", "alice", [
        fleet_tool.HOST_PYTHON, "-c",
        "import os; p = os.path.expanduser('~/.aws/credentials'); print(repr(open(p, 'rb').read())); print(oct(os.stat(p).st_mode & 0o777))",
    ])
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.split("\n")[:2] == [repr(content.encode()), "0o600"]
    assert two_hosts.read_file("laptop-alice", "alice") == content
    assert two_hosts.run_as("laptop-alice", "alice", "stat -c %U ~/.aws").stdout.strip() == "alice"
    assert two_hosts.read_file("laptop-alice", "alice", ".aws/nothing") is None


@needs_fleet
def test_ansible_reaches_every_host_with_the_right_identity(two_hosts):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    ping = subprocess.run([str(ANSIBLE), "-i", str(two_hosts.inventory_path), "all", "-m", "ansible.builtin.ping", "-o"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert sorted(line.split()[0] for line in ping.stdout.splitlines() if "SUCCESS" in line) == ["laptop-alice", "localhost", "web01"]
    whoami = subprocess.run([str(ANSIBLE), "-i", str(two_hosts.inventory_path), "all:!localhost", "-m", "ansible.builtin.command",
                             "-a", "id -un", "-o"], capture_output=True, text=True, cwd=REPO, env=env, timeout=120, check=False)
    assert whoami.returncode == 0, whoami.stdout + whoami.stderr
    identities = {line.split()[0]: line.split()[-1] for line in whoami.stdout.splitlines() if "rc=0" in line}
    assert identities == {"web01": "root", "laptop-alice": "alice"}


@needs_fleet
def test_a_host_goes_offline_and_comes_back_on_its_port(two_hosts):
    port = two_hosts.host("laptop-alice").port
    two_hosts.write_file("laptop-alice", "alice", "kept", "files outlive the sshd\n")
    two_hosts.stop_host("laptop-alice")
    assert not two_hosts.is_up("laptop-alice")
    assert ssh(two_hosts, "laptop-alice", "true").returncode == 255
    assert ssh(two_hosts, "web01", "true").returncode == 0
    two_hosts.start_host("laptop-alice")
    assert two_hosts.host("laptop-alice").port == port
    assert ssh(two_hosts, "laptop-alice", "cat ~/kept").stdout == "files outlive the sshd\n"


@needs_fleet
def test_up_replaces_a_crashed_run_and_down_leaves_nothing(tmp_path):
    directory = tmp_path / "fleet"
    crashed = fleet_tool.Fleet.create(directory, webservers=1, laptops=1).up()
    # An open session, as Ansible's ControlPersist leaves behind, and a stale pidfile.
    session = subprocess.Popen([*crashed.ssh_argv("web01"), "sleep 60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        homes = {fleet_tool._dir_identity(directory / name / "home"): name for name in crashed.hosts}  # pylint: disable=protected-access
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            old = [pid for pids in fleet_tool._processes_by_home(homes).values() for pid in pids]  # pylint: disable=protected-access
            if len(old) > 2:  # the two listeners, then the session's sshd processes and its sleep
                break
            time.sleep(0.05)
        assert len(old) > 2
        (directory / "laptop-alice" / "run" / "sshd.pid").write_text("999999\n")

        fleet = fleet_tool.Fleet.create(directory, webservers=1, laptops=1).up()
        assert not any(fleet_tool._is_alive(pid) for pid in old)  # pylint: disable=protected-access
        assert ssh(fleet, "laptop-alice", "true").returncode == 0
        current = [fleet.pid(name) for name in fleet.hosts]
        ports = [host.port for host in fleet.hosts.values()]

        fleet.down()
        assert not directory.exists()
        assert not any(fleet_tool._is_alive(pid) for pid in current)  # pylint: disable=protected-access
        assert str(directory) not in pathlib.Path("/proc/self/mountinfo").read_text()
        # The ports take a listener again. SO_REUSEADDR as sshd sets it: the connections the hosts closed may
        # linger in TIME_WAIT for a minute, which refuses a plain bind (and only that) under load.
        for port in ports:
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
                sock.listen()
    finally:
        session.kill()
        session.wait()
        fleet_tool.teardown(directory)


@pytest.fixture
def foreign_accounts():
    """Two accounts as a real server may have them: another home, no login shell, a locked password."""
    names = [f"ckf{os.getpid() % 100000}{role}" for role in ("a", "l")]
    for name in names:
        fleet_tool._run_retrying(["useradd", "--no-create-home", "--home-dir", f"/srv/{name}",  # pylint: disable=protected-access
                                  "--shell", "/usr/sbin/nologin", "--comment", "somebody else's account", name])
    before = {name: (pwd.getpwnam(name), _shadow_password(name)) for name in names}
    try:
        yield names, before
    finally:
        for name in names:
            fleet_tool._run_retrying(["userdel", name])  # pylint: disable=protected-access


def _shadow_password(name):
    for line in pathlib.Path("/etc/shadow").read_text(encoding="utf-8").splitlines():
        if line.split(":", 1)[0] == name:
            return line.split(":")[1]
    return None


@needs_fleet
def test_users_that_exist_with_other_attributes_serve_the_fleet_and_stay_as_they_were(tmp_path, foreign_accounts):
    app, login = foreign_accounts[0]
    hosts = [fleet_tool.Host("web01", "webservers", fleet_tool.ADMIN_USER, [fleet_tool.ADMIN_USER, app], True),
             fleet_tool.Host("laptop-x", "laptops", login, [login], False)]
    fleet = fleet_tool.Fleet(tmp_path / "fleet", hosts)
    try:
        fleet.up()
        # The login user logs in with its key although its real shell is nologin and its password locked.
        result = ssh(fleet, "laptop-x", "id -un; echo $HOME")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [login, f"/home/{login}"]
        # Inside the host, the app user's home is /home/<user>, where the fleet puts its files.
        fleet.write_file("web01", app, ".aws/credentials", "[default]\n")
        seen = fleet.run_as("web01", app, "echo ~; cat ~/.aws/credentials")
        assert seen.stdout.split("\n")[:2] == [f"/home/{app}", "[default]"], seen.stderr
        assert ssh(fleet, "web01", f"sudo -n -u {app} sh -c 'cat ~/.aws/credentials'").stdout == "[default]\n"
    finally:
        fleet.down()
    for name, (entry, password) in foreign_accounts[1].items():
        assert (pwd.getpwnam(name), _shadow_password(name)) == (entry, password)
        assert not pathlib.Path(entry.pw_dir).exists()
