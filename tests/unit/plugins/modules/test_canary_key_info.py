# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""canarykeys.aws.canary_key_info: the module's real ``main()`` and real botocore against a real moto server.

The listing logic has its own tests (tests/unit/plugins/module_utils/test_iam_estate.py); these
check what the module adds: options, AWS connection from the environment, the result shape, check mode,
error reporting, and IAM calls counted at the wire by the local AWS proxy.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

from ansible.module_utils.testing import patch_module_args  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.modules import canary_key_info  # noqa: E402
from tools.local_aws.operations import is_read_only  # noqa: E402  pylint: disable=wrong-import-position

REGION = "us-east-1"


# The local AWS, reset, reached the standard way: AWS_ENDPOINT_URL and fake operator credentials.
pytestmark = pytest.mark.usefixtures("operator_credentials")


@pytest.fixture
def secrets():
    """Every secret access key a test mints; the module's output must contain none of them."""
    return []


def plant(aws, secrets, host, profile="backup", keys=1):
    iam = aws.client("iam")
    name = f"{host}-{profile}"
    tags = canary_mapping.mapping_tags(host, f"/root/.aws/credentials-{profile}", profile, planted_at="2020-01-01T00:00:00Z")
    iam.create_user(UserName=name, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    minted = [iam.create_access_key(UserName=name)["AccessKey"] for _index in range(keys)]
    secrets.extend(key["SecretAccessKey"] for key in minted)
    if minted:
        # As canary_key leaves a user after the mint: its tags name the key it handed out.
        named = canary_mapping.planted_key_tags(minted[0]["AccessKeyId"], minted[0]["CreateDate"])
        iam.tag_user(UserName=name, Tags=[{"Key": k, "Value": v} for k, v in named.items()])
    return minted


def run_module(capsys, secrets, check_mode=False, **args):
    with patch_module_args(dict(args, _ansible_check_mode=check_mode)):
        with pytest.raises(SystemExit):
            canary_key_info.main()
    out = capsys.readouterr().out
    for secret in secrets:
        assert secret not in out
    return json.loads(out)


def iam_calls(aws, since):
    counts = {}
    for call in aws.calls()[since:]:
        if call["service"] == "iam":
            counts[call["action"]] = counts.get(call["action"], 0) + 1
    return counts


@pytest.fixture
def estate(aws, secrets):
    """web01 with one key, web02 with two (the older one an orphan), web03 without a key, and a bystander."""
    keys = {"web01": plant(aws, secrets, "web01"), "web02": plant(aws, secrets, "web02", keys=2),
            "web03": plant(aws, secrets, "web03", keys=0)}
    iam = aws.client("iam")
    iam.create_user(UserName="ci-deploy")
    secrets.append(iam.create_access_key(UserName="ci-deploy")["AccessKey"]["SecretAccessKey"])
    return keys


def test_lists_the_estate_read_only(aws, capsys, secrets, estate):
    before = len(aws.calls())
    result = run_module(capsys, secrets)

    assert result["changed"] is False
    assert [c["user_name"] for c in result["canaries"]] == ["web01-backup", "web02-backup", "web03-backup"]
    assert [row["access_key_id"] for row in result["placements"]] == [
        estate["web01"][0]["AccessKeyId"], estate["web02"][1]["AccessKeyId"], None]
    assert [(o["host"], o["reason"]) for o in result["orphans"]] == [("web02", "not_newest"), ("web03", "no_key")]
    assert result["summary"] == {"canaries": 3, "access_keys": 3, "orphans": 2, "hosts": 3, "dead": 0}
    assert result["key_source"] == "credential_report"
    # web01's single key comes from the credential report; web02 (two keys) and web03 (none) are listed.
    assert [c["key_source"] for c in result["canaries"]] == ["credential_report", "list_access_keys", "list_access_keys"]
    assert result["iam_calls"] == iam_calls(aws, before) == {
        "GetAccountAuthorizationDetails": 1, "GenerateCredentialReport": 2, "GetCredentialReport": 1, "ListAccessKeys": 2}
    assert [c["action"] for c in aws.calls()[before:] if not is_read_only(c["action"])] == []


def test_check_mode_gives_the_same_answer(aws, capsys, secrets, estate):  # pylint: disable=unused-argument
    normal = run_module(capsys, secrets)
    checked = run_module(capsys, secrets, check_mode=True)
    assert checked["canaries"] == normal["canaries"]
    assert checked["changed"] is False


def test_options_and_their_aliases(aws, capsys, secrets, estate):
    iam = aws.client("iam")
    iam.update_access_key(UserName="web02-backup", AccessKeyId=estate["web02"][0]["AccessKeyId"], Status="Inactive")

    result = run_module(capsys, secrets, hosts=["web02", "web03"], state="Inactive")
    [canary] = result["canaries"]
    assert [k["access_key_id"] for k in canary["keys"]] == [estate["web02"][0]["AccessKeyId"]]
    assert [o["host"] for o in result["orphans"]] == ["web02", "web03"]

    assert run_module(capsys, secrets, iam_path="/nowhere/")["canaries"] == []


def test_last_used_only_when_asked(aws, capsys, secrets, estate):
    key = estate["web02"][1]
    sts = boto3.client("sts", endpoint_url=aws.endpoint_url, region_name="ap-southeast-2",
                       aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    sts.get_caller_identity()

    before = len(aws.calls())
    quiet = run_module(capsys, secrets)
    assert "GetAccessKeyLastUsed" not in iam_calls(aws, before)
    assert "last_used" not in quiet["canaries"][0]["keys"][0]

    before = len(aws.calls())
    result = run_module(capsys, secrets, last_used=True)
    assert iam_calls(aws, before)["GetAccessKeyLastUsed"] == 3
    row = result["placements"][1]
    assert (row["host"], row["used"], row["last_used_service"], row["last_used_region"]) == ("web02", True, "sts", "ap-southeast-2")
    assert [r["used"] for r in result["placements"]] == [False, True, False]
    assert result["summary"]["used"] == 1


def test_list_access_keys_source(aws, capsys, secrets, estate):  # pylint: disable=unused-argument
    default = run_module(capsys, secrets)
    before = len(aws.calls())
    result = run_module(capsys, secrets, key_source="list_access_keys")
    assert iam_calls(aws, before) == {"GetAccountAuthorizationDetails": 1, "ListAccessKeys": 3}
    assert result["placements"] == default["placements"] and result["orphans"] == default["orphans"]
    assert [len(c["keys"]) for c in result["canaries"]] == [1, 2, 0]
    assert result["credential_report_as_of"] is None


def test_explicit_endpoint_and_page_size(aws, capsys, secrets, estate, monkeypatch):  # pylint: disable=unused-argument
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    result = run_module(capsys, secrets, endpoint_url=aws.endpoint_url, page_size=1, concurrency=1)
    assert len(result["canaries"]) == 3


@pytest.mark.parametrize("args, message", [({"page_size": 5000}, "page_size"), ({"concurrency": 99}, "concurrency")])
def test_bad_numbers_fail_clearly(aws, capsys, secrets, args, message):  # pylint: disable=unused-argument
    result = run_module(capsys, secrets, **args)
    assert result["failed"] is True and message in result["msg"]


def test_aws_errors_come_through_fail_json_aws(aws, capsys, secrets, monkeypatch):  # pylint: disable=unused-argument
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    result = run_module(capsys, secrets, aws_config={"retries": {"max_attempts": 1}, "connect_timeout": 2})
    assert result["failed"] is True
    assert "Failed to list the canary IAM users" in result["msg"]


def test_ansible_doc_renders():
    ansible_doc = pathlib.Path(sys.executable).with_name("ansible-doc")
    if not ansible_doc.exists():
        pytest.skip("ansible-doc is not installed next to this interpreter")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    proc = subprocess.run([str(ansible_doc), "--json", "canarykeys.aws.canary_key_info"], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)["canarykeys.aws.canary_key_info"]
    assert {"host", "status", "iam_path", "last_used", "key_source", "page_size"} <= set(doc["doc"]["options"])
    assert {"canaries", "placements", "orphans", "iam_calls"} <= set(doc["return"])


def test_the_controller_policy_allows_every_call_the_module_makes(aws, capsys, secrets, estate):  # pylint: disable=unused-argument
    policy = json.loads((REPO / "docs" / "controller-policy.json").read_text())
    allowed = {action for statement in policy["Statement"] if statement["Effect"] == "Allow"
               for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}
    before = len(aws.calls())
    for key_source in ("credential_report", "list_access_keys"):
        run_module(capsys, secrets, key_source=key_source, last_used=True)
    called = {"iam:" + c["action"] for c in aws.calls()[before:] if c["service"] == "iam"}
    assert called >= {"iam:GetAccountAuthorizationDetails", "iam:GenerateCredentialReport", "iam:GetCredentialReport",
                      "iam:ListAccessKeys", "iam:GetAccessKeyLastUsed"}
    assert called <= allowed, called - allowed


def test_lease_held_is_looked_at_only_when_asked_with_one_get_policy(aws, capsys, secrets, estate):  # pylint: disable=unused-argument
    before = len(aws.calls())
    assert run_module(capsys, secrets)["lease_held"] is None
    assert "GetPolicy" not in iam_calls(aws, before)

    before = len(aws.calls())
    free = run_module(capsys, secrets, lease_name="estate-change-lock")
    assert free["lease_held"] is False
    assert iam_calls(aws, before)["GetPolicy"] == free["iam_calls"]["GetPolicy"] == 1

    iam = aws.client("iam")
    iam.create_policy(PolicyName="team-lock", Path="/canary/", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}))
    assert run_module(capsys, secrets, lease_name="team-lock", lease_iam_path="/canary/")["lease_held"] is True
    # Another name, or the same name at another path, is another lease.
    assert run_module(capsys, secrets, lease_name="team-lock")["lease_held"] is False
    before = len(aws.calls())
    assert run_module(capsys, secrets, lease_name="team-lock", lease_iam_path="/canary/", check_mode=True)["lease_held"] is True
    assert [c["action"] for c in aws.calls()[before:] if not is_read_only(c["action"])] == []
