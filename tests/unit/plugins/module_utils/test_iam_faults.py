# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The IAM side under IAM's faults, against the local AWS in fault mode (tools/local_aws/faults.py), and self-healing.

Each test sets the faults it needs (a fixed seed, eventual consistency of a few seconds, a scripted lost
answer) and runs module_utils/_iam on the client the modules build (``calls.iam_client``: boto3 behind
amazon.aws's retrying wrapper), real botocore over real HTTP to moto behind the proxy.  The end state is
read from moto directly.  No secret is printed.
"""

from __future__ import annotations

import time

import pytest

boto3 = pytest.importorskip("boto3")
botocore = pytest.importorskip("botocore")
pytest.importorskip("moto")

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper  # noqa: E402

from ansible_collections.canarykeys.aws.plugins.module_utils._iam import apply, calls, estate  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.errors import IAMCallError, PlacementError  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.module_utils._iam.plans import Placement  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping as cm  # noqa: E402
from tools.local_aws.faults import FaultConfig  # noqa: E402
from tools.local_aws.server import LocalAWS  # noqa: E402

PLACEMENT = Placement("web03.example.com", "/home/deploy/.aws/credentials", "prod", reminder="web tier", planted_by="test")
# Longer than the first waits of calls.CONSISTENCY_WAITS, well within their sum.
DELAY = 2.0


class _Module:
    """What calls.iam_client needs of AnsibleAWSModule: ``client(service, retry_decorator)``."""

    def __init__(self, aws, max_attempts=None):
        self.aws, self.max_attempts = aws, max_attempts

    def client(self, service, retry_decorator):
        config = botocore.config.Config(retries={"total_max_attempts": self.max_attempts}) if self.max_attempts else None
        raw = boto3.client(service, endpoint_url=self.aws.endpoint_url, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing", config=config)
        return RetryingBotoClientWrapper(raw, retry_decorator)


@pytest.fixture(scope="module", name="local_aws")
def fixture_local_aws():
    with LocalAWS(faults={}) as aws:
        yield aws


@pytest.fixture(name="aws")
def fixture_aws(local_aws):
    local_aws.faults.config = FaultConfig()
    local_aws.reset()
    yield local_aws
    local_aws.faults.config = FaultConfig()


@pytest.fixture(name="client")
def fixture_client(aws):
    return calls.iam_client(_Module(aws))


@pytest.fixture(name="iam")
def fixture_iam(aws):
    return aws.client("iam", direct=True)


def faults(aws, **settings):
    aws.faults.config = FaultConfig(seed=7, **settings)
    aws.faults.reset()


def users_of_placement(iam):
    users = iam.list_users()["Users"]
    return [u["UserName"] for u in users
            if cm.tags_list_to_dict(iam.list_user_tags(UserName=u["UserName"])["Tags"]).get(cm.TAG_PLACEMENT) == PLACEMENT.placement_id]


def keys_of(iam, user_name):
    return {key["AccessKeyId"]: key["Status"] for key in iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]}


def tags_of(iam, user_name):
    return cm.tags_list_to_dict(iam.list_user_tags(UserName=user_name)["Tags"])


def seeded(client):
    """A placement seeded with no fault (its key is not 'new' to the fault mode): (user name, key id)."""
    result = apply.ensure_present(client, PLACEMENT)
    return result["user_name"], result["access_key_id"]


# ---------------------------------------------------------------- the five failures of the fault benchmark


def test_a_finish_within_the_consistency_window_completes_the_rotation(aws, client, iam):
    user, old = seeded(client)
    faults(aws, consistency_delay=DELAY)
    begun = apply.begin_rotation(client, PLACEMENT, old, max_age_days=0)
    new = begun["access_key_id"]
    # The host took the new key; ListAccessKeys does not list it yet.
    done = apply.finish_rotation(client, PLACEMENT, new, old)
    assert (done["rotation"], done["access_key_id"], done["deleted_access_key_ids"]) == ("completed", new, [old])
    assert keys_of(iam, user) == {new: "Active"}
    assert tags_of(iam, user)[cm.TAG_ACCESS_KEY_ID] == new
    assert tags_of(iam, user)[cm.TAG_KEY_HISTORY].split() == [old, new]


def test_a_finish_that_never_sees_the_profiles_key_deletes_nothing_and_fails(aws, client, iam, monkeypatch):
    user, old = seeded(client)
    monkeypatch.setattr(calls, "CONSISTENCY_WAITS", (0.1,))
    with pytest.raises(PlacementError, match="nothing was deleted"):
        apply.finish_rotation(client, PLACEMENT, "AKIAIOSFODNN7EXAMPLE", old)
    assert keys_of(iam, user) == {old: "Active"}


def test_retire_deletes_a_key_minted_seconds_earlier_and_then_the_user(aws, client, iam):
    faults(aws, consistency_delay=DELAY)
    result = apply.ensure_present(client, PLACEMENT)
    gone = apply.ensure_absent(client, PLACEMENT, user_name=result["user_name"])
    assert gone["user_deleted"] and gone["deleted_access_key_ids"] == [result["access_key_id"]]
    assert iam.list_users()["Users"] == []


def test_the_local_aws_answers_delete_conflict_for_a_user_holding_a_key(aws, iam):
    iam.create_user(UserName="holder")
    iam.create_access_key(UserName="holder")
    with pytest.raises(botocore.exceptions.ClientError, match="DeleteConflict"):
        aws.client("iam").delete_user(UserName="holder")
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["holder"]


def test_retire_meeting_delete_conflict_deletes_the_unlisted_key_and_the_user(aws, client, iam):
    user, _key = seeded(client)
    faults(aws, consistency_delay=DELAY)
    # A key nobody recorded (a begin whose finish never ran), minted a moment ago: ListAccessKeys leaves it out.
    hidden = client.create_access_key(UserName=user, aws_retry=True)["AccessKey"]["AccessKeyId"]
    gone = apply.ensure_absent(client, PLACEMENT, user_name=user)
    assert gone["user_deleted"] and hidden in gone["deleted_access_key_ids"]
    assert iam.list_users()["Users"] == []


class _FastRetry(AWSRetry):
    """AWSRetry as iam_client configures it, with short waits: the test checks which codes are retried, not how long."""

    @classmethod
    def jittered_backoff(cls, retries=10, delay=0.05, max_delay=0.2, catch_extra_error_codes=None):
        return super().jittered_backoff(retries=retries, delay=delay, max_delay=max_delay, catch_extra_error_codes=catch_extra_error_codes)


def test_iams_service_failure_is_retried(aws, monkeypatch):
    monkeypatch.setattr(calls, "AWSRetry", _FastRetry)
    # botocore's own retries off: only the wrapper's are left, as when botocore's have run out.
    faults(aws, error_rate=0.5, services=("iam",))
    client = calls.iam_client(_Module(aws, max_attempts=1))
    for _attempt in range(4):
        calls.call(client, "list_users", "list")
    assert aws.faults.counters()["injected"]["error_500"] > 0
    # The same draws without ServiceFailure in the retried codes fail: the test can fail.
    aws.faults.reset()
    plain = _Module(aws, max_attempts=1).client("iam", _FastRetry.jittered_backoff(retries=2))
    with pytest.raises(IAMCallError) as failed:
        for _attempt in range(4):
            calls.call(plain, "list_users", "list")
    assert calls.error_code(failed.value.exception) == "ServiceFailure"


def test_a_lost_create_access_key_answer_in_a_rotation_is_cleaned_up_and_minted_again(aws, client, iam):
    user, old = seeded(client)
    faults(aws, consistency_delay=DELAY, lose_responses="CreateAccessKey:1")
    begun = apply.begin_rotation(client, PLACEMENT, old, max_age_days=0)
    new = begun["access_key_id"]
    assert begun["rotation"] == "started" and new not in (None, old)
    assert keys_of(iam, user) == {old: "Active", new: "Active"}
    assert aws.faults.counters()["by_action"]["lost_response"] == {"iam:CreateAccessKey": 1}


def test_a_lost_create_access_key_answer_in_a_seed_leaves_no_orphan(aws, client, iam):
    faults(aws, consistency_delay=DELAY, lose_responses="CreateAccessKey:1")
    result = apply.ensure_present(client, PLACEMENT)
    assert keys_of(iam, result["user_name"]) == {result["access_key_id"]: "Active"}
    assert len(result["deleted_access_key_ids"]) == 1


def test_a_create_access_key_whose_every_answer_was_lost_is_cleaned_up_and_minted_again(aws, iam):
    # botocore's retries off: the one lost answer is the last one, and the call fails.
    client = calls.iam_client(_Module(aws, max_attempts=1))
    user, old = seeded(client)
    faults(aws, consistency_delay=DELAY, lose_responses="CreateAccessKey:1")
    begun = apply.begin_rotation(client, PLACEMENT, old, max_age_days=0)
    assert begun["rotation"] == "started" and len(begun["deleted_access_key_ids"]) == 1
    assert keys_of(iam, user) == {old: "Active", begun["access_key_id"]: "Active"}


def test_a_seed_rerun_within_the_consistency_window_finds_the_user_it_created(aws, client, iam):
    faults(aws, consistency_delay=DELAY)
    first = apply.ensure_present(client, PLACEMENT)
    second = apply.ensure_present(client, PLACEMENT)  # the host took no key in between
    assert users_of_placement(iam) == [first["user_name"]] == [second["user_name"]]
    assert keys_of(iam, first["user_name"]) == {second["access_key_id"]: "Active"}


# ---------------------------------------------------------------- self-healing


@pytest.fixture(name="long_ago")
def fixture_long_ago(monkeypatch):
    """Keys recorded now count as old: a key deleted behind the product's back is not one IAM has yet to show."""
    monkeypatch.setattr(calls, "RECENT", calls.RECENT * 0)


def test_a_key_deleted_behind_the_products_back_is_replanted(aws, client, iam, long_ago):  # pylint: disable=unused-argument
    user, dead = seeded(client)
    iam.delete_access_key(UserName=user, AccessKeyId=dead)
    listed = estate.list_estate(client, aws_retry=True, key_source=estate.CREDENTIAL_REPORT)
    assert [c["dead"] for c in listed["canaries"]] == [True] and listed["placements"][0]["dead"] and listed["summary"]["dead"] == 1
    healed = apply.ensure_present(client, PLACEMENT, dead)
    assert healed["minted"] and healed["dead_access_key_id"] == dead and healed["access_key_id"] != dead
    assert keys_of(iam, user) == {healed["access_key_id"]: "Active"}
    assert tags_of(iam, user)[cm.TAG_KEY_HISTORY].split() == [dead, healed["access_key_id"]]
    listed = estate.list_estate(client, aws_retry=True)
    assert [c["dead"] for c in listed["canaries"]] == [False]


def test_an_inactive_key_is_deleted_and_replanted(aws, client, iam, long_ago):  # pylint: disable=unused-argument
    user, dead = seeded(client)
    iam.update_access_key(UserName=user, AccessKeyId=dead, Status="Inactive")
    assert [c["dead"] for c in estate.list_estate(client, aws_retry=True)["canaries"]] == [True]
    healed = apply.ensure_present(client, PLACEMENT, dead)
    assert healed["minted"] and healed["deleted_access_key_ids"] == [dead]
    assert keys_of(iam, user) == {healed["access_key_id"]: "Active"}


def test_a_key_never_handed_to_the_placement_is_still_refused(aws, client, iam):
    user, key = seeded(client)
    with pytest.raises(PlacementError, match="not this placement's canary key; refusing to mint"):
        apply.ensure_present(client, PLACEMENT, "AKIAIOSFODNN7EXAMPLE")
    assert keys_of(iam, user) == {key: "Active"}


def test_the_key_history_keeps_the_last_eight_keys():
    tags = {}
    for n in range(10):
        tags.update(cm.planted_key_tags(f"AKIA{n:016d}", "2026-01-01T00:00:00Z", tags))
    assert cm.handed_key_ids(tags) == [f"AKIA{n:016d}" for n in range(2, 10)]
    assert len(tags[cm.TAG_KEY_HISTORY]) <= cm.TAG_VALUE_MAX
    # A user tagged before the history existed: its recorded key counts as handed.
    assert cm.handed_key_ids({cm.TAG_ACCESS_KEY_ID: "AKIAOLD"}) == ["AKIAOLD"]


def test_waits_are_bounded(aws, client, monkeypatch):
    monkeypatch.setattr(calls, "CONSISTENCY_WAITS", (0.05, 0.05))
    started = time.monotonic()
    user, _key = seeded(client)
    calls.list_keys(client, user, expected=["AKIAIOSFODNN7EXAMPLE"])
    assert time.monotonic() - started < 5
