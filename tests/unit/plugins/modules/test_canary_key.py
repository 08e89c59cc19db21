# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""canarykeys.aws.canary_key against a real moto server, IAM calls counted at the wire.

moto_server runs on a free port behind the local AWS's counting proxy (``tools.local_aws.server``), once
per session, reset before each test.  The module runs for real: in-process through its ``main()`` (real
botocore, real HTTP) for most tests, and through the ``ansible`` CLI where what a person sees matters.
Every output is searched for the secrets minted.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import types

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]

boto3 = pytest.importorskip("boto3")
botocore = pytest.importorskip("botocore")
pytest.importorskip("moto")

from ansible.module_utils.testing import patch_module_args  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.amazon.aws.plugins.module_utils import cloud  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402

from ansible_collections.canarykeys.aws.plugins.module_utils._iam import calls, naming  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping as cm  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.modules import canary_key  # noqa: E402

REGION = "us-east-1"
ANSIBLE = pathlib.Path(sys.executable).parent / "ansible"
HOST = "web03.example.com"
PATH = "/home/deploy/.aws/credentials"
PLACEMENT = dict(host=HOST, path=PATH, profile_name="prod")
DENY_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}


@pytest.fixture(name="iam")
def fixture_iam(aws):
    # Straight to moto: the test's own reads and set-up are not counted as the module's calls.
    return aws.client("iam", direct=True)


@pytest.fixture(name="run")
def fixture_run(aws, capsys):
    """Run the module's main() in-process; returns (result, everything it printed)."""

    def run(check_mode=False, credentials=True, **args):
        args = dict(args, region=REGION, endpoint_url=aws.endpoint_url, _ansible_check_mode=check_mode)
        if credentials:
            args.update(access_key="testing", secret_key="testing")
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                canary_key.main()
        out, err = capsys.readouterr()
        return json.loads(out), out + err

    return run


def iam_actions(aws, since):
    return [call["action"] for call in aws.calls()[since:] if call["service"] == "iam"]


def writes(actions):
    return [action for action in actions if not re.match(r"(Get|List)", action)]


def canary_users(iam):
    return {user["UserName"]: user for user in iam.list_users()["Users"]}


def keys_of(iam, user_name):
    return {key["AccessKeyId"]: key["Status"] for key in iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]}


def tags_of(iam, user_name):
    return cm.tags_list_to_dict(iam.list_user_tags(UserName=user_name)["Tags"])


def seed(run, **extra):
    """A first mint for the placement, checked to have printed its secret only in the return value."""
    result, printed = run(**dict(PLACEMENT, reminder="web tier, ask ops", planted_by="test play", **extra))
    assert result.get("changed") and result.get("minted"), result
    assert printed.count(result["secret_access_key"]) == 1
    return result


# ---------------------------------------------------------------- state=present


def test_first_run_creates_user_tags_and_one_active_key_and_no_policy(aws, iam, run):
    mark = len(aws.calls())
    result = seed(run)
    actions = iam_actions(aws, mark)
    # The key is named in the user's tags after the mint, so that canary_key_info can read it in bulk.
    assert writes(actions) == ["CreateUser", "CreateAccessKey", "TagUser"]

    name = result["user_name"]
    assert cm.planted_key_from_tags(tags_of(iam, name))[0] == result["access_key_id"]
    assert name == "web03-prod" and result["deny_all"] is False
    assert result["user_created"] is True and result["generation"] == 1
    assert result["user_arn"] == f"arn:aws:iam::123456789012:user/{name}"
    assert result["placement_id"] == cm.placement_id(HOST, PATH, "prod")
    assert result["deleted_access_key_ids"] == []
    assert keys_of(iam, name) == {result["access_key_id"]: "Active"}

    tags = tags_of(iam, name)
    assert tags[cm.TAG_MANAGED] == "true"
    assert (tags[cm.TAG_PLACEMENT], tags[cm.TAG_HOST], tags[cm.TAG_PATH], tags[cm.TAG_PROFILE]) == (result["placement_id"], HOST, PATH, "prod")
    assert (tags[cm.TAG_REMINDER], tags[cm.TAG_PLANTED_BY], tags[cm.TAG_GENERATION]) == ("web tier_ ask ops", "test play", "1")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", tags[cm.TAG_PLANTED_AT])
    assert result["mapping"] == cm.mapping_from_tags(tags)

    # No permissions and nothing an error message would reveal: no policy, no group, no boundary.
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == []
    assert iam.list_attached_user_policies(UserName=name)["AttachedPolicies"] == []
    assert iam.list_groups_for_user(UserName=name)["Groups"] == []
    assert "PermissionsBoundary" not in iam.get_user(UserName=name)["User"]
    assert iam.get_user(UserName=name)["User"]["Path"] == "/"


