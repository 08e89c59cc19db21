# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as users get it: the built tarball, installed offline, its FQCN playbook run from it.

``ansible-galaxy collection build`` makes the tarball (galaxy.yml's build_ignore keeps the tests,
tools, benchmarks and caches out); ``ansible-galaxy collection install --offline --no-deps`` puts it
into a fresh path (amazon.aws and community.aws come with the ``ansible`` package, as in
requirements.txt); ``ansible-playbook canarykeys.aws.seed_canaries`` then runs from that path only
(no repository ansible.cfg, no .collections link) against the local AWS, with one local-connection
host whose placement is a file under a temporary HOME.  For execution environments,
``ansible-builder introspect`` must find the collection's Python and system requirements
(meta/execution-environment.yml) in the installed copy, and ``ansible-builder create`` must render
the build context of docs/execution-environment.yml (no container engine here: nothing is built).
"""

from __future__ import annotations

import configparser
import getpass
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))
TARBALL = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
# Top-level entries of the repository that must never ship, and files the built collection needs.
NEVER_SHIPPED = ("tests", "tools", "benchmarks", "extensions", ".venv", ".collections", ".sandbox", ".tmp", ".ci",
                 ".pytest_cache", ".hypothesis", "Makefile", "ansible.cfg", "pytest.ini", "requirements-test.txt")
SHIPPED = ("meta/runtime.yml", "meta/execution-environment.yml", "requirements.txt", "bindep.txt",
           "playbooks/seed_canaries.yml", "roles/seed/tasks/main.yml", "plugins/modules/canary_key.py",
           "plugins/module_utils/_lambda_shared/canary_mapping.py", "plugins/action/estate_lease.py", "lambda/alert_handler.py")


def run(argv, cwd, env=None, timeout=300):
    proc = subprocess.run([str(arg) for arg in argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{argv[0]} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(tarball, collections path it was installed into offline)."""
    work = tmp_path_factory.mktemp("packaging")
    # From a directory without ansible.cfg: the build and install must not lean on the repository's.
    env = dict(os.environ, ANSIBLE_CONFIG=str(work / "no-ansible.cfg"))
    run([BIN / "ansible-galaxy", "collection", "build", REPO, "--output-path", work / "dist"], cwd=work, env=env)
    tarball = work / "dist" / TARBALL
    run([BIN / "ansible-galaxy", "collection", "install", "--offline", "--no-deps", "-p", work / "collections", tarball],
        cwd=work, env=env)
    return tarball, work / "collections"


def test_the_tarball_holds_the_collection_and_nothing_of_the_development_tree(built):
    tarball, _installed = built
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    tops = {name.split("/", 1)[0] for name in names}
    assert not tops & set(NEVER_SHIPPED), sorted(tops & set(NEVER_SHIPPED))
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert set(SHIPPED) <= names, sorted(set(SHIPPED) - names)


def test_the_installed_collection_names_its_execution_environment_requirements(built):
    _tarball, installed = built
    output = yaml.safe_load(run([BIN / "ansible-builder", "introspect", "--sanitize", installed], cwd=installed))
    python = {line.split("#")[0].strip() for line in output["python"]}
    system = {line.split("#")[0].strip() for line in output["system"]}
    assert python == {"boto3>=1.34", "botocore>=1.34"}
    assert system == {"openssh-clients [platform:rpm]", "openssh-client [platform:dpkg]"}


def test_ansible_builder_renders_the_documented_execution_environment(built, tmp_path):
    tarball, _installed = built
    shutil.copy(REPO / "docs" / "execution-environment.yml", tmp_path)
    shutil.copy(tarball, tmp_path)
    run([BIN / "ansible-builder", "create", "-f", "execution-environment.yml", "-c", "context", "--output-filename",
         "Containerfile"], cwd=tmp_path)
    context = tmp_path / "context"
    containerfile = (context / "Containerfile").read_text(encoding="utf-8")
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text(encoding="utf-8"))
    assert [entry["name"] for entry in requirements["collections"]] == [
        f"/build/collections/{TARBALL}", "amazon.aws", "community.aws"]
    assert (context / "_build" / "collections" / TARBALL).read_bytes() == tarball.read_bytes()
    # The galaxy stage installs from /build, where the context's _build is copied.
    assert "COPY _build /build" in containerfile and "ansible-galaxy collection install" in containerfile
    assert "introspect" in containerfile


def test_the_fqcn_playbook_seeds_from_the_installed_collection(built, aws, tmp_path):
    _tarball, installed = built
    home = tmp_path / "home"
    home.mkdir()
    credentials = home / ".aws" / "credentials"
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"webservers": {"hosts": {"web01": {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "seed_placements": [{"user": getpass.getuser(), "path": str(credentials), "profile": "backup",
                             "reminder": "packaging test"}],
    }}}}}}), encoding="utf-8")
    env = dict(os.environ, **aws.env, HOME=str(home), ANSIBLE_CONFIG=str(tmp_path / "no-ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(installed), ANSIBLE_NOCOLOR="1",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    listed = run([BIN / "ansible-galaxy", "collection", "list", "canarykeys.aws"], cwd=tmp_path, env=env)
    assert str(installed) in listed and str(REPO) not in listed
    output = run([BIN / "ansible-playbook", "-i", inventory, "canarykeys.aws.seed_canaries"], cwd=tmp_path, env=env,
                 timeout=600)
    assert "failed=0" in output and "web01" in output
    planted = configparser.ConfigParser()
    planted.read(credentials)
    key_id = planted["backup"]["aws_access_key_id"]
    # A boolean, so that a failure cannot show the secret in pytest's explanation.
    leaked = planted["backup"]["aws_secret_access_key"] in output
    assert not leaked, "the planted secret access key is in the playbook's output"
    iam = aws.client("iam")
    keys = [key["AccessKeyId"] for user in iam.list_users()["Users"]
            for key in iam.list_access_keys(UserName=user["UserName"])["AccessKeyMetadata"]]
    assert keys == [key_id]
