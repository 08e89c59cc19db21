# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/_iam/estate.py (and credential_report.py): the pure parts on their own, then the listing against a real moto server.

The server is the local AWS (``tools.local_aws.server.LocalAWS``: moto_server on a free port behind a
proxy that counts every request at the wire), so IAM call counts are measured, not taken from the
code under test.
"""

from __future__ import annotations

import datetime
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

from ansible_collections.canarykeys.aws.plugins.module_utils._iam import credential_report as cr  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.module_utils._iam import estate  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import iam_reads  # noqa: E402
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared import canary_mapping  # noqa: E402

UTC = datetime.timezone.utc
REPORT_HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,"
    "mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,"
    "access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,"
    "access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,"
    "cert_1_last_rotated,cert_2_active,cert_2_last_rotated"
)


# ---------------------------------------------------------------- pure logic


@pytest.mark.parametrize("value, expected", [
    ("2025-03-01T10:00:00Z", datetime.datetime(2025, 3, 1, 10, tzinfo=UTC)),
    ("2025-03-01T12:00:00+02:00", datetime.datetime(2025, 3, 1, 10, tzinfo=UTC)),
    (datetime.datetime(2025, 3, 1, 10), datetime.datetime(2025, 3, 1, 10, tzinfo=UTC)),
    ("N/A", None), ("not_supported", None), ("no_information", None), ("", None), (None, None), ("garbage", None),
])
def test_times_from_iam_and_tags(value, expected):
    assert estate.utc(value) == expected


def test_age_is_whole_days_and_never_negative():
    created = datetime.datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert estate.age_days(created, created + datetime.timedelta(days=3, hours=23)) == 3
    assert estate.age_days(created, created - datetime.timedelta(hours=1)) == 0
    assert estate.age_days(None, created) is None


def test_last_use_placeholders_mean_never():
    assert estate.last_use(None, "N/A", "N/A") == {"used": False, "date": None, "service_name": None, "region": None}
    assert estate.last_use("2025-02-03T04:05:06+00:00", "not_supported", "eu-west-1") == {
        "used": True, "date": "2025-02-03T04:05:06+00:00", "service_name": None, "region": "eu-west-1"}


def _report(*rows, generated="2025-03-01T00:00:00Z"):
    return cr.CredentialReport("\n".join((REPORT_HEADER, *rows)) + "\n", generated)


# The AWS format: dates with +00:00, "N/A" for a slot without a key, real service and region.
ROW_TWO_KEYS = ("web03-backup,arn:aws:iam::123456789012:user/web03-backup,2025-01-01T00:00:00+00:00,false,N/A,N/A,N/A,"
                "false,false,2025-01-01T00:00:05+00:00,N/A,N/A,N/A,true,2025-02-01T00:00:00+00:00,"
                "2025-02-20T08:00:00+00:00,eu-west-1,sts,false,N/A,false,N/A")
ROW_NO_KEY = ("web04-backup,arn:aws:iam::123456789012:user/web04-backup,2025-01-01T00:00:00+00:00,false,N/A,N/A,N/A,"
              "false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A")


def test_credential_report_slots_status_and_last_use():
    report = _report(ROW_TWO_KEYS, ROW_NO_KEY)
    first, second = report.keys("web03-backup")
    assert (first["slot"], first["status"], first["access_key_id"]) == (1, "Inactive", None)
    assert estate.last_use(*first["report_last_use"])["used"] is False
    assert (second["slot"], second["status"]) == (2, "Active")
    assert second["created"] == datetime.datetime(2025, 2, 1, tzinfo=UTC)
    assert estate.last_use(*second["report_last_use"]) == {"used": True, "date": "2025-02-20T08:00:00+00:00", "service_name": "sts",
                                                           "region": "eu-west-1"}
    assert report.keys("web04-backup") == []


def test_credential_report_is_as_new_as_anything_it_lists():
    # moto answers a fixed 2015 GeneratedTime for a report it builds live.
    report = _report(ROW_TWO_KEYS, generated="2015-02-02T20:02:02Z")
    assert report.as_of == datetime.datetime(2025, 2, 20, 8, tzinfo=UTC)
    assert _report(ROW_TWO_KEYS, generated="2025-06-01T00:00:00Z").as_of == datetime.datetime(2025, 6, 1, tzinfo=UTC)


ROW_ONE_KEY = ("web05-prod,arn:aws:iam::123456789012:user/web05-prod,2025-01-01T00:00:00+00:00,false,N/A,N/A,N/A,"
               "false,true,2025-02-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A")
TAGGED = ("AKIAWEB05PRODEXAMPLE", datetime.datetime(2025, 2, 1, tzinfo=UTC))


@pytest.mark.parametrize("user, planted_key, covered", [
    ("web05-prod", TAGGED, True),
    # The tags name a key of another second: re-minted after the report, or the report's key was replaced.
    ("web05-prod", (TAGGED[0], TAGGED[1] + datetime.timedelta(seconds=1)), False),
    ("web05-prod", None, False),                                            # seeded before the key-id tags
    ("web03-backup", ("AKIAWEB03BACKUPEXAM", datetime.datetime(2025, 2, 1, tzinfo=UTC)), False),  # two keys: ids needed
    ("web04-backup", TAGGED, False),                                        # no key in the report
    ("web09-backup", TAGGED, False),                                        # created after the report
])
def test_credential_report_covers_only_a_single_key_named_by_the_tags(user, planted_key, covered):
    assert _report(ROW_TWO_KEYS, ROW_NO_KEY, ROW_ONE_KEY).covers(user, planted_key) is covered


def test_the_report_key_created_when_the_tags_say_gets_their_id():
    report = _report(ROW_TWO_KEYS, ROW_ONE_KEY)
    (only,) = report.keys("web05-prod", TAGGED)
    assert (only["access_key_id"], only["status"], only["slot"]) == ("AKIAWEB05PRODEXAMPLE", "Active", 1)
    first, second = report.keys("web03-backup", ("AKIAWEB03BACKUPEXAM", datetime.datetime(2025, 2, 1, tzinfo=UTC)))
    assert (first["access_key_id"], second["access_key_id"]) == (None, "AKIAWEB03BACKUPEXAM")


class ScriptedIAM:
    """A client that answers GenerateCredentialReport from a script (for the polling logic only)."""

    def __init__(self, states):
        self.states = list(states)

    def generate_credential_report(self):
        return {"State": self.states.pop(0)}

    def get_credential_report(self):
        return {"Content": (REPORT_HEADER + "\n" + ROW_TWO_KEYS + "\n").encode(), "GeneratedTime": None}


def test_credential_report_polls_until_complete():
    reader = iam_reads.IAMCalls(ScriptedIAM(["STARTED", "INPROGRESS", "COMPLETE"]))
    slept = []
    report = cr.credential_report(reader, poll_interval=1, sleep=slept.append)
    assert slept == [1, 2]
    assert reader.counts == {"GenerateCredentialReport": 3, "GetCredentialReport": 1}
    assert "web03-backup" in report.rows


def test_credential_report_gives_up_after_the_timeout():
    clock = iter(range(0, 1000, 10))
    reader = iam_reads.IAMCalls(ScriptedIAM(["STARTED"] * 100))
    with pytest.raises(estate.EstateError, match="credential report"):
        cr.credential_report(reader, poll_interval=10, timeout=30, sleep=lambda _s: None, clock=lambda: next(clock))


@pytest.mark.parametrize("options, message", [
    ({"key_source": "cloudtrail"}, "key_source"),
    ({"status": "active"}, "status"),
    ({"page_size": 0}, "page_size"),
    ({"page_size": 1001}, "page_size"),
    ({"concurrency": 0}, "concurrency"),
])
def test_bad_options_fail_before_any_call(options, message):
    with pytest.raises(estate.EstateError, match=message):
        estate.list_estate(object(), **options)


# ---------------------------------------------------------------- against the local AWS


@pytest.fixture
def iam(aws):
    return aws.client("iam")


def plant(iam, host, path="/root/.aws/credentials", profile="backup", keys=1, iam_path="/", user_name=None,
          planted_at="2020-01-01T00:00:00Z", generation=1, name_key=True):
    """A canary as the collection records it: a tagged IAM user and its keys (returned with their secrets).

    ``name_key``: the user's key-id tags name its first key, as canary_key leaves them after the mint
    (a second key is one a rotation minted and has not finished, or an orphan).
    """
    name = user_name or f"{host}-{profile}"
    tags = canary_mapping.mapping_tags(host, path, profile, reminder=f"{host}:{path} [{profile}]",
                                       planted_at=planted_at, planted_by="Seed canary AWS keys", generation=generation)
    iam.create_user(UserName=name, Path=iam_path, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    created = [iam.create_access_key(UserName=name)["AccessKey"] for _index in range(keys)]
    if created and name_key:
        name_keys(iam, name, created[0]["AccessKeyId"], created[0]["CreateDate"])
    return created


def name_keys(iam, user_name, access_key_id, create_date):
    tags = canary_mapping.planted_key_tags(access_key_id, create_date)
    iam.tag_user(UserName=user_name, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def bystanders(iam):
    """Users that are not canaries: no tags, foreign tags, and our marker with another value."""
    iam.create_user(UserName="ci-deploy")
    iam.create_access_key(UserName="ci-deploy")
    iam.create_user(UserName="etl", Tags=[{"Key": "team", "Value": "data"}])
    iam.create_user(UserName="web01-old", Tags=[{"Key": canary_mapping.TAG_MANAGED, "Value": "false"},
                                                {"Key": canary_mapping.TAG_HOST, "Value": "web01"}])


def use_key(aws, key, region="eu-west-1"):
    sts = boto3.client("sts", endpoint_url=aws.endpoint_url, region_name=region, aws_access_key_id=key["AccessKeyId"],
                       aws_secret_access_key=key["SecretAccessKey"])
    return sts.get_caller_identity()["Arn"]


def iam_calls(aws, since=0):
    counts = {}
    for call in aws.calls()[since:]:
        if call["service"] == "iam":
            counts[call["action"]] = counts.get(call["action"], 0) + 1
    return counts


def test_lists_canaries_with_their_mapping_and_nothing_else(aws, iam):
    [key] = plant(iam, "web01", iam_path="/service/")
    plant(iam, "laptop-alice", path="/home/alice/.aws/credentials", profile="deploy")
    bystanders(iam)

    result = estate.list_estate(iam)

    assert [c["user_name"] for c in result["canaries"]] == ["laptop-alice-deploy", "web01-backup"]
    web01 = result["canaries"][1]
    assert web01["mapping"] == {
        "placement_id": canary_mapping.placement_id("web01", "/root/.aws/credentials", "backup"),
        "host": "web01", "path": "/root/.aws/credentials", "profile": "backup",
        "reminder": "web01:/root/.aws/credentials _backup_", "planted_at": "2020-01-01T00:00:00Z",
        "planted_by": "Seed canary AWS keys", "generation": 1, "last_used_reported": "",
    }
    assert web01["iam_path"] == "/service/"
    assert web01["user_arn"].endswith(":user/service/web01-backup")
    assert web01["keys"] == [{"access_key_id": key["AccessKeyId"], "status": "Active", "create_date": web01["keys"][0]["create_date"],
                              "age_days": 0, "newest": True, "report_slot": 1}]
    assert estate.utc(web01["keys"][0]["create_date"]) is not None
    assert [row["host"] for row in result["placements"]] == ["laptop-alice", "web01"]
    assert result["placements"][1]["access_key_id"] == key["AccessKeyId"]
    assert "used" not in result["placements"][1]
    assert result["summary"] == {"canaries": 2, "access_keys": 2, "orphans": 0, "hosts": 2, "dead": 0}
    assert key["SecretAccessKey"] not in repr(result)


def test_age_counts_from_the_key_creation(iam):
    plant(iam, "web01")
    created = estate.utc(estate.list_estate(iam)["canaries"][0]["keys"][0]["create_date"])
    result = estate.list_estate(iam, now=created + datetime.timedelta(days=10, hours=5))
    assert result["canaries"][0]["keys"][0]["age_days"] == 10
    assert result["placements"][0]["age_days"] == 10


def test_filters_host_status_and_iam_path(iam):
    plant(iam, "web01", iam_path="/svc/")
    plant(iam, "web02")
    inactive = plant(iam, "web03", keys=2)[0]
    iam.update_access_key(UserName="web03-backup", AccessKeyId=inactive["AccessKeyId"], Status="Inactive")
    bystanders(iam)

    assert [c["user_name"] for c in estate.list_estate(iam, hosts=["web02", "web03", "web99"])["canaries"]] == [
        "web02-backup", "web03-backup"]
    assert [c["user_name"] for c in estate.list_estate(iam, iam_path="/svc/")["canaries"]] == ["web01-backup"]
    assert len(estate.list_estate(iam, iam_path="/")["canaries"]) == 3

    only_inactive = estate.list_estate(iam, status="Inactive")
    [canary] = only_inactive["canaries"]
    assert [k["access_key_id"] for k in canary["keys"]] == [inactive["AccessKeyId"]]
    # The status filter narrows what is listed, never what a reconciliation must see.
    assert [(o["user_name"], o["access_key_id"]) for o in only_inactive["orphans"]] == [("web03-backup", inactive["AccessKeyId"])]
    assert len(estate.list_estate(iam, status="Active")["canaries"]) == 3


def test_host_filter_matches_the_sanitised_tag(iam):
    plant(iam, "web#7")
    assert [c["mapping"]["host"] for c in estate.list_estate(iam, hosts=["web#7"])["canaries"]] == ["web_7"]


def test_orphans_are_keyless_users_and_keys_older_than_the_newest(iam):
    plant(iam, "web01", keys=0)
    old, new = plant(iam, "web02", keys=2)
    plant(iam, "web03")

    result = estate.list_estate(iam)

    assert [(o["host"], o["reason"], o["access_key_id"]) for o in result["orphans"]] == [
        ("web01", "no_key", None), ("web02", "not_newest", old["AccessKeyId"])]
    web02 = next(c for c in result["canaries"] if c["mapping"]["host"] == "web02")
    assert [(k["access_key_id"], k["newest"]) for k in web02["keys"]] == [(new["AccessKeyId"], True), (old["AccessKeyId"], False)]
    rows = {row["host"]: row for row in result["placements"]}
    assert (rows["web01"]["access_key_id"], rows["web01"]["key_count"]) == (None, 0)
    assert (rows["web02"]["access_key_id"], rows["web02"]["key_count"]) == (new["AccessKeyId"], 2)


def test_last_use_after_the_key_is_used(aws, iam):
    [used] = plant(iam, "web01")
    old, new = plant(iam, "web02", keys=2)
    plant(iam, "web03")
    assert use_key(aws, used, region="eu-west-2").endswith(":user/web01-backup")
    use_key(aws, old)  # an older key of a placement still burns the placement

    result = estate.list_estate(iam, last_used=True)

    web01 = result["canaries"][0]["keys"][0]
    assert web01["last_used"]["used"] is True
    assert (web01["last_used"]["service_name"], web01["last_used"]["region"]) == ("sts", "eu-west-2")
    assert estate.utc(web01["last_used"]["date"]) >= estate.utc(web01["create_date"])
    rows = {row["host"]: row for row in result["placements"]}
    assert rows["web01"]["used"] is True and rows["web01"]["last_used_service"] == "sts"
    assert rows["web02"]["access_key_id"] == new["AccessKeyId"]
    assert (rows["web02"]["used"], rows["web02"]["last_used_access_key_id"]) == (True, old["AccessKeyId"])
    assert rows["web03"]["used"] is False and rows["web03"]["last_used_date"] is None
    assert result["summary"]["used"] == 2


def test_iam_calls_list_access_keys(aws, iam):
    plant(iam, "web01")
    plant(iam, "web02", keys=2)
    plant(iam, "web03", keys=0)
    bystanders(iam)

    exact = {"key_source": "list_access_keys"}
    before = len(aws.calls())
    result = estate.list_estate(iam, **exact)
    assert iam_calls(aws, before) == {"GetAccountAuthorizationDetails": 1, "ListAccessKeys": 3}
    assert result["iam_calls"] == iam_calls(aws, before)
    assert {c["key_source"] for c in result["canaries"]} == {"list_access_keys"}

    before = len(aws.calls())
    result = estate.list_estate(iam, last_used=True, concurrency=1, **exact)
    assert iam_calls(aws, before) == {"GetAccountAuthorizationDetails": 1, "ListAccessKeys": 3, "GetAccessKeyLastUsed": 3}

    # Filters apply before any per-user call.
    before = len(aws.calls())
    estate.list_estate(iam, hosts=["web02"], last_used=True, **exact)
    assert iam_calls(aws, before) == {"GetAccountAuthorizationDetails": 1, "ListAccessKeys": 1, "GetAccessKeyLastUsed": 2}


def _census(result):
    """What both key sources must agree on: every canary, its keys (ids included) and their last use."""
    return [(c["user_name"], [{k: v for k, v in key.items() if k != "report_slot"} for key in c["keys"]]) for c in result["canaries"]]


def test_credential_report_source_costs_a_constant(aws, iam):
    for n in range(6):
        plant(iam, f"web{n:02d}")
    bystanders(iam)
    used = plant(iam, "web10")[0]
    use_key(aws, used)

    before = len(aws.calls())
    result = estate.list_estate(iam, report_poll_interval=0.05)

    assert iam_calls(aws, before) == {"GetAccountAuthorizationDetails": 1, "GenerateCredentialReport": 2,
                                      "GetCredentialReport": 1}
    assert result["key_source"] == "credential_report" and result["credential_report_as_of"] is not None
    assert {c["key_source"] for c in result["canaries"]} == {"credential_report"}
    assert all(k["access_key_id"] and k["report_slot"] == 1 for c in result["canaries"] for k in c["keys"])
    # The same census as ListAccessKeys, key ids included; last use costs one call per key, read live.
    before = len(aws.calls())
    with_use = estate.list_estate(iam, last_used=True)
    assert iam_calls(aws, before) == {"GetAccountAuthorizationDetails": 1, "GenerateCredentialReport": 1,
                                      "GetCredentialReport": 1, "GetAccessKeyLastUsed": 7}
    listed = estate.list_estate(iam, last_used=True, key_source="list_access_keys")
    assert _census(with_use) == _census(listed)
    assert [row["used"] for row in with_use["placements"]] == [False] * 6 + [True]
    assert with_use["placements"] == listed["placements"]


def test_credential_report_falls_back_for_canaries_it_does_not_account_for(aws, iam):
    plant(iam, "web01")                                     # accounted for: one key, named by its tags
    rotating = plant(iam, "web02", keys=2)                  # a rotation between mint and finish: two keys
    untagged = plant(iam, "web03", name_key=False)          # seeded before the key-id tags
    # Its tags name a key deleted since and the key it has was made outside the collection, a second later.
    [outside] = plant(iam, "web04", name_key=False)
    name_keys(iam, "web04-backup", "AKIAGONEGONEGONEGONE", outside["CreateDate"] - datetime.timedelta(seconds=1))
    keyless = plant(iam, "web05", keys=0)

    before = len(aws.calls())
    result = estate.list_estate(iam, report_poll_interval=0.05)

    assert iam_calls(aws, before) == {"GetAccountAuthorizationDetails": 1, "GenerateCredentialReport": 2,
                                      "GetCredentialReport": 1, "ListAccessKeys": 4}
    sources = {c["mapping"]["host"]: c["key_source"] for c in result["canaries"]}
    assert sources == {"web01": "credential_report", "web02": "list_access_keys", "web03": "list_access_keys",
                       "web04": "list_access_keys", "web05": "list_access_keys"}
    by_host = {c["mapping"]["host"]: [k["access_key_id"] for k in c["keys"]] for c in result["canaries"]}
    assert by_host["web02"] == [rotating[1]["AccessKeyId"], rotating[0]["AccessKeyId"]]
    assert by_host["web03"] == [untagged[0]["AccessKeyId"]]
    assert by_host["web04"] == [outside["AccessKeyId"]]
    assert by_host["web05"] == [] and keyless == []
    assert [(o["host"], o["reason"]) for o in result["orphans"]] == [("web02", "not_newest"), ("web05", "no_key")]
    assert _census(result) == _census(estate.list_estate(iam, key_source="list_access_keys"))


class PagedIAM:
    """The real moto client, with GetAccountAuthorizationDetails cut into MaxItems pages.

    moto ignores MaxItems and answers every user in one page (IsTruncated false); IAM pages.  The
    users come from moto; only the paging is done here, the way IAM does it (Marker, IsTruncated).
    """

    def __init__(self, client, short_pages=False):
        self.client = client
        self.short_pages = short_pages
        self.requests = []

    def __getattr__(self, name):
        return getattr(self.client, name)

    def get_account_authorization_details(self, Filter, MaxItems=100, Marker=None):  # noqa: N803  pylint: disable=invalid-name
        self.requests.append({"MaxItems": MaxItems, "Marker": Marker})
        users = self.client.get_account_authorization_details(Filter=Filter)["UserDetailList"]
        start = int(Marker or 0)
        # IAM may return fewer than MaxItems although more follow.
        size = max(1, MaxItems - 1) if self.short_pages else MaxItems
        page = users[start:start + size]
        truncated = start + size < len(users)
        return dict({"UserDetailList": page, "IsTruncated": truncated}, **({"Marker": str(start + size)} if truncated else {}))


@pytest.mark.parametrize("short_pages", [False, True])
def test_pagination_reads_every_page_once(aws, iam, short_pages):
    for n in range(7):
        plant(iam, f"web{n:02d}")
    bystanders(iam)  # 10 users in all
    paged = PagedIAM(iam, short_pages=short_pages)

    result = estate.list_estate(paged, page_size=3, report_poll_interval=0.05)

    assert len(result["canaries"]) == 7
    expected_pages = 5 if short_pages else 4
    assert [r["MaxItems"] for r in paged.requests] == [3] * expected_pages
    assert paged.requests[0]["Marker"] is None and all(r["Marker"] for r in paged.requests[1:])
    # Pages, then a constant: no call per user.
    assert result["iam_calls"] == {"GetAccountAuthorizationDetails": expected_pages, "GenerateCredentialReport": 2,
                                   "GetCredentialReport": 1}


class DeletingIAM:
    """The real client, with one canary deleted between the user listing and its key listing."""

    def __init__(self, client, victim):
        self.client = client
        self.victim = victim

    def __getattr__(self, name):
        return getattr(self.client, name)

    def get_account_authorization_details(self, **params):
        page = self.client.get_account_authorization_details(**params)
        for key in self.client.list_access_keys(UserName=self.victim)["AccessKeyMetadata"]:
            self.client.delete_access_key(UserName=self.victim, AccessKeyId=key["AccessKeyId"])
        self.client.delete_user(UserName=self.victim)
        return page


def test_a_canary_deleted_meanwhile_is_left_out(iam):
    plant(iam, "web01")
    plant(iam, "web02")
    result = estate.list_estate(DeletingIAM(iam, "web01-backup"), last_used=True)
    assert [c["user_name"] for c in result["canaries"]] == ["web02-backup"]


def test_concurrency_changes_nothing_but_speed(iam):
    for n in range(9):
        plant(iam, f"web{n:02d}", keys=1 + n % 2)
    now = datetime.datetime.now(UTC)
    serial = estate.list_estate(iam, last_used=True, concurrency=1, now=now, key_source="list_access_keys")
    parallel = estate.list_estate(iam, last_used=True, concurrency=8, now=now, key_source="list_access_keys")
    assert serial == parallel
