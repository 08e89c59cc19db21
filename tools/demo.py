# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make demo`: the product's main job on the embedded default, no AWS account needed.

Starts the local AWS, seeds a small demo fleet whose home directories live in
`.sandbox/demo` (never the user's real ~/.aws), prints the reminder table, and
stops what it started.  The demo hosts are local connections, so the demo runs
without root and without SSH.
"""

from __future__ import annotations

import getpass
import os
import pathlib
import shutil
import subprocess
import sys

from tools.local_aws.server import LocalAWS

REPO = pathlib.Path(__file__).resolve().parents[1]
SANDBOX = REPO / ".sandbox" / "demo"

# A laptop that already has a real-looking profile: the seed must leave it as it was.
EXISTING_LAPTOP_FILE = """\
# work account, set up by IT on onboarding
[default]
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
region = eu-west-1
"""

DEMO_HOSTS = {
    "web01": {"group": "webservers", "homes": ("deploy", "root")},
    "web02": {"group": "webservers", "homes": ("deploy", "root")},
    "laptop-ana": {"group": "laptops", "homes": ("ana",)},
}


def home_of(host: str, account: str) -> pathlib.Path:
    return SANDBOX / host / ("root" if account == "root" else "home/" + account)


def write_inventory(path: pathlib.Path) -> None:
    """Local-connection hosts whose placements point into the sandbox.

    The files belong to whoever runs the demo: the demo must not need root.
    """
    me = getpass.getuser()
    lines = ["all:", "  children:"]
    for group in ("webservers", "laptops"):
        lines += [f"    {group}:", "      hosts:"]
        for host, spec in DEMO_HOSTS.items():
            if spec["group"] != group:
                continue
            lines += [
                f"        {host}:",
                "          ansible_connection: local",
                f"          ansible_python_interpreter: {sys.executable}",
                "          seed_placements:",
            ]
            for account in spec["homes"]:
                profile = "backup" if account == "root" else ("deploy" if group == "laptops" else "prod")
                lines += [
                    f"            - user: {me}",
                    f"              path: {home_of(host, account) / '.aws' / 'credentials'}",
                    f"              profile: {profile}",
                    f"              reminder: demo {host} {account} account",
                ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def prepare_sandbox() -> pathlib.Path:
    shutil.rmtree(SANDBOX, ignore_errors=True)
    for host, spec in DEMO_HOSTS.items():
        for account in spec["homes"]:
            home_of(host, account).mkdir(parents=True)
    laptop_aws = home_of("laptop-ana", "ana") / ".aws"
    laptop_aws.mkdir(mode=0o700)
    (laptop_aws / "credentials").write_text(EXISTING_LAPTOP_FILE, encoding="utf-8")
    inventory = SANDBOX / "inventory.yml"
    write_inventory(inventory)
    return inventory


def run_playbook(playbook: str, inventory: pathlib.Path, env: dict) -> None:
    command = [str(pathlib.Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), playbook]
    subprocess.run(command, cwd=REPO, env=env, check=True)


def main() -> int:
    inventory = prepare_sandbox()
    with LocalAWS() as aws:
        env = dict(os.environ)
        env.update(aws.operator_env() if hasattr(aws, "operator_env") else {})
        env.setdefault("AWS_ACCESS_KEY_ID", "testing")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        env["AWS_ENDPOINT_URL"] = aws.endpoint_url
        env["AWS_DEFAULT_REGION"] = env.get("AWS_DEFAULT_REGION", "us-east-1")
        # The controller must not read the operator's real AWS files during the demo.
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(SANDBOX / "controller-credentials")
        env["AWS_CONFIG_FILE"] = str(SANDBOX / "controller-config")
        env.pop("AWS_PROFILE", None)
        env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
        print(f"local AWS at {aws.endpoint_url}; demo homes under {SANDBOX}")
        run_playbook("playbooks/seed_canaries.yml", inventory, env)
        print("re-run: nothing should change")
        run_playbook("playbooks/seed_canaries.yml", inventory, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