def test_deny_all_is_an_opt_in_and_either_setting_migrates_the_user(aws, iam, run):
    first = seed(run, deny_all=True)
    name = first["user_name"]
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == [calls.DENY_ALL_POLICY_NAME]
    document = iam.get_user_policy(UserName=name, PolicyName=calls.DENY_ALL_POLICY_NAME)["PolicyDocument"]
    assert (json.loads(document) if isinstance(document, str) else document) == DENY_ALL
    planted = dict(PLACEMENT, planted_key_id=first["access_key_id"])

    # An estate seeded with the guard loses it on its next run without it; check mode says so and writes nothing.
    mark = len(aws.calls())
    assert run(check_mode=True, **planted)[0]["changed"] is True
    assert writes(iam_actions(aws, mark)) == []
    mark = len(aws.calls())
    result = run(**planted)[0]
    assert result["changed"] is True and result["minted"] is False and result["access_key_id"] == first["access_key_id"]
    assert writes(iam_actions(aws, mark)) == ["DeleteUserPolicy"]
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == []
    # Migrated: the next run writes nothing.
    mark = len(aws.calls())
    assert run(**planted)[0]["changed"] is False
    assert iam_actions(aws, mark) == ["GetUser", "ListAccessKeys", "ListUserPolicies"]
    # The caller that knows the policies (canary_key_batch from canary_key_info's bulk read) spares the read.
    # An inline policy someone else put is not ours to remove.
    iam.put_user_policy(UserName=name, PolicyName="extra", PolicyDocument=json.dumps(DENY_ALL))
    assert run(**planted)[0]["changed"] is False
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == ["extra"]
    iam.delete_user_policy(UserName=name, PolicyName="extra")
    # And the guard comes back when asked for.
    mark = len(aws.calls())
    assert run(deny_all=True, **planted)[0]["changed"] is True
    assert writes(iam_actions(aws, mark)) == ["PutUserPolicy"]
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == [calls.DENY_ALL_POLICY_NAME]


def test_rerun_with_the_planted_key_costs_three_reads_and_no_write(aws, iam, run):
    first = seed(run)
    mark = len(aws.calls())
    result, printed = run(**dict(PLACEMENT, reminder="web tier, ask ops", planted_by="test play", planted_key_id=first["access_key_id"]))
    # The third read tells whether the user still carries a deny-all (canary_key_batch is told instead).
    assert iam_actions(aws, mark) == ["GetUser", "ListAccessKeys", "ListUserPolicies"]
    assert result["changed"] is False and result["minted"] is False
    assert "secret_access_key" not in result and first["secret_access_key"] not in printed
    assert (result["access_key_id"], result["user_name"], result["generation"]) == (first["access_key_id"], first["user_name"], 1)
    assert keys_of(iam, first["user_name"]) == {first["access_key_id"]: "Active"}


def test_a_changed_reminder_is_one_tag_write_and_keeps_planted_at(aws, iam, run):
    first = seed(run)
    planted_at = tags_of(iam, first["user_name"])[cm.TAG_PLANTED_AT]
    mark = len(aws.calls())
    result = run(**dict(PLACEMENT, reminder="moved to the data team", planted_key_id=first["access_key_id"]))[0]
    assert result["changed"] is True and result["minted"] is False
    assert writes(iam_actions(aws, mark)) == ["TagUser"]
    tags = tags_of(iam, first["user_name"])
    assert tags[cm.TAG_REMINDER] == "moved to the data team"
    assert (tags[cm.TAG_PLANTED_AT], tags[cm.TAG_GENERATION], tags[cm.TAG_PLANTED_BY]) == (planted_at, "1", "test play")


