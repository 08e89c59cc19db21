# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""canary_accounts and a host's canary_account -> the modules' account option, per-account groups, merged readings."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.canarykeys.aws.plugins.filter.accounts import (
    FilterModule, account_entry, account_groups, account_label, all_accounts, canaries_of, estate_merge, named_accounts)
from ansible_collections.canarykeys.aws.plugins.filter.tables import reminder_table

EU = {"name": "web-eu", "role_arn": "arn:aws:iam::222222222222:role/canarykeys", "external_id": "ext-1234", "session_name": ""}
US = {"name": "web-us", "profile": "canary-us"}
ACCOUNTS = [EU, US]


def test_a_name_gives_its_entry_with_empty_keys_dropped():
    assert account_entry("web-us", ACCOUNTS) == {"name": "web-us", "profile": "canary-us"}
    assert account_entry("web-eu", ACCOUNTS) == {"name": "web-eu", "role_arn": EU["role_arn"], "external_id": "ext-1234"}


def test_no_name_is_the_first_entry_and_no_accounts_the_controllers_own():
    assert account_entry("", ACCOUNTS)["name"] == "web-eu"
    assert account_entry("", []) == {}
    assert account_entry(None, None) == {}


@pytest.mark.parametrize("name, accounts, message", [
    ("web-ap", ACCOUNTS, "canary_account web-ap is not in canary_accounts \\(web-eu, web-us\\)"),
    ("web-eu", [], "canary_accounts lists no account"),
    ("", [{"role_arn": EU["role_arn"]}], "entry 1 needs a name"),
    ("", [EU, dict(US, name="web-eu")], "names web-eu twice"),
    ("", [dict(EU, profile="x")], "sets both role_arn and profile"),
    ("", [dict(EU, role_arn="arn:aws:iam::22:user/x")], "is not an IAM role ARN"),
    ("", [dict(EU, region="eu-west-1")], "unknown key\\(s\\) region"),
    ("", {"name": "x"}, "must be a list"),
])
def test_bad_settings_fail_in_one_line_naming_what_is_wrong(name, accounts, message):
    with pytest.raises(AnsibleFilterError, match=message):
        account_entry(name, accounts)


def test_hosts_are_grouped_by_account_in_canary_accounts_order():
    hostvars = {"web01": {"canary_account": "web-us"}, "web02": {}, "laptop1": {"canary_account": "web-eu"}, "web03": {"canary_account": "web-us"}}
    groups = account_groups(["web01", "web02", "laptop1", "web03"], hostvars, ACCOUNTS)
    assert [(group["name"], group["hosts"]) for group in groups] == [("web-eu", ["web02", "laptop1"]), ("web-us", ["web01", "web03"])]
    assert groups[1]["account"] == {"name": "web-us", "profile": "canary-us"}
    # The order is canary_accounts', not the hosts': two runs take several accounts' leases in one order.
    assert [group["name"] for group in account_groups(["web01", "laptop1"], hostvars, ACCOUNTS)] == ["web-eu", "web-us"]


def test_without_accounts_every_host_is_in_one_group_of_the_controllers_account():
    assert account_groups(["a", "b"], {"a": {}, "b": {}}, []) == [{"name": "", "account": {}, "hosts": ["a", "b"]}]


def test_a_host_naming_an_unknown_account_fails_the_grouping():
    with pytest.raises(AnsibleFilterError, match="web-ap is not in canary_accounts"):
        account_groups(["a"], {"a": {"canary_account": "web-ap"}}, ACCOUNTS)


def test_named_and_all_accounts():
    assert [group["name"] for group in named_accounts(["web-us", "web-us", ""], ACCOUNTS)] == ["web-eu", "web-us"]
    assert named_accounts([], ACCOUNTS) == []
    assert [group["name"] for group in all_accounts(ACCOUNTS)] == ["web-eu", "web-us"]
    assert all_accounts([]) == [{"name": "", "account": {}, "hosts": []}]


def _reading(account, account_id, hosts, as_of):
    canaries = [{"user_name": f"{host}-prod", "account": account, "account_id": account_id, "mapping": {"host": host}} for host in hosts]
    return {"canaries": canaries, "placements": [{"host": host, "account": account} for host in hosts],
            "orphans": [{"user_name": "x"}] if account == "web-us" else [],
            "summary": {"canaries": len(hosts), "access_keys": len(hosts), "orphans": 1 if account == "web-us" else 0,
                        "hosts": len(hosts), "dead": 0},
            "iam_calls": {"GetAccountAuthorizationDetails": 1}, "key_source": "credential_report",
            "credential_report_as_of": as_of, "account": account, "account_id": account_id}


def test_readings_of_several_accounts_merge_into_one():
    registered = {"results": [_reading("web-eu", "222222222222", ["web01", "web02"], "2026-12-04T03:00:00Z"),
                              {"skipped": True},
                              _reading("web-us", "333333333333", ["web03"], "2026-12-04T01:00:00Z")], "changed": False}
    merged = estate_merge(registered)
    assert [c["user_name"] for c in merged["canaries"]] == ["web01-prod", "web02-prod", "web03-prod"]
    assert merged["summary"] == {"canaries": 3, "access_keys": 3, "orphans": 1, "dead": 0, "hosts": 3}
    assert merged["iam_calls"] == {"GetAccountAuthorizationDetails": 2}
    assert merged["credential_report_as_of"] == "2026-12-04T01:00:00Z"
    assert merged["accounts"] == [{"account": "web-eu", "account_id": "222222222222"}, {"account": "web-us", "account_id": "333333333333"}]
    assert canaries_of(registered) == merged["canaries"]


def test_a_single_reading_passes_through():
    reading = _reading("", "123456789012", ["web01"], None)
    assert estate_merge(reading) is reading
    assert canaries_of(reading) == reading["canaries"]
    assert canaries_of(reading["canaries"]) == reading["canaries"]


def test_the_reminder_table_names_each_rows_account():
    rows = [{"host": "web01", "account": "web-eu", "path": "/p", "profile": "prod", "iam_user": "web01-prod", "access_key_id": "AKIA1", "status": "minted"},
            {"host": "web02", "account": account_label({"account": "", "account_id": "123456789012"}), "path": "/p", "profile": "prod",
             "iam_user": "web02-prod", "access_key_id": "AKIA2", "status": "minted"}]
    table = reminder_table(rows)
    assert table[0].split()[:2] == ["host", "account"]
    assert table[2].split()[:2] == ["web01", "web-eu"]
    assert table[3].split()[:2] == ["web02", "123456789012"]


def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {"account_entry", "account_groups", "all_accounts", "named_accounts", "estate_merge"}


def test_an_estate_is_grouped_by_host_in_one_pass():
    from ansible_collections.canarykeys.aws.plugins.filter.estate import group_by_host  # pylint: disable=import-outside-toplevel

    registered = {"results": [_reading("web-eu", "222222222222", ["web01", "web02"], None),
                              _reading("web-us", "333333333333", ["web01.example.com"], None)]}
    grouped = group_by_host(registered, ["web01", "web02", "web03", "web01.example.com"])
    assert {host: [c["user_name"] for c in items] for host, items in grouped.items()} == {
        "web01": ["web01-prod"], "web02": ["web02-prod"], "web03": [], "web01.example.com": ["web01.example.com-prod"]}
    rows = registered["results"][0]["placements"]
    assert group_by_host(rows, ["web02"]) == {"web02": [rows[1]]}
