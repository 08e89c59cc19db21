# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The estate filters: which canaries are a host's, who owns a file, what a reconciliation did.

The canaries are built the way canary_key_info returns them, their tags from canary_mapping as the
modules write them, so a filter that drifted from the modules' rules fails here.
"""

from __future__ import annotations

import pathlib

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.canarykeys.aws.plugins.filter import estate
from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared.canary_mapping import placement_id, sanitize_tag_value

FILTER_DIR = pathlib.Path(estate.__file__).parent


def canary(host, path, profile, user_name, *key_ids):
    mapping = {"host": sanitize_tag_value(host), "path": sanitize_tag_value(path), "profile": sanitize_tag_value(profile),
               "placement_id": placement_id(host, path, profile)}
    return {"user_name": user_name, "mapping": mapping, "keys": [{"access_key_id": key} for key in key_ids]}


def read(canary_item, planted, failed=False, msg=""):
    result = {"retire_canary": canary_item, "path": canary_item["mapping"]["path"], "access_key_id": planted}
    if failed:
        result = {"retire_canary": canary_item, "failed": True, "msg": msg}
    return result


class HostVars(dict):
    """hostvars as a filter sees it: host -> a mapping of that host's variables."""


@pytest.mark.parametrize("path,become,login,owner", [
    ("/root/.aws/credentials", False, "ops", "root"),
    ("/home/deploy/.aws/credentials", True, "ops", "deploy"),
    ("/Users/alice/.aws/credentials", False, "alice", "alice"),
    ("/srv/app/credentials", True, "ops", "root"),
    ("/srv/app/credentials", "false", "ops", "ops"),
    ("/srv/app/credentials", False, "", "root"),
])
def test_owner_of_a_placement_file(path, become, login, owner):
    assert estate.canary_owner(path, become, login) == owner


def test_a_host_name_is_matched_as_the_tags_hold_it():
    # IAM tags cannot hold '!', so the seed recorded the host as "web_01"; flat placement rows too.
    mine = canary("web!01", "/root/.aws/credentials", "backup", "web-01-backup", "AKIA1")
    other = canary("web02", "/root/.aws/credentials", "backup", "web02-backup", "AKIA2")
    assert estate.host_canaries([mine, other], "web!01") == [mine]
    rows = [{"host": "web_01", "path": "/p"}, {"host": "web02", "path": "/p"}]
    assert estate.host_canaries(rows, "web!01") == rows[:1]


def test_a_canary_whose_tags_were_sanitised_is_not_located():
    plain = canary("web01", "/home/deploy/.aws/credentials", "prod", "web01-prod", "AKIA1")
    odd = canary("web01", "/home/deploy/.aws/credentials", "prod#2", "web01-prod2", "AKIA2")
    assert odd["mapping"]["profile"] == "prod_2"
    assert estate.located_canaries([plain, odd], "web01") == [plain]


def test_missing_canaries_compare_sanitised_names():
    kept = canary("web!01", "/p", "a", "u1", "AKIA1")
    gone = canary("old-db01", "/p", "a", "u2", "AKIA2")
    assert estate.missing_canaries([kept, gone], ["web!01", "web02"]) == [gone]
    assert estate.missing_canaries([{"host": "web_01"}, {"host": "x"}], ["web!01"]) == [{"host": "x"}]


def test_due_placements_are_old_keys_and_second_keys_sorted():
    rows = [
        {"host": "web01", "path": "/z", "profile": "a", "key_count": 1, "age_days": 91},
        {"host": "web01", "path": "/a", "profile": "b", "key_count": 2, "age_days": 1},
        {"host": "web01", "path": "/a", "profile": "a", "key_count": 1, "age_days": 89.9},
        {"host": "web01", "path": "/b", "profile": "a", "key_count": 0, "age_days": 400},
        {"host": "web02", "path": "/a", "profile": "a", "key_count": 1, "age_days": 400},
    ]
    assert estate.due_placements(rows, "web01", "90") == [rows[1], rows[0]]
    assert [row["path"] for row in estate.due_placements(rows, "web01", 0)] == ["/a", "/a", "/z"]
    with pytest.raises(AnsibleFilterError, match="max_age_days"):
        estate.due_placements(rows, "web01", "ninety")


def test_reconcile_findings_delete_what_no_profile_holds():
    both = canary("web01", "/home/deploy/.aws/credentials", "prod", "web01-prod", "AKIAOLD", "AKIANEW")
    none_held = canary("web01", "/root/.aws/credentials", "backup", "web01-backup", "AKIAB")
    settled = canary("web01", "/home/ops/.aws/credentials", "ci", "web01-ci", "AKIAC")
    broken = canary("web01", "/home/app/.aws/credentials", "app", "web01-app", "AKIAD")
    odd = canary("web01", "/home/deploy/.aws/credentials", "prod#2", "web01-prod2", "AKIAE")
    found = estate.reconcile_findings(
        [read(both, "AKIANEW"), read(none_held, ""), read(settled, "AKIAC"), read(broken, "", True, "Permission denied")],
        [both, none_held, settled, broken, odd], "web01")
    assert found["checked"] == ["web01-prod", "web01-backup", "web01-ci"]
    assert found["unreadable"] == {"web01-app": "Permission denied"}
    assert found["unlocated"] == ["web01-prod2"]
    assert found["deleted_keys"] == [
        {"user_name": "web01-prod", "path": "/home/deploy/.aws/credentials", "profile": "prod", "access_key_id": "AKIAOLD",
         "key_ids": ["AKIAOLD"], "emptied": False, "account": "", "account_id": ""},
        {"user_name": "web01-backup", "path": "/root/.aws/credentials", "profile": "backup", "access_key_id": None,
         "key_ids": ["AKIAB"], "emptied": True, "account": "", "account_id": ""},
    ]