def test_a_key_of_a_real_user_is_refused_and_nothing_is_created(aws, iam, run):
    iam.create_user(UserName="alice")
    real_key = iam.create_access_key(UserName="alice")["AccessKey"]["AccessKeyId"]
    mark = len(aws.calls())
    result, printed = run(**dict(PLACEMENT, planted_key_id=real_key))
    assert result["failed"] is True
    assert result["msg"] == (
        f"profile prod in {PATH} on {HOST} holds access key {real_key}, which is not this placement's canary key; "
        "refusing to mint: choose another profile"
    )
    assert writes(iam_actions(aws, mark)) == []
    assert list(canary_users(iam)) == ["alice"]
    assert "Traceback" not in printed


def test_a_key_of_another_placement_or_unknown_is_refused(aws, iam, run):
    other = seed(run, profile_name="backup", path="/root/.aws/credentials")
    for foreign in (other["access_key_id"], "AKIAIOSFODNN7EXAMPLE"):
        result = run(**dict(PLACEMENT, planted_key_id=foreign))[0]
        assert result["failed"] is True and "refusing to mint" in result["msg"] and foreign in result["msg"]
    assert list(canary_users(iam)) == [other["user_name"]]
    assert keys_of(iam, other["user_name"]) == {other["access_key_id"]: "Active"}


def test_an_unplanted_second_key_is_deleted_as_an_orphan(aws, iam, run):
    first = seed(run)
    orphan = iam.create_access_key(UserName=first["user_name"])["AccessKey"]["AccessKeyId"]
    mark = len(aws.calls())
    result = run(**dict(PLACEMENT, planted_key_id=first["access_key_id"]))[0]
    assert (result["changed"], result["minted"], result["deleted_access_key_ids"]) == (True, False, [orphan])
    assert writes(iam_actions(aws, mark)) == ["DeleteAccessKey"]
    assert keys_of(iam, first["user_name"]) == {first["access_key_id"]: "Active"}


def test_a_key_never_planted_is_replaced_and_the_generation_grows(aws, iam, run):
    # The controller died between minting and planting: the profile holds nothing, IAM holds a key.
    first = seed(run)
    second = seed(run)
    assert second["user_name"] == first["user_name"] and second["user_created"] is False
    assert second["deleted_access_key_ids"] == [first["access_key_id"]]
    assert second["generation"] == 2 and tags_of(iam, first["user_name"])[cm.TAG_GENERATION] == "2"
    assert keys_of(iam, first["user_name"]) == {second["access_key_id"]: "Active"}


def test_an_inactive_planted_key_is_dead_deleted_and_replaced(aws, iam, run):
    first = seed(run)
    iam.update_access_key(UserName=first["user_name"], AccessKeyId=first["access_key_id"], Status="Inactive")
    second = seed(run, planted_key_id=first["access_key_id"])
    assert second["generation"] == 2 and second["deleted_access_key_ids"] == [first["access_key_id"]]
    assert second["dead_access_key_id"] == first["access_key_id"]
    assert keys_of(iam, first["user_name"]) == {second["access_key_id"]: "Active"}
    third = run(**dict(PLACEMENT, planted_key_id=second["access_key_id"]))[0]
    assert third["deleted_access_key_ids"] == [] and not third["minted"] and not third["changed"]


