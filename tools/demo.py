# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make demo`: seed -> attack -> alert on the embedded local AWS, no AWS account needed.

1. Starts the local AWS with its CloudTrail recorder (tools/local_aws) and an alert sink, a webhook
   receiver on 127.0.0.1 (tools/alert_sink.py).
2. Deploys the detection stack into it (playbooks/deploy_detection.yml, the handler's generic
   webhook pointed at the sink, signed) and, at the same time, seeds a small demo fleet whose home
   directories live in `.sandbox/demo` (playbooks/seed_canaries.yml), never the user's real ~/.aws.
   The demo hosts are local connections, so no root and no SSH are needed.
3. Plays the attacker: takes one planted file and runs the AWS CLI with that file and profile (and
   nothing of the operator's credentials) against the local AWS.
4. Prints the alert that reaches the sink: the generic JSON and the handler's Slack rendering.
5. Stops everything it started, also when a step fails.

Ansible's output goes to log files under `.sandbox/demo/`; the terminal gets one line per play.
No secret is printed: the demo checks its own output, the logs and the alerts for the planted ones.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import getpass
import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time

from tools.alert_sink import AlertSink, format_alert, format_generic_json, format_slack, slack_message
from tools.local_aws.server import DEFAULT_REGION, LocalAWS

REPO = pathlib.Path(__file__).resolve().parents[1]
SANDBOX = REPO / ".sandbox" / "demo"
BIN = pathlib.Path(sys.executable).parent
ALERT_TIMEOUT = 30.0

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
# What the attacker found, and what anyone who finds an AWS key tries first.
VICTIM = ("web01", "deploy")
ATTACK = (["sts", "get-caller-identity"], ["s3", "ls"], ["iam", "list-users"])


class DemoFailed(RuntimeError):
    """A step failed; the message says which and where its log is."""


def home_of(host: str, account: str) -> pathlib.Path:
    return SANDBOX / host / ("root" if account == "root" else "home/" + account)


def profile_of(host: str, account: str) -> str:
    if account == "root":
        return "backup"
    return "deploy" if DEMO_HOSTS[host]["group"] == "laptops" else "prod"


def credentials_file(host: str, account: str) -> pathlib.Path:
    return home_of(host, account) / ".aws" / "credentials"


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
                lines += [
                    f"            - user: {me}",
                    f"              path: {credentials_file(host, account)}",
                    f"              profile: {profile_of(host, account)}",
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
    (SANDBOX / "attacker").mkdir()
    inventory = SANDBOX / "inventory.yml"
    write_inventory(inventory)
    return inventory


class Output:
    """The terminal, plus a copy of everything said, which the secret check reads."""

    def __init__(self):
        self.text = []

    def say(self, text: str = "", indent: str = "") -> None:
        block = textwrap.indent(text.rstrip("\n"), indent) + "\n" if text else "\n"
        self.text.append(block)
        sys.stdout.write(block)
        sys.stdout.flush()


def controller_env(aws: LocalAWS) -> dict:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(aws.operator_env())
    env.update({
        # The controller must not read the operator's real AWS files during the demo.
        "AWS_SHARED_CREDENTIALS_FILE": str(SANDBOX / "controller" / "credentials"),
        "AWS_CONFIG_FILE": str(SANDBOX / "controller" / "config"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return env


def start_playbook(playbook: str, inventory: pathlib.Path, env: dict, log: pathlib.Path, extra_vars: dict | None = None):
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), playbook]
    if extra_vars:
        # On the command line, not in a file: the values are the sink's URL and a signing key made for
        # this run only, and -e is what a user would type.
        argv += ["-e", json.dumps(extra_vars)]
    with open(log, "wb") as handle:
        # A session of its own: stopping a play must stop its forks and modules too (killpg), and a
        # Ctrl-C reaches the demo, which stops everything in order.
        return subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_playbook(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def recap(log_text: str) -> dict:
    totals = {"ok": 0, "changed": 0, "unreachable": 0, "failed": 0}
    for match in re.finditer(r"^\S+\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", log_text, re.M):
        for name, value in zip(("ok", "changed", "unreachable", "failed"), match.groups()):
            totals[name] += int(value)
    return totals


def reminder_table(log_text: str) -> list:
    """The seed's reminder table, read back from its play's output (YAML, as ansible.cfg asks)."""
    import yaml  # pylint: disable=import-outside-toplevel  # Ansible's own dependency

    match = re.search(r"^TASK \[[^\]]*Show the reminder table\][^\n]*\n(.*?)\n\s*\n", log_text, re.M | re.S)
    lines = match.group(1).splitlines() if match else []
    start = next((index for index, line in enumerate(lines) if line.strip() == "msg:"), None)
    if start is None:
        return []
    with contextlib.suppress(yaml.YAMLError):
        return list(yaml.safe_load(textwrap.dedent("\n".join(lines[start:])))["msg"])
    return []


def wait_playbooks(out: Output, runs: dict) -> dict:
    """Wait for the plays started side by side, one line each as each ends; DemoFailed at the first failure."""
    texts = {}
    while len(texts) < len(runs):
        for title, (process, log, started) in runs.items():
            if title in texts or process.poll() is None:
                continue
            texts[title] = log.read_text(encoding="utf-8", errors="replace")
            totals = recap(texts[title])
            out.say(f"{title}: rc={process.returncode} ok={totals['ok']} changed={totals['changed']} failed={totals['failed']} "
                    f"unreachable={totals['unreachable']} in {time.monotonic() - started:.0f} s  (log: {log.relative_to(REPO)})", "   ")
            if process.returncode != 0:
                # The other play is stopped by the caller: nothing it does can save the demo now.
                tail = "\n".join(texts[title].splitlines()[-25:])
                raise DemoFailed(f"{title} failed; the end of {log}:\n{tail}")
        time.sleep(0.2)
    return texts


def read_profile(path: pathlib.Path, profile: str) -> dict:
    parser = configparser.RawConfigParser()
    parser.read(path, encoding="utf-8")
    return dict(parser[profile])


def minted_secrets() -> list:
    """The secrets the seed planted into the sandbox (the laptop's pre-existing, fake one excluded)."""
    found = []
    for host, spec in DEMO_HOSTS.items():
        for account in spec["homes"]:
            with contextlib.suppress(KeyError, configparser.Error):
                found.append(read_profile(credentials_file(host, account), profile_of(host, account))["aws_secret_access_key"])
    return found


def attacker_cli(aws: LocalAWS, stolen: pathlib.Path, profile: str, args: list) -> subprocess.CompletedProcess:
    """The venv's AWS CLI with nothing but the stolen file: no operator key, no ~/.aws of whoever runs the demo."""
    home = SANDBOX / "attacker"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "AWS_SHARED_CREDENTIALS_FILE": str(stolen),
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_ENDPOINT_URL": aws.endpoint_url,
        "AWS_DEFAULT_REGION": DEFAULT_REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
    }
    cli = [str(BIN / "aws")] if (BIN / "aws").exists() else [sys.executable, "-m", "awscli"]
    return subprocess.run(cli + list(args) + ["--profile", profile], env=env, cwd=home, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120, check=False)


def attack(out: Output, aws: LocalAWS, host: str, account: str) -> tuple:
    stolen = credentials_file(host, account)
    profile = profile_of(host, account)
    out.say(f"4. attacker: found {stolen.relative_to(REPO)} on {host}; trying profile {profile} with the AWS CLI")
    first = None
    for args in ATTACK:
        out.say(f"$ AWS_SHARED_CREDENTIALS_FILE=<{host}'s file> aws {' '.join(args)} --profile {profile}", "   ")
        started = time.time()
        first = first or started
        result = attacker_cli(aws, stolen, profile, args)
        shown = (result.stdout + result.stderr).strip() or f"(exit {result.returncode}, no output)"
        out.say(shown, "     ")
    return stolen, profile, first, time.time()


def show_alert(out: Output, sink: AlertSink, item, first_call: float, last_call: float) -> None:
    alert = item.alert
    out.say(f"5. alert at the sink {item.received_at - first_call:.1f} s after the first call "
            f"({item.received_at - last_call:.1f} s after the last):")
    out.say(format_alert(alert), "   ")
    alerts_dir = SANDBOX / "alerts"
    alerts_dir.mkdir(exist_ok=True)
    (alerts_dir / "generic.json").write_bytes(item.body)
    slack = slack_message(alert)
    (alerts_dir / "slack.json").write_text(json.dumps(slack, indent=2) + "\n", encoding="utf-8")
    signature = {True: "signature verified", False: "BAD SIGNATURE", None: "unsigned"}[item.signature_ok]
    out.say(f"generic webhook JSON, POST {item.path} ({signature}; saved as {(alerts_dir / 'generic.json').relative_to(REPO)}):", "   ")
    out.say(format_generic_json(alert), "   ")
    out.say(f"the same alert as the handler's Slack channel sends it (saved as {(alerts_dir / 'slack.json').relative_to(REPO)}):", "   ")
    out.say(format_slack(slack), "   | ")
    others = [received.alert for received in sink.received() if received.alert is not None and received is not item]
    out.say(f"other alerts received: {len(others)}"
            + "".join(f"\n  {other.get('host')} {other.get('path')} ({other.get('access_key_id')})" for other in others), "   ")


def check_no_secret(out: Output, extra_texts: list) -> None:
    planted = minted_secrets()
    places = {"the demo's output": "".join(out.text)}
    places.update({str(path.relative_to(REPO)): path.read_text(errors="replace") for path in SANDBOX.glob("*.log")})
    places.update({f"extra {index}": text for index, text in enumerate(extra_texts)})
    places.update({str(path.relative_to(REPO)): path.read_text(errors="replace") for path in SANDBOX.glob("alerts/*")})
    leaks = sorted(place for place, text in places.items() for secret in planted if secret in text)
    if not planted:
        raise DemoFailed("no planted secret found to check for")
    if leaks:
        # Where, never what.
        raise DemoFailed(f"a planted secret appears in: {', '.join(leaks)}")
    out.say(f"checked: none of the {len(planted)} planted secrets appears in the output, the logs or the alerts")


def run(out: Output, victim: tuple) -> None:
    started = time.monotonic()
    inventory = prepare_sandbox()
    webhook_secret = secrets.token_hex(24)
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: out.say("6. stopped the local AWS and the alert sink"))
        sink = stack.enter_context(AlertSink(secret=webhook_secret))
        # No background delivery: the recorder delivers once, after the attack, so the whole attack is one
        # batch (on AWS, CloudWatch Logs batches a few minutes of a log stream).
        aws = stack.enter_context(LocalAWS(record=True, delivery_interval=3600))
        out.say(f"1. local AWS (moto, IAM enforced, CloudTrail recorded) at {aws.endpoint_url}; alert sink at {sink.base_url}")
        env = controller_env(aws)
        out.say("2. deploying the detection stack and 3. seeding the demo fleet, side by side")
        detection_vars = {
            "detection_webhook_url": sink.url("/generic"),
            "detection_webhook_format": "generic",
            "detection_webhook_secret": webhook_secret,
            "detection_lambda_build_dir": str(SANDBOX / "build"),
        }
        runs = {}
        for title, playbook, log, extra in (
                ("2. detection stack", "playbooks/deploy_detection.yml", SANDBOX / "deploy_detection.log", detection_vars),
                ("3. seed", "playbooks/seed_canaries.yml", SANDBOX / "seed_canaries.log", None)):
            runs[title] = (start_playbook(playbook, inventory, env, log, extra), log, time.monotonic())
        try:
            texts = wait_playbooks(out, runs)
        finally:
            for process, _log, _started in runs.values():
                stop_playbook(process)
        table = reminder_table(texts["3. seed"])
        out.say("\n".join(table) if table else "(no reminder table in the seed's log)", "   ")

        stolen, _profile, first_call, last_call = attack(out, aws, *victim)
        key_id = read_profile(stolen, profile_of(*victim))["aws_access_key_id"]
        # Record, write to the trail's log group, run the subscription's Lambda: now, not in ~5 minutes.
        aws.recorder.flush()
        arrived = sink.wait(lambda item: item.alert is not None and item.alert.get("access_key_id") == key_id, timeout=ALERT_TIMEOUT)
        if not arrived:
            problems = [d["error"] for d in aws.recorder.deliveries() if d["error"]] + aws.recorder.problems()
            raise DemoFailed(f"no alert for {key_id} within {ALERT_TIMEOUT:.0f} s; deliveries: {len(aws.recorder.deliveries())}, "
                             f"problems: {problems or 'none'}")
        show_alert(out, sink, arrived[0], first_call, last_call)
        check_no_secret(out, [item.body.decode("utf-8", "replace") for item in sink.received()])
    out.say(f"done in {time.monotonic() - started:.0f} s. The planted files stay in {SANDBOX.relative_to(REPO)} "
            "(`make clean` removes them); their keys died with the local AWS.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--victim", default="/".join(VICTIM), choices=[f"{h}/{a}" for h, s in DEMO_HOSTS.items() for a in s["homes"]],
                        help="the host/account whose planted file the attacker takes (default: %(default)s)")
    args = parser.parse_args(argv)
    out = Output()
    try:
        run(out, tuple(args.victim.split("/")))
    except DemoFailed as error:
        out.say(f"demo FAILED: {error}")
        return 1
    except KeyboardInterrupt:
        out.say("demo interrupted; everything it started is stopped")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
