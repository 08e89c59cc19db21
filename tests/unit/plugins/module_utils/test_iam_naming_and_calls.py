# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Canary identity: user names that IAM accepts and an attacker cannot tell apart, and the IAM calls' retries.

The naming is pure and tested as such (hypothesis over arbitrary Unicode host names).  The IAM side is
exercised with botocore's Stubber behind amazon.aws's real retrying client wrapper; the module tests
(tests/unit/plugins/modules/test_canary_key.py) run the same code against a real moto server.
"""

from __future__ import annotations

import datetime

import pathlib
import re
import types

import boto3
import pytest
from botocore.stub import Stubber
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = pathlib.Path(__file__).resolve().parents[4]

from ansible_collections.amazon.aws.plugins.module_utils import cloud  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper  # noqa: E402

from ansible_collections.canarykeys.aws.plugins.module_utils._iam import calls, errors, naming, plans  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping as cm  # noqa: E402

IAM_USER_NAME = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")
PATH = "/home/deploy/.aws/credentials"

hosts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=300)
dns_hosts = st.from_regex(r"\A[a-z][a-z0-9-]{0,80}(\.[a-z0-9-]{1,30}){0,4}\Z")


def assert_valid_user_name(name):
    assert IAM_USER_NAME.match(name), name
    assert "--" not in name, name
    assert name[0] not in naming.USER_NAME_SEPARATORS and name[-1] not in naming.USER_NAME_SEPARATORS, name


# ---------------------------------------------------------------- naming


def test_default_names_follow_the_placement():
    names = naming.candidate_names("web03.example.com", PATH, "prod")
    assert names[:3] == ["web03-prod", "web03-prod-deploy", "web03-prod2"]
    assert len(names) == len(set(names)) == naming.MAX_ATTEMPTS
    assert naming.candidate_names("web03", PATH, "prod") == naming.candidate_names("web03", PATH, "prod")


def test_one_placement_on_the_hosts_of_a_group_differs_only_by_the_host():
    for profile, user in (("prod", "deploy"), ("backup", "root"), ("default", "deploy"), ("default", "root")):
        path = "/root/.aws/credentials" if user == "root" else f"/home/{user}/.aws/credentials"
        names = [naming.candidate_names(f"web{i:02d}", path, profile) for i in range(1, 9)]
        for i, candidates in enumerate(names, start=1):
            assert [name.replace(f"web{i:02d}", "HOST", 1) for name in candidates] == \
                [name.replace("web01", "HOST", 1) for name in names[0]]


@pytest.mark.parametrize(
    "profile, user, purpose",
    [("prod", "deploy", "prod"), ("Backup", "root", "backup"), ("default", "deploy", "deploy"), ("default", "root", "ops"),
     ("canary", "deploy", "deploy"), ("3f9a2b7c1d0e", "root", "ops"), ("", "", "ops"), ("s3 sync", "app", "s3-sync")],
)
def test_the_purpose_is_the_profile_else_the_owner(profile, user, purpose):
    assert naming.placement_purpose(profile, user) == purpose


@pytest.mark.parametrize(
    "path, profile, names",
    [
        ("/home/mira/.aws/credentials", "deploy", ["mira", "mira.deploy", "mira2"]),
        ("/Users/tomas.novak/.aws/credentials", "cli", ["tomas.novak", "tomas.novak.cli", "tomas.novak2"]),
        ("/home/Mira/.aws/credentials", "dev", ["mira", "mira.dev", "mira2"]),
    ],
)
def test_a_person_template_gives_the_owner_s_name(path, profile, names):
    assert naming.candidate_names("laptop-7", path, profile, naming.PERSON_TEMPLATE)[:3] == names
    # Two laptops of one group: the same pattern, the person's name in it.
    assert naming.candidate_names("lap-x", "/home/ana/.aws/credentials", profile, "{user}-{purpose}")[0] == f"ana-{profile}"


@pytest.mark.parametrize("path", ["/root/.aws/credentials", "/srv/x/credentials", "/home/canary/.aws/credentials"])
def test_a_person_template_on_a_file_no_person_owns_falls_back_to_the_service_name(path):
    assert naming.candidate_names("lap-mira", path, "deploy", naming.PERSON_TEMPLATE)[0] == "lap-mira-deploy"


@pytest.mark.parametrize(
    "host, expected",
    [
        ("6f1c2a9e-3b4d-4c5e-8f90-1a2b3c4d5e6f", r"ip-10-\d{1,3}-\d{1,3}-\d{1,3}"),
        ("i-0abc1234def567890.ec2.internal", r"ip-10-\d{1,3}-\d{1,3}-\d{1,3}"),
        ("i-0abc1234", r"ip-10-\d{1,3}-\d{1,3}-\d{1,3}"),
        ("d41d8cd98f00b204e9800998ecf8427e", r"ip-10-\d{1,3}-\d{1,3}-\d{1,3}"),
        ("worker-3f9a2b7c1d", r"worker-\d\d"),
        ("web-5d8f7c9b4-x2x7q", r"web-x2x7q-\d\d"),
        ("honeypot01", r"pot01-\d\d"),
    ],
)
def test_machine_made_hosts_get_plausible_deterministic_names(host, expected):
    short = naming.short_host(host)
    assert re.fullmatch(expected, short), short
    assert short == naming.short_host(host)
    assert not naming.machine_made(short) and naming.telltale_in(short) is None


def test_distinct_machine_made_hosts_get_distinct_names():
    hosts = [f"i-0{index:016x}" for index in range(50)]
    assert len({naming.short_host(host) for host in hosts}) == 50


@pytest.mark.parametrize("text", ["web01", "facade", "20240101", "build-2024", "mira.cli", "ip-10-0-1-5"])
def test_ordinary_names_are_not_machine_made(text):
    assert not naming.machine_made(text)


@pytest.mark.parametrize(
    "host, expected",
    [
        ("web03.example.com", "web03"),
        ("WEB03.Example.COM", "web03"),
        ("10.0.0.5", "10-0-0-5"),
        ("2001:db8::7", "2001-db8-7"),
        ("laptop_bob", "laptop_bob"),
        ("München-01.intra", "munchen-01"),
        ("-edge-.cdn", "edge"),
        ("db 01", "db-01"),
    ],
)
def test_short_host(host, expected):
    assert naming.short_host(host) == expected


@pytest.mark.parametrize(
    "path, user",
    [
        ("/root/.aws/credentials", "root"),
        ("/home/deploy/.aws/credentials", "deploy"),
        ("/Users/alice/.aws/credentials", "alice"),
        ("/srv/app/.aws/credentials", ""),
        ("/home", ""),
        ("", ""),
    ],
)
def test_os_user_from_path(path, user):
    assert naming.os_user(path) == user


def test_template_variables():
    names = naming.candidate_names("web03.example.com", "/Users/alice/.aws/credentials", "prod", "svc.{user}.{profile}@{host}")
    assert names[0] == "svc.alice.prod@web03"
    # Without {purpose} the numbers tell the candidates apart ("-" after a name that ends in a digit).
    assert names[1:3] == ["svc.alice.prod@web03-2", "svc.alice.prod@web03-3"]
    assert naming.candidate_names("web03", PATH, "prod", "{host}")[:3] == ["web03", "web03-prod", "web03-deploy"]


@given(hosts)
@settings(max_examples=300, deadline=None)
def test_any_host_gives_valid_distinct_names_or_a_clear_error(host):
    try:
        names = naming.candidate_names(host, PATH, "prod")
    except errors.PlacementError as e:
        assert naming.short_host(host) == ""
        assert repr(host) in str(e)
        return
    assert len(names) == len(set(names)) == naming.MAX_ATTEMPTS
    for name in names:
        assert_valid_user_name(name)
        assert naming.telltale_in(name) is None, name
        assert not naming.machine_made(name), name
        # The purpose survives any truncation: it is what tells a host's placements apart.
        assert re.search(r"-prod(-deploy|\d+)?$", name), name


@given(dns_hosts, st.text(max_size=80), st.sampled_from(["{host}-{purpose}", "{user}-{host}-{profile}-{purpose}", "{profile}_{host}", "{user}"]))
@settings(max_examples=200, deadline=None)
def test_names_are_deterministic_and_bounded(host, profile, template):
    try:
        names = naming.candidate_names(host, "/root/.aws/credentials", profile, template)
    except errors.PlacementError:
        # Only a template whose every part sanitises away may fail (e.g. "{profile}_{host}" never does here).
        pytest.fail(f"{template!r} refused for {host!r}, {profile!r}")
    assert names == naming.candidate_names(host, "/root/.aws/credentials", profile, template)
    for name in names:
        assert_valid_user_name(name)
        assert not naming.machine_made(name), name
    assert len(names) == len(set(names))


def test_long_hosts_are_cut_before_the_purpose():
    host = "a-very-long-host-name-that-someone-really-put-in-the-inventory-" + "x" * 80 + ".example.com"
    names = naming.candidate_names(host, PATH, "prod")
    for name in names:
        assert len(name) <= 64
        assert name.startswith("a-very-long-host")
    assert names[0].endswith("-prod") and names[2].endswith("-prod2")


@pytest.mark.parametrize("host", ["日本", "東京.example.com", "", "...", "---", "🙂"])
def test_host_without_usable_characters_is_refused_by_name(host):
    with pytest.raises(errors.PlacementError, match=re.escape(repr(host))):
        naming.candidate_names(host, PATH, "prod")
    # A template that does not use the host does not need one.
    assert naming.candidate_names(host, PATH, "prod", "{user}-{purpose}")[0] == "deploy-prod"


@pytest.mark.parametrize(
    "template",
    ["{host}-canary", "Canary-{host}", "{host}-honeypot", "decoy{purpose}", "{host}-trap", "{host}-TOKEN",
     "tripwire-{host}", "{host}@@{purpose}", "{host}-bootstrap"],
)
def test_telltale_templates_are_refused(template):
    with pytest.raises(errors.PlacementError, match="ordinary service users"):
        naming.candidate_names("web03", PATH, "prod", template)


@pytest.mark.parametrize("template", ["{hostname}-{purpose}", "{0}-{purpose}", "{}-x", "{host", "{host!r}", "{host:>10}", "{host.real}"])
def test_malformed_templates_are_refused(template):
    with pytest.raises(errors.PlacementError, match="user_name_template"):
        naming.candidate_names("web03", PATH, "prod", template)


def test_a_template_that_renders_empty_is_refused():
    with pytest.raises(errors.PlacementError, match="empty user name"):
        naming.candidate_names("web03", "/srv/x/credentials", "prod", "-.-")
    # Only when it must: a person template outside a home is a service name instead.
    assert naming.candidate_names("web03", "/srv/x/credentials", "prod", "{user}")[0] == "web03-prod"


@pytest.mark.parametrize("path", ["/", "/service/", "/ops/batch/", "/a+b=c,d.e@f_g-h/"])
def test_valid_iam_paths(path):
    assert naming.check_iam_path(path) == path


@pytest.mark.parametrize("path", ["", "//", "service/", "/service", "/with space/", "/ünï/", "/" + "x" * 511 + "/", "/honey/", "/ops/Canary/"])
def test_invalid_iam_paths(path):
    with pytest.raises(errors.PlacementError, match="iam_path"):
        naming.check_iam_path(path)


# ---------------------------------------------------------------- decisions


PLACEMENT = plans.Placement("web03", PATH, "prod", reminder="ask ops", planted_by="seed")
NOW = "2025-02-01T00:00:00Z"


KEY_CREATED = datetime.datetime(2025, 1, 1, 0, 0, 0, 512000, tzinfo=datetime.timezone.utc)


def user_with(**tags):
    """A canary user whose tags name its key AKIA1, as canary_key leaves them after a mint."""
    base = cm.mapping_tags("web03", PATH, "prod", "ask ops", "2025-01-01T00:00:00Z", "seed", 3)
    base.update(cm.planted_key_tags("AKIA1", KEY_CREATED))
    base.update(tags)
    return {"UserName": "web03-backup", "Tags": [{"Key": k, "Value": v} for k, v in base.items() if v is not None]}


def key(key_id, status="Active"):
    return {"AccessKeyId": key_id, "Status": status, "CreateDate": KEY_CREATED}


def test_plan_planted_active_key_needs_nothing():
    plan = plans.plan_present(PLACEMENT, user_with(), [key("AKIA1")], "AKIA1", NOW)
    assert (plan["mint"], plan["orphans"], plan["tag_update"], plan["generation"]) == (False, [], {}, 3)


def test_plan_names_the_planted_key_on_a_user_seeded_before_the_key_tags():
    user = user_with(**{cm.TAG_ACCESS_KEY_ID: None, cm.TAG_ACCESS_KEY_CREATED: None})
    plan = plans.plan_present(PLACEMENT, user, [key("AKIA1")], "AKIA1", NOW)
    assert not plan["mint"]
    # To the second, as the credential report gives it.
    assert plan["tag_update"] == {cm.TAG_ACCESS_KEY_ID: "AKIA1", cm.TAG_ACCESS_KEY_CREATED: "2025-01-01T00:00:00Z"}


def test_plan_deletes_orphans_and_keeps_planted_at():
    plan = plans.plan_present(PLACEMENT, user_with(), [key("AKIA1"), key("AKIA2")], "AKIA1", NOW)
    assert (plan["mint"], plan["orphans"], plan["tag_update"]) == (False, ["AKIA2"], {})
    assert plan["tags_after"][cm.TAG_PLANTED_AT] == "2025-01-01T00:00:00Z"


def test_plan_rewrites_only_the_tags_that_differ():
    placement = plans.Placement("web03", PATH, "prod", reminder="call Bob", planted_by="")
    plan = plans.plan_present(placement, user_with(), [key("AKIA1")], "AKIA1", NOW)
    assert plan["tag_update"] == {cm.TAG_REMINDER: "call Bob"}
    # An empty planted_by leaves the recorded one.
    assert plan["tags_after"][cm.TAG_PLANTED_BY] == "seed"


def test_plan_mint_for_a_new_user_is_generation_one():
    plan = plans.plan_present(PLACEMENT, None, [], "", NOW)
    assert plan["mint"] and plan["generation"] == 1
    assert plan["tags_after"] == cm.mapping_tags("web03", PATH, "prod", "ask ops", NOW, "seed", 1)


def test_plan_mint_on_a_user_that_held_a_key_bumps_the_generation():
    plan = plans.plan_present(PLACEMENT, user_with(), [key("AKIA1")], "", NOW)
    assert plan["mint"] and plan["orphans"] == ["AKIA1"] and plan["generation"] == 4
    assert plan["tag_update"] == {cm.TAG_PLANTED_AT: NOW, cm.TAG_GENERATION: "4"}


def test_plan_inactive_planted_key_is_dead_deleted_and_replaced():
    plan = plans.plan_present(PLACEMENT, user_with(), [key("AKIA1", "Inactive"), key("AKIA2")], "AKIA1", NOW)
    assert plan["mint"] and plan["orphans"] == ["AKIA1", "AKIA2"]


# ---------------------------------------------------------------- IAM calls, stubbed


@pytest.fixture(name="stubbed")
def fixture_stubbed(monkeypatch):
    sleeps = []
    # Only amazon.aws's retry loop sleeps through this name; the real time module stays untouched.
    monkeypatch.setattr(cloud, "time", types.SimpleNamespace(sleep=sleeps.append))
    client = boto3.client("iam", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(client) as stubber:
        yield RetryingBotoClientWrapper(client, AWSRetry.jittered_backoff()), stubber, sleeps
        stubber.assert_no_pending_responses()


def iam_user(name, tags=None):
    return {"User": {"Path": "/", "UserName": name, "UserId": "AIDA" + "X" * 16, "Arn": f"arn:aws:iam::123456789012:user/{name}",
                     "CreateDate": "2025-01-01T00:00:00Z", "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}}


def test_throttled_calls_are_retried_with_backoff(stubbed):
    client, stubber, sleeps = stubbed
    stubber.add_client_error("get_user", service_error_code="Throttling", http_status_code=400)
    stubber.add_client_error("get_user", service_error_code="RequestLimitExceeded", http_status_code=400)
    stubber.add_response("get_user", iam_user("web03-backup"), {"UserName": "web03-backup"})
    assert calls.get_user(client, "web03-backup")["UserName"] == "web03-backup"
    assert len(sleeps) == 2 and all(0 <= s <= 60 for s in sleeps)


def test_other_errors_are_not_retried_and_say_what_failed(stubbed):
    client, stubber, sleeps = stubbed
    stubber.add_client_error("list_access_keys", service_error_code="AccessDenied", http_status_code=403)
    with pytest.raises(errors.IAMCallError, match="Failed to list the access keys of IAM user web03-backup") as info:
        calls.list_keys(client, "web03-backup")
    assert info.value.exception.response["Error"]["Code"] == "AccessDenied"
    assert sleeps == []


def test_resolution_skips_real_users_and_other_placements(stubbed):
    client, stubber, _sleeps = stubbed
    names = naming.candidate_names("web03", PATH, "prod")
    other = cm.mapping_tags("web03", "/root/.aws/credentials", "backup")
    stubber.add_response("get_user", iam_user(names[0], {"team": "ops"}), {"UserName": names[0]})
    stubber.add_response("get_user", iam_user(names[1], other), {"UserName": names[1]})
    stubber.add_client_error("get_user", service_error_code="NoSuchEntity", http_status_code=404, expected_params={"UserName": names[2]})
    assert calls.resolve_user(client, names, PLACEMENT.placement_id) == (2, names[2], None)


def test_resolution_finds_our_user_behind_a_real_one(stubbed):
    client, stubber, _sleeps = stubbed
    names = naming.candidate_names("web03", PATH, "prod")
    ours = cm.mapping_tags("web03", PATH, "prod")
    stubber.add_response("get_user", iam_user(names[0]), {"UserName": names[0]})
    stubber.add_response("get_user", iam_user(names[1], ours), {"UserName": names[1]})
    index, name, user = calls.resolve_user(client, names, PLACEMENT.placement_id)
    assert (index, name, user["UserName"]) == (1, names[1], names[1])


def test_resolution_gives_up_clearly_when_every_name_is_taken(stubbed):
    client, stubber, _sleeps = stubbed
    names = naming.candidate_names("web03", PATH, "prod")
    for name in names:
        stubber.add_response("get_user", iam_user(name), {"UserName": name})
    with pytest.raises(errors.PlacementError, match="taken by another user"):
        calls.resolve_user(client, names, PLACEMENT.placement_id)


def test_key_owner_ignores_malformed_ids_without_a_call(stubbed):
    client, _stubber, _sleeps = stubbed
    assert calls.key_owner(client, "not a key", PLACEMENT.placement_id) is None
    assert calls.key_owner(client, "", PLACEMENT.placement_id) is None
