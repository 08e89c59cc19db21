# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/report_canaries.yml (role canarykeys.aws.report) against the local AWS, no fleet: the edge cases.

The acceptance test of the report (every placement the seed planted on the SSH fleet, exactly the
ones used with the AWS CLI flagged) is in test_end_to_end.py.  This file covers, without root, what
a freshly seeded fleet cannot show: canaries are created with boto3 as the collection records them
(tagged IAM users and keys), among them a placement on a host missing from the inventory and one
with two keys, next to a bystander IAM user; one key is really used (sts:GetCallerIdentity signed
with it, which moto records as its last use); the playbook is run with the real ansible-playbook.
The reports must have one row per placement, flag the used key, NOT IN INVENTORY and EXTRA KEY, list
no bystander and contain no secret; the role's IAM calls are counted at the local AWS's proxy, and
restricting to some hosts and running without an inventory are checked too.
"""

from __future__ import annotations

import csv
import html.parser
import io

import pytest

boto3 = pytest.importorskip("boto3")

from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping  # noqa: E402  pylint: disable=wrong-import-position

PLAYBOOK = "playbooks/report_canaries.yml"
# (host, file, profile, user name); old-db01 is not in the test inventory.
PLACEMENTS = [
    ("web01", "/home/deploy/.aws/credentials", "prod", "web01-deploy"),
    ("web01", "/root/.aws/credentials", "backup", "web01-backup"),
    ("web02", "/home/deploy/.aws/credentials", "prod", "web02-deploy"),
    ("laptop-alice", "/home/alice/.aws/credentials", "deploy", "alice-tools"),
    ("old-db01", "/root/.aws/credentials", "backup", "db01-backup"),
]
INVENTORY = "all:\n  hosts:\n    web01:\n    web02:\n    laptop-alice:\n    laptop-bob:\n"


class TableCounter(html.parser.HTMLParser):
    """Rows and the text of each row of the report's HTML table body."""

    def __init__(self):
        super().__init__()
        self.rows, self._in_body = [], False

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([dict(attrs).get("class", ""), ""])

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False

    def handle_data(self, data):
        if self._in_body and self.rows:
            self.rows[-1][1] += data + " "


@pytest.fixture
def estate(aws):
    """The placements above, a bystander user with a key, and the key of web02 used once."""
    iam = aws.client("iam")
    keys = {}
    for host, path, profile, user in PLACEMENTS:
        tags = canary_mapping.mapping_tags(host, path, profile, reminder=f"{host} {path} {profile}",
                                           planted_at="2025-01-01T00:00:00Z", planted_by="Seed canary AWS keys")
        iam.create_user(UserName=user, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        keys[host, profile] = iam.create_access_key(UserName=user)["AccessKey"]
        # As canary_key leaves the user after the mint: its tags name the key it handed out.
        named = canary_mapping.planted_key_tags(keys[host, profile]["AccessKeyId"], keys[host, profile]["CreateDate"])
        iam.tag_user(UserName=user, Tags=[{"Key": k, "Value": v} for k, v in named.items()])
    # A second key on one placement: the newer one is the planted one, the older an orphan.
    keys["web01", "backup", "newer"] = iam.create_access_key(UserName="web01-backup")["AccessKey"]
    iam.create_user(UserName="ci-runner", Tags=[{"Key": "team", "Value": "platform"}])
    keys["bystander"] = iam.create_access_key(UserName="ci-runner")["AccessKey"]
    used = keys["web02", "prod"]
    sts = boto3.client("sts", endpoint_url=aws.endpoint_url, region_name="eu-central-1",
                       aws_access_key_id=used["AccessKeyId"], aws_secret_access_key=used["SecretAccessKey"])
    assert sts.get_caller_identity()["Arn"].endswith(":user/web02-deploy")
    return keys


def assert_no_secret(keys, *texts):
    for key in keys.values():
        for text in texts:
            assert key["SecretAccessKey"] not in text


def test_report_flags_the_used_key_and_holds_no_secret(aws, estate, run_playbook, tmp_path):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY)
    reports = tmp_path / "reports"

    before = len(aws.calls())
    extra_vars = {"report_dir": str(reports), "canary_aws": {"endpoint_url": aws.endpoint_url}}
    rc, output = run_playbook(PLAYBOOK, inventory, extra_vars=extra_vars)
    assert rc == 0, output[-3000:]
    # Only the controller ran: no inventory host appears as a task target.
    assert "ok: [localhost]" in output and "web01]" not in output
    assert "USED: 1 canary key(s) used, on web02" in output
    calls = [c["action"] for c in aws.calls()[before:] if c["service"] == "iam"]
    # One page; the credential report (generated, polled once, downloaded) names the single key of four
    # canaries; web01-backup's two keys need its ListAccessKeys; one GetAccessKeyLastUsed per key (6).
    assert {action: calls.count(action) for action in set(calls)} == {
        "GetAccountAuthorizationDetails": 1, "GenerateCredentialReport": 2, "GetCredentialReport": 1,
        "ListAccessKeys": 1, "GetAccessKeyLastUsed": 6}

    markdown = (reports / "canary_estate.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| Flags")]
    assert len(table) == len(PLACEMENTS)
    used_key = estate["web02", "prod"]["AccessKeyId"]
    head = markdown.split("| Flags")[0]
    assert "5 placements on 4 hosts, 6 keys, 1 orphan(s)." in head
    assert "**USED: 1 canary placement(s)" in head and used_key in head and "eu-central-1" in head
    assert "**NOT IN INVENTORY: old-db01**" in head
    [web02_line] = [line for line in table if "| web02 |" in line]
    assert web02_line.startswith("| USED |") and "| sts | eu-central-1 |" in web02_line
    assert all("never" in line for line in table if line is not web02_line)

    rows = list(csv.DictReader(io.StringIO((reports / "canary_estate.csv").read_text())))
    assert sorted((r["host"], r["file"], r["profile"], r["iam_user"]) for r in rows) == sorted(PLACEMENTS)
    by_user = {r["iam_user"]: r for r in rows}
    assert by_user["web02-deploy"]["used"] == "USED" and by_user["web02-deploy"]["access_key_id"] == used_key
    assert [r["iam_user"] for r in rows if r["used"]] == ["web02-deploy"]
    assert {r["iam_user"]: r["in_inventory"] for r in rows}["db01-backup"] == "no"
    assert {r["in_inventory"] for r in rows if r["host"] != "old-db01"} == {"yes"}
    assert all(r["age_days"] == "0" for r in rows)
    assert by_user["alice-tools"]["access_key_id"] == estate["laptop-alice", "deploy"]["AccessKeyId"]
    assert by_user["web01-backup"]["access_key_id"] == estate["web01", "backup", "newer"]["AccessKeyId"]
    assert by_user["web01-backup"]["key_count"] == "2"
    assert [line for line in table if "EXTRA KEY" in line] == [line for line in table if "web01-backup" in line]

    page = (reports / "canary_estate.html").read_text()
    parser = TableCounter()
    parser.feed(page)
    assert len(parser.rows) == len(PLACEMENTS)
    assert [text.split()[0:2] for cls, text in parser.rows if cls == "used"] == [["USED", "web02"]]
    assert page.index('class="alarm"') < page.index("<table>")
    assert "5 placements on 4 hosts, 6 keys, 1 orphan(s)." in page

    for text in (markdown, page, (reports / "canary_estate.csv").read_text()):
        assert "ci-runner" not in text
    assert_no_secret(estate, output, markdown, page, (reports / "canary_estate.csv").read_text())
    assert oct((reports / "canary_estate.csv").stat().st_mode & 0o777) == "0o640"