def test_check_mode_reports_the_mint_and_writes_nothing(aws, iam, run):
    mark = len(aws.calls())
    result = run(check_mode=True, **PLACEMENT)[0]
    assert (result["changed"], result["minted"], result["user_created"], result["access_key_id"]) == (True, True, True, None)
    assert "secret_access_key" not in result and result["user_arn"] == ""
    assert result["user_name"] == naming.candidate_names(HOST, PATH, "prod")[0]
    assert writes(iam_actions(aws, mark)) == [] and canary_users(iam) == {}

    first = seed(run)
    iam.create_access_key(UserName=first["user_name"])
    mark = len(aws.calls())
    for state, extra in (("present", {"planted_key_id": first["access_key_id"]}), ("absent", {})):
        result = run(check_mode=True, state=state, **PLACEMENT, **extra)[0]
        assert result["changed"] is True and len(result["deleted_access_key_ids"]) in (1, 2)
    assert writes(iam_actions(aws, mark)) == []
    assert len(keys_of(iam, first["user_name"])) == 2


# ---------------------------------------------------------------- naming against IAM


def test_a_real_user_with_the_drawn_name_is_left_alone(aws, iam, run):
    names = naming.candidate_names(HOST, PATH, "prod")
    iam.create_user(UserName=names[0], Tags=[{"Key": "team", "Value": "ops"}])
    result = seed(run)
    assert result["user_name"] == names[1]
    assert tags_of(iam, names[0]) == {"team": "ops"} and keys_of(iam, names[0]) == {}
    mark = len(aws.calls())
    again = run(**dict(PLACEMENT, planted_key_id=result["access_key_id"]))[0]
    assert again["changed"] is False and again["user_name"] == names[1]
    assert iam_actions(aws, mark) == ["GetUser", "GetUser", "ListAccessKeys", "ListUserPolicies"]


def test_two_placements_wanting_the_same_name_get_two_users(aws, iam, run):
    first = seed(run, user_name_template="{host}")
    second = seed(run, user_name_template="{host}", path="/root/.aws/credentials", profile_name="backup")
    # The next candidate of a name without the purpose is the name with it.
    assert (first["user_name"], second["user_name"]) == ("web03", "web03-backup")
    assert tags_of(iam, "web03-backup")[cm.TAG_PATH] == "/root/.aws/credentials"
    for result, path, profile in ((first, PATH, "prod"), (second, "/root/.aws/credentials", "backup")):
        again = run(host=HOST, path=path, profile_name=profile, user_name_template="{host}", planted_key_id=result["access_key_id"])[0]
        assert again["changed"] is False and again["user_name"] == result["user_name"]


def test_a_user_found_by_its_key_when_an_earlier_name_came_free(aws, iam, run):
    names = naming.candidate_names(HOST, PATH, "prod")
    iam.create_user(UserName=names[0])
    first = seed(run)
    iam.delete_user(UserName=names[0])
    mark = len(aws.calls())
    result = run(**dict(PLACEMENT, planted_key_id=first["access_key_id"]))[0]
    assert result["changed"] is False and result["user_name"] == names[1]
    assert iam_actions(aws, mark) == ["GetUser", "GetAccessKeyLastUsed", "GetUser", "ListAccessKeys", "ListUserPolicies"]


@pytest.mark.parametrize(
    "args, message",
    [
        ({"user_name_template": "{host}-canary"}, "contains 'canary'"),
        ({"user_name_template": "{hostname}"}, "may use only"),
        ({"host": "日本"}, "host '日本' has no character usable"),
        ({"iam_path": "/honey/"}, "iam_path '/honey/' contains 'honey'"),
        ({"iam_path": "service"}, "is not an IAM path"),
    ],
)
def test_refused_naming_makes_no_aws_call(aws, iam, run, args, message):
    mark = len(aws.calls())
    result = run(**dict(PLACEMENT, **args))[0]
    assert result["failed"] is True and message in result["msg"]
    assert iam_actions(aws, mark) == []
    assert canary_users(iam) == {}


# ---------------------------------------------------------------- state=absent


def test_absent_with_the_minted_key_deletes_it_and_the_empty_user(aws, iam, run):
    first = seed(run)
    result = run(state="absent", access_key_id=first["access_key_id"], **PLACEMENT)[0]
    assert (result["changed"], result["deleted_access_key_ids"], result["user_deleted"]) == (True, [first["access_key_id"]], True)
    assert canary_users(iam) == {}
    again = run(state="absent", access_key_id=first["access_key_id"], **PLACEMENT)[0]
    assert again["changed"] is False and again["user_name"] == ""