def test_retire_rows_say_what_went():
    held = canary("web01", "/root/.aws/credentials", "backup", "web01-backup", "AKIAB")
    other = canary("web01", "/home/deploy/.aws/credentials", "prod", "web01-prod", "AKIAP")
    empty = canary("web01", "/home/ops/.aws/credentials", "ci", "web01-ci", "AKIAC")
    rows = estate.retire_rows([read(held, "AKIAB"), read(other, "AKIAREAL"), read(empty, "")], "web01", True)
    assert [row["status"] for row in rows] == [
        "would be retired", "would be retired (IAM only: the profile holds AKIAREAL)",
        "would be retired (IAM only: the profile holds no key)"]
    assert rows[0] == {"host": "web01", "account": "", "path": "/root/.aws/credentials", "profile": "backup", "iam_user": "web01-backup",
                       "access_key_id": "AKIAB", "status": "would be retired"}


def test_canary_rows_list_every_key():
    item = canary("old-db01", "/root/.aws/credentials", "backup", "old-db01-backup", "AKIA1", "AKIA2")
    assert estate.canary_rows([item], "retired") == [{"host": "old-db01", "path": "/root/.aws/credentials",
                                                      "profile": "backup", "iam_user": "old-db01-backup", "account": "",
                                                      "access_key_id": "AKIA1 AKIA2", "status": "retired"}]


def test_reconcile_report_rows_and_summary():
    deleted_from = canary("web01", "/home/deploy/.aws/credentials", "prod", "web01-prod", "AKIANEW")
    keyless = canary("web02", "/home/deploy/.aws/credentials", "prod", "web02-prod")
    unread = canary("web02", "/root/.aws/credentials", "backup", "web02-backup", "AKIAR")
    odd = canary("web02", "/home/deploy/.aws/credentials", "prod#2", "web02-prod2", "AKIAO")
    unreached = canary("web03", "/root/.aws/credentials", "backup", "web03-backup", "AKIAU")
    gone = canary("old-db01", "/root/.aws/credentials", "backup", "old-db01-backup", "AKIAG")
    fine = canary("web01", "/root/.aws/credentials", "backup", "web01-backup", "AKIAF")
    result = {"canaries": [deleted_from, keyless, unread, odd, unreached, gone, fine],
              "orphans": [{"user_name": "web02-prod", "reason": "no_key"}, {"user_name": "x", "reason": "not_newest"}]}
    hostvars = HostVars({
        "web01": {"retire_reconciled": {"checked": ["web01-prod", "web01-backup"], "unreadable": {}, "unlocated": [],
                                        "deleted_keys": [{"user_name": "web01-prod", "path": "/home/deploy/.aws/credentials",
                                                          "profile": "prod", "access_key_id": "AKIAOLD",
                                                          "key_ids": ["AKIAOLD"], "emptied": False}]}},
        "web02": {"retire_reconciled": {"checked": [], "deleted_keys": [], "unlocated": ["web02-prod2"],
                                        "unreadable": {"web02-backup": "Permission denied"}}},
        "web03": {},
    })
    report = estate.reconcile_report(result, hostvars, ["web01", "web02", "web03"], False)
    assert report["keyless"] == [keyless]
    assert {row["iam_user"]: row["status"] for row in report["rows"]} == {
        "web01-prod": "key deleted: the profile holds another key of the user",
        "web02-prod": "user deleted: no key at all",
        "web02-backup": "not checked: Permission denied",
        "web02-prod2": "not checked: the recorded file or profile was sanitised, check it by hand",
        "web03-backup": "not checked: host not reached or not targeted",
        "old-db01-backup": "host not in the inventory: retire_canaries.yml -e purge_missing=true",
    }
    assert report["rows"][0]["access_key_id"] == "AKIAOLD"
    assert report["summary"] == ("Reconciliation: 1 unplanted keys and 1 users without keys deleted, "
                                 "2 placements on 2 hosts checked, 1 canaries of hosts not in the inventory.")
    checked = estate.reconcile_report(result, hostvars, ["web01", "web02", "web03"], True)
    assert checked["summary"].startswith("Reconciliation (check mode: nothing deleted): 1 unplanted keys and 1 users "
                                         "without keys would be deleted")
    assert checked["rows"][0]["status"] == "key would be deleted: the profile holds another key of the user"


def test_every_filter_is_documented_next_to_it():
    for name in estate.FilterModule().filters():
        doc = yaml.safe_load((FILTER_DIR / (name + ".yml")).read_text())
        assert doc["DOCUMENTATION"]["name"] == name
        assert doc["DOCUMENTATION"]["version_added"] == "0.1.0"
        assert doc["EXAMPLES"] and doc["RETURN"]["_value"]