def test_report_restricted_to_some_hosts(aws, estate, run_playbook, tmp_path):  # pylint: disable=unused-argument
    reports = tmp_path / "reports"
    rc, output = run_playbook(PLAYBOOK, tmp_path / "missing-inventory.yml",
                              extra_vars={"report_dir": str(reports), "canary_report_hosts": ["web01", "old-db01"]})
    assert rc == 0, output[-3000:]
    rows = list(csv.DictReader(io.StringIO((reports / "canary_estate.csv").read_text())))
    assert sorted(r["iam_user"] for r in rows) == ["db01-backup", "web01-backup", "web01-deploy"]
    # No inventory given: nothing can be missing from it, and nothing was used among these.
    assert {r["in_inventory"] for r in rows} == {""}
    assert "No canary key has been used." in (reports / "canary_estate.md").read_text()
    assert_no_secret(estate, output)


def test_report_lists_dead_placements(aws, estate, run_playbook, tmp_path):
    """A key deleted in IAM behind the product's back: its placement is listed with status dead until re-planted."""
    iam = aws.client("iam")
    iam.delete_access_key(UserName="web01-deploy", AccessKeyId=estate["web01", "prod"]["AccessKeyId"])
    iam.update_access_key(UserName="alice-tools", AccessKeyId=estate["laptop-alice", "deploy"]["AccessKeyId"], Status="Inactive")
    reports = tmp_path / "reports"
    rc, output = run_playbook(PLAYBOOK, tmp_path / "missing-inventory.yml",
                              extra_vars={"report_dir": str(reports), "canary_aws": {"endpoint_url": aws.endpoint_url}})
    assert rc == 0, output[-3000:]
    assert "2 dead" in " ".join(output.split())
    rows = list(csv.DictReader(io.StringIO((reports / "canary_estate.csv").read_text())))
    assert sorted(r["iam_user"] for r in rows if r["key_status"] == "dead") == ["alice-tools", "web01-deploy"]
    markdown = (reports / "canary_estate.md").read_text()
    assert "**DEAD: 2 placement(s)" in markdown
    dead_lines = [line for line in markdown.splitlines() if "| dead |" in line]
    assert len(dead_lines) == 2 and all(line.startswith("| DEAD") for line in dead_lines)
    assert_no_secret(estate, output, markdown)