def test_absent_with_a_key_id_touches_only_that_key(aws, iam, run):
    first = seed(run)
    iam.create_user(UserName="alice")
    alices = iam.create_access_key(UserName="alice")["AccessKey"]["AccessKeyId"]
    result = run(state="absent", access_key_id=alices, **PLACEMENT)[0]
    assert result["changed"] is False and result["deleted_access_key_ids"] == []
    assert keys_of(iam, "alice") == {alices: "Active"}
    assert keys_of(iam, first["user_name"]) == {first["access_key_id"]: "Active"}

    # Two keys: the one named goes, the user stays with the other.
    extra = iam.create_access_key(UserName=first["user_name"])["AccessKey"]["AccessKeyId"]
    result = run(state="absent", access_key_id=extra, **PLACEMENT)[0]
    assert (result["changed"], result["user_deleted"], result["access_key_id"]) == (True, False, first["access_key_id"])
    assert keys_of(iam, first["user_name"]) == {first["access_key_id"]: "Active"}


def test_absent_without_a_key_id_retires_the_whole_placement(aws, iam, run):
    first = seed(run)
    iam.create_access_key(UserName=first["user_name"])
    iam.put_user_policy(UserName=first["user_name"], PolicyName="extra", PolicyDocument=json.dumps(DENY_ALL))
    result = run(state="absent", **PLACEMENT)[0]
    assert result["changed"] is True and len(result["deleted_access_key_ids"]) == 2 and result["user_deleted"] is True
    assert canary_users(iam) == {}


# ---------------------------------------------------------------- errors and retries


def test_missing_credentials_is_one_clear_message(aws, iam, run):
    mark = len(aws.calls())
    result, printed = run(credentials=False, **PLACEMENT)
    assert result["failed"] is True
    assert result["msg"] == canary_key.NO_CREDENTIALS + ": Unable to locate credentials"
    assert iam_actions(aws, mark) == [] and canary_users(iam) == {}
    assert printed.count("Unable to locate credentials") == 1


def test_the_controllers_aws_profile_is_aws_profile_not_the_placements(aws, iam, run, tmp_path, monkeypatch):
    # The controller's credentials file knows "ops" only: reading the placement's "prod" as an AWS
    # profile would fail with ProfileNotFound, and a real controller could sign in to the wrong account.
    credentials = tmp_path / "controller-credentials"
    credentials.write_text("[ops]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    result = run(credentials=False, aws_profile="ops", **PLACEMENT)[0]
    assert result.get("minted") is True, result.get("msg")
    assert keys_of(iam, result["user_name"]) == {result["access_key_id"]: "Active"}
    monkeypatch.setenv("AWS_PROFILE", "ops")
    again = run(credentials=False, planted_key_id=result["access_key_id"], **PLACEMENT)[0]
    assert again.get("changed") is False, again.get("msg")


def test_every_iam_call_is_retried_when_throttled(aws, iam, run, monkeypatch):
    """The first call of each IAM operation is throttled; the run still succeeds, one backoff per operation."""
    sleeps = []
    monkeypatch.setattr(cloud, "time", types.SimpleNamespace(sleep=sleeps.append))
    throttled = []
    original = AnsibleAWSModule.client

    def throttle_first_call(model, **_kwargs):
        if model.name in throttled:
            return None
        throttled.append(model.name)
        response = botocore.awsrequest.AWSResponse("https://iam.amazonaws.com/", 400, {}, None)
        return response, {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}, "ResponseMetadata": {"HTTPStatusCode": 400}}

    def client(self, service, retry_decorator=None, **kwargs):
        wrapped = original(self, service, retry_decorator=retry_decorator, **kwargs)
        # The hook sits under amazon.aws's wrapper, where botocore's own retries never see it.
        getattr(wrapped, "client", wrapped).meta.events.register("before-call.iam", throttle_first_call)
        return wrapped

    monkeypatch.setattr(AnsibleAWSModule, "client", client)
    names = naming.candidate_names(HOST, PATH, "prod")
    iam.create_user(UserName=names[0])
    first = seed(run, deny_all=True)
    iam.create_access_key(UserName=first["user_name"])
    result = run(state="absent", **PLACEMENT)[0]
    assert result["user_deleted"] is True and canary_users(iam).keys() == {names[0]}
    assert sorted(throttled) == sorted(["GetUser", "ListAccessKeys", "CreateUser", "PutUserPolicy", "CreateAccessKey", "TagUser",
                                        "DeleteAccessKey", "ListUserPolicies", "DeleteUserPolicy", "DeleteUser"])
    assert len(sleeps) == len(throttled)


