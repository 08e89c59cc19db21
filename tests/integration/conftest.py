# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the integration tests: the SSH test fleet, the local AWS and a playbook runner.

fleet          session   web01, web02 (webservers: ops logs in, become root; homes ops, deploy, root)
                         and laptop-alice, laptop-bob (the person logs in), some with credentials
                         files they already had; skips with a one-line reason when not root
clean_fleet    function  the fleet with every host up and every ~/.aws back as the session began
local_aws      session   the embedded local AWS (tools.local_aws.server.LocalAWS)
aws_env        function  AWS_* set for this process and its subprocesses; the local AWS as it is
aws            function  aws_env with the local AWS reset
run_playbook   function  run(playbook, inventory, extra_vars=None, extra_args=()) -> (rc, output)

Reset order matters: resetting the local AWS forgets every key, so a file still holding a key planted
earlier looks like a profile the seed did not plant. Tests that seed use ``clean_fleet`` (which takes
``aws``), never ``aws`` alone with a fleet another test has seeded.  Tests that only read a seeded
fleet may share one seeding (test_seed_playbook's ``seeded``): ``aws_env.resets`` and
``fleet.restores`` count the resets, so a shared state knows when another test has replaced it.
Under pytest-xdist every worker has its own session: its own fleet and its own local AWS.
See docs/testing.md.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from tooling import fleet as fleet_tool
from tools.local_aws.server import LocalAWS

REPO = pathlib.Path(__file__).resolve().parents[2]

REGION = "us-east-1"
VENV_BIN = REPO / ".venv" / "bin" if (REPO / ".venv" / "bin").is_dir() else pathlib.Path(sys.executable).parent

# Files some hosts already have before any seeding: obviously fake values in the shape of real ones
# (AWS's documentation examples and look-alikes), with comments, a second profile and a CRLF file.
# The seed must leave every byte of them outside its own profile as it was.
PREEXISTING = {
    ("laptop-alice", "alice", ".aws/credentials"): (
        "# Personal AWS access, rotated by IT every 90 days.\n"
        "# Ask #cloud-help before changing the default profile.\n"
        "[default]\n"
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
        "\n"
        "; sandbox account of the data team\n"
        "[sandbox]\n"
        "aws_access_key_id = AKIAI44QH8DHBEXAMPLE\n"
        "aws_secret_access_key = je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY\n"
    ),
    ("laptop-alice", "alice", ".aws/config"): (
        "[default]\nregion = eu-west-1\noutput = json\n\n[profile sandbox]\nregion = eu-central-1\n"
    ),
    ("laptop-bob", "bob", ".aws/credentials"): (
        "[default]\r\n"
        "aws_access_key_id = AKIAJBOBEXAMPLE7Q3XZ\r\n"
        "aws_secret_access_key = 9drTJvcXLB89EXAMPLELB8923FB892xMFIBOBKEY\r\n"
    ),
    ("web01", "root", ".aws/credentials"): (
        "# nightly DB dumps to S3 (backup.sh)\n"
        "[default]\n"
        "aws_access_key_id = AKIAZWEB01EXAMPLE7KQ\n"
        "aws_secret_access_key = Xq3vT9mPzL2/hR8kW4nB6yJ0cF5dEXAMPLEROOTK\n"
        "region = eu-west-1\n"
    ),
}


def _fleets_parent():
    # Every host hides the real /home and /root, so the fleet's own files (sshd config, host key)
    # must live elsewhere.
    if any(part in ("home", "root") for part in REPO.parts[1:2]):
        return pathlib.Path("/var/tmp/canarykeys-fleets")
    return REPO / ".sandbox" / "fleets"


class FleetUnderTest:
    """The session's fleet (every `fleet_tool.Fleet` method) plus its inventory and initial files."""

    def __init__(self, fleet, inventory):
        self.fleet = fleet
        self.inventory = inventory
        self.preexisting = dict(PREEXISTING)
        # How many times restore() ran: a test that shares a seeded fleet checks that nobody restored it meanwhile.
        self.restores = 0

    def __getattr__(self, name):
        return getattr(self.fleet, name)

    @property
    def webservers(self):
        return [host.name for host in self.fleet.group("webservers")]

    @property
    def laptops(self):
        return [host.name for host in self.fleet.group("laptops")]

    def homes(self):
        """(host, user) for every home on the fleet, root included."""
        return [(host.name, user) for host in self.fleet.hosts.values() for user in (*host.users, "root")]

    def restore(self):
        """Every host up, every ~/.aws exactly as at the start of the session."""
        self.restores += 1
        for name in self.fleet.hosts:
            self.fleet.start_host(name)
        for host, user in self.homes():
            aws_dir = self.fleet.outside_path(host, user, ".aws")
            if aws_dir.exists():
                shutil.rmtree(aws_dir)
        for (host, user, path), content in self.preexisting.items():
            self.fleet.write_file(host, user, path, content)

    def aws_cli(self, host, user, *args, endpoint_url, env=None):
        """The AWS CLI of the host tools, as ``user`` on ``host`` (reads that user's ~/.aws)."""
        variables = {"AWS_ENDPOINT_URL": endpoint_url, "AWS_DEFAULT_REGION": REGION, **(env or {})}
        return self.fleet.run_as(host, user, ["aws", *args], env=variables)


@pytest.fixture(scope="session")
def fleet():
    reason = fleet_tool.unavailable_reason()
    if reason:
        pytest.skip(reason)
    parent = _fleets_parent()
    fleet_tool.reap_stale(parent)
    hosts = fleet_tool.Fleet.create(parent / str(os.getpid()), webservers=2, laptops=2, owner_pid=os.getpid())
    try:
        hosts.up()
        fleet_tool.ensure_hosttools()
        under_test = FleetUnderTest(hosts, hosts.write_inventory(hosts.dir / "inventory.yml"))
        under_test.restore()
        yield under_test
    finally:
        hosts.down()


@pytest.fixture(scope="session")
def local_aws():
    with LocalAWS() as server:
        yield server


class AWSContext:
    """What a test needs of the local AWS: its endpoint, the environment, clients, recorded calls."""

    # Resets of the session's local AWS so far (one local AWS per session, so per xdist worker too).
    resets = 0

    def __init__(self, server, env):
        self.server = server
        self.endpoint_url = server.endpoint_url
        self.env = env
        # For commands run inside a host: the endpoint and region, never the controller's credentials.
        self.host_env = {"AWS_ENDPOINT_URL": server.endpoint_url, "AWS_DEFAULT_REGION": REGION}

    def client(self, service):
        import boto3  # pylint: disable=import-outside-toplevel

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"])

    def calls(self):
        return self.server.calls()

    def reset(self):
        """Forget every resource and key of the local AWS (counted in ``AWSContext.resets``)."""
        self.server.reset()
        AWSContext.resets += 1


@pytest.fixture
def aws_env(local_aws, monkeypatch, tmp_path):
    """The environment of ``aws`` without the reset: for a test that reads state an earlier one made."""
    controller_aws = tmp_path / "controller-aws"
    # LocalAWS knows its operator's credentials (they differ when it enforces IAM).
    operator = local_aws.operator_env()
    env = {
        "AWS_ENDPOINT_URL": local_aws.endpoint_url,
        "AWS_ACCESS_KEY_ID": operator["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": operator["AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        # Never the developer's own ~/.aws: a test must not read, or seed next to, real credentials.
        "AWS_SHARED_CREDENTIALS_FILE": str(controller_aws / "credentials"),
        "AWS_CONFIG_FILE": str(controller_aws / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return AWSContext(local_aws, env)


@pytest.fixture
def aws(aws_env):
    aws_env.reset()
    return aws_env


@pytest.fixture
def clean_fleet(fleet, aws):  # pylint: disable=unused-argument,redefined-outer-name
    fleet.restore()
    return fleet


@pytest.fixture
def run_playbook(aws_env):  # pylint: disable=unused-argument
    """ansible-playbook from the repo root (its ansible.cfg) with the local AWS environment."""

    def run(playbook, inventory, extra_vars=None, extra_args=(), timeout=900):
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(REPO / playbook)]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        argv += [str(arg) for arg in extra_args]
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", PYTHONUNBUFFERED="1",
                   PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        env.pop("ANSIBLE_FORCE_COLOR", None)
        proc = subprocess.run(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
        return proc.returncode, proc.stdout

    return run
