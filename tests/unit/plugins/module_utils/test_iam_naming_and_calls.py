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


def test_default_names_look_like_service_users():
    names = naming.candidate_names("web03.example.com", PATH, "prod")
    purpose = naming.candidate_purpose(cm.placement_id("web03.example.com", PATH, "prod"), 0)
    assert names[0] == f"web03-{purpose}"
    assert len(names) == naming.MAX_ATTEMPTS == len(set(names))
    assert all(name.startswith("web03-") for name in names)


def test_the_drawn_purpose_is_deterministic_and_then_walks_the_list():
    pid = cm.placement_id("web03", PATH, "prod")
    start = naming.PURPOSES.index(naming.candidate_purpose(pid, 0))
    assert start == int(pid, 16) % len(naming.PURPOSES)
    walked = [naming.candidate_purpose(pid, k) for k in range(len(naming.PURPOSES))]
    assert walked == [naming.PURPOSES[(start + k) % len(naming.PURPOSES)] for k in range(len(naming.PURPOSES))]
    # After the list: the same order again, numbered.
    assert naming.candidate_purpose(pid, len(naming.PURPOSES)) == naming.PURPOSES[start] + "2"
    assert naming.candidate_purpose(pid, 2 * len(naming.PURPOSES) + 1) == naming.PURPOSES[(start + 1) % len(naming.PURPOSES)] + "3"
    assert naming.candidate_names("web03", PATH, "prod") == naming.candidate_names("web03", PATH, "prod")


def test_placements_of_one_host_draw_independently():
    drawn = {naming.candidate_names("web03", f"/home/u{i}/.aws/credentials", "prod")[0] for i in range(40)}
    # 40 placements over 16 purposes: a draw that ignored the placement would give one name.
    assert len(drawn) > 8


def test_purposes_are_plausible_and_valid():
    assert len(set(naming.PURPOSES)) == len(naming.PURPOSES) >= 12
    for purpose in naming.PURPOSES:
        assert naming.sanitize_user_name(purpose) == purpose
        assert naming.telltale_in(purpose) is None


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
    # Without {purpose} a number tells the candidates apart.
    assert names[1:3] == ["svc.alice.prod@web03-2", "svc.alice.prod@web03-3"]


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
    pid = cm.placement_id(host, PATH, "prod")
    for attempt, name in enumerate(names):
        assert_valid_user_name(name)
        # The host's own name is the inventory's business (the attacker on it sees it anyway); nothing else adds a tell.
        if naming.telltale_in(naming.short_host(host)) is None:
            assert naming.telltale_in(name) is None, name
        # The purpose survives any truncation: it is what tells a host's placements apart.
        assert name.endswith("-" + naming.candidate_purpose(pid, attempt)), name


@given(dns_hosts, st.text(max_size=80), st.sampled_from(["{host}-{purpose}", "{user}-{host}-{profile}-{purpose}", "{profile}_{host}"]))
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
    assert len(names) == len(set(names))


def test_long_hosts_are_cut_before_the_purpose():
    host = "a-very-long-host-name-that-someone-really-put-in-the-inventory-" + "x" * 80 + ".example.com"
    names = naming.candidate_names(host, PATH, "prod")
    for name in names:
        assert len(name) <= 64
        assert name.startswith("a-very-long-host")
    pid = cm.placement_id(host, PATH, "prod")
    assert names[0].endswith("-" + naming.candidate_purpose(pid, 0))


@pytest.mark.parametrize("host", ["日本", "東京.example.com", "", "...", "---", "🙂"])
def test_host_without_usable_characters_is_refused_by_name(host):
    with pytest.raises(errors.PlacementError, match=re.escape(repr(host))):
        naming.candidate_names(host, PATH, "prod")
    # A template that does not use the host does not need one.
    assert naming.candidate_names(host, PATH, "prod", "{user}-{purpose}")[0].startswith("deploy-")


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
        naming.candidate_names("web03", "/srv/x/credentials", "prod", "{user}")


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