# ---------------------------------------------------------------- through the ansible CLI


@pytest.fixture(name="cli")
def fixture_cli(aws, tmp_path):
    collections = tmp_path / "collections"
    (collections / "ansible_collections" / "canarykeys").mkdir(parents=True)
    (collections / "ansible_collections" / "canarykeys" / "aws").symlink_to(REPO)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "ANSIBLE_"))}
    env.update(aws.operator_env())
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_EC2_METADATA_DISABLED="true",
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
    )

    def cli(module_args, *options):
        argv = [str(ANSIBLE), "localhost", "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
                "-m", "canarykeys.aws.canary_key", "-a", json.dumps(module_args), *options]
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
        output = proc.stdout + proc.stderr
        # With -v, ansible's own lines come first; the json callback's document starts at a lone "{".
        document = proc.stdout[re.search(r"^\{$", proc.stdout, re.M).start():]
        result = json.loads(document)["plays"][0]["tasks"][0]["hosts"]["localhost"]
        return result, output

    return cli


def test_the_cli_prints_the_secret_only_as_the_return_value(aws, iam, cli):
    first, output = cli(dict(PLACEMENT, reminder="web tier"), "-vvv")
    assert first["minted"] is True, output
    secret = first["secret_access_key"]
    assert len(secret) >= 40 and output.count(secret) == 1
    assert keys_of(iam, first["user_name"]) == {first["access_key_id"]: "Active"}

    mark = len(aws.calls())
    again, output = cli(dict(PLACEMENT, reminder="web tier", planted_key_id=first["access_key_id"]), "-vvv")
    assert again["changed"] is False and "secret_access_key" not in again
    assert secret not in output
    assert iam_actions(aws, mark) == ["GetUser", "ListAccessKeys", "ListUserPolicies"]

    checked, output = cli(dict(PLACEMENT), "--check")
    assert checked["minted"] is True and "secret_access_key" not in checked and secret not in output
    assert keys_of(iam, first["user_name"]) == {first["access_key_id"]: "Active"}


# ---------------------------------------------------------------- the controller policy


def test_the_controller_policy_is_valid_and_allows_every_call_the_module_makes(aws, iam, run):
    policy_text = (REPO / "docs" / "controller-policy.json").read_text()
    # moto validates IAM policy grammar the way IAM does (it does not evaluate conditions).
    iam.create_policy(PolicyName="canary-controller", PolicyDocument=policy_text)
    allowed = {action for statement in json.loads(policy_text)["Statement"] if statement["Effect"] == "Allow"
               for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])}

    mark = len(aws.calls())
    names = naming.candidate_names(HOST, PATH, "prod")
    iam.create_user(UserName=names[0])
    first = seed(run, deny_all=True)
    iam.delete_user(UserName=names[0])
    iam.create_access_key(UserName=first["user_name"])
    run(**dict(PLACEMENT, reminder="changed", planted_key_id=first["access_key_id"]))
    seed(run)
    run(state="absent", **PLACEMENT)
    called = {"iam:" + action for action in iam_actions(aws, mark)}
    assert called >= {"iam:CreateUser", "iam:PutUserPolicy", "iam:CreateAccessKey", "iam:TagUser", "iam:DeleteAccessKey",
                      "iam:DeleteUser", "iam:GetAccessKeyLastUsed", "iam:ListUserPolicies", "iam:DeleteUserPolicy"}
    assert called <= allowed, called - allowed
