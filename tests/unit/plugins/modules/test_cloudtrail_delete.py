# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""canarykeys.aws.cloudtrail_delete against the local AWS (where deleting by ARN is a silent no-op)."""

from __future__ import annotations

from ansible_collections.canarykeys.aws.plugins.modules import cloudtrail_delete as module


def trail_names(aws):
    # moto's describe_trails ignores name filters: list them all.
    return sorted(t["Name"] for t in aws.client("cloudtrail").describe_trails()["trailList"])


def test_deletes_only_the_named_trail_once(aws, run_module, trail):
    aws.client("cloudtrail").create_trail(Name="keep-me", S3BucketName="trail-bucket")
    check = run_module(module, check_mode=True, diff=True, name=trail)
    assert check["changed"] is True and check["trail_arn"].endswith(f":trail/{trail}")
    assert check["diff"] == {"before": {"trail": trail}, "after": {"trail": None}}
    assert trail_names(aws) == ["keep-me", trail]

    result = run_module(module, name=trail)
    assert result["changed"] is True
    assert trail_names(aws) == ["keep-me"]
    again = run_module(module, name=trail)
    assert (again["changed"], again["trail_arn"]) == (False, None)
