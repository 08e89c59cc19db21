# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CloudWatch Logs filter pattern evaluator (moto stores patterns; this decides what is delivered)."""

from __future__ import annotations

import json

import pytest

from tools.local_aws.filter_pattern import FilterPattern, PatternSyntaxError, UnsupportedPattern, matches

RECORD = json.dumps({
    "eventVersion": "1.09",
    "userIdentity": {"type": "IAMUser", "userName": "web03-backup", "accessKeyId": "AKIAEXAMPLE"},
    "eventSource": "s3.amazonaws.com",
    "eventName": "ListBuckets",
    "errorCode": "AccessDenied",
    "readOnly": True,
    "managementEvent": True,
    "responseElements": None,
    "bytes": 1500,
    "latency": 0.25,
    "resources": [{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::b/k"}, {"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::b"}],
})

DETECTION_PATTERN = '{ $.userIdentity.type = "IAMUser" }'


@pytest.mark.parametrize("pattern, expected", [
    (DETECTION_PATTERN, True),
    ('{$.userIdentity.type="IAMUser"}', True),
    ("{ $.userIdentity.type = IAMUser }", True),
    ('{ $.userIdentity.type = "AssumedRole" }', False),
    ('{ $.userIdentity.type != "AssumedRole" }', True),
    ('{ $.userIdentity.type != "IAMUser" }', False),
    ('{ $.userIdentity.type = "iamuser" }', False),
    ('{ $.eventName = "List*" }', True),
    ('{ $.eventName = "*Buckets" }', True),
    ('{ $.eventName = "L*B*s" }', True),
    ('{ $.eventName = "Get*" }', False),
    ('{ $.eventName = "*" }', True),
    ("{ $.bytes > 1000 }", True),
    ("{ $.bytes >= 1500 }", True),
    ("{ $.bytes < 1500 }", False),
    ("{ $.bytes <= 1500 }", True),
    ("{ $.bytes = 1500 }", True),
    ("{ $.bytes != 1500 }", False),
    ("{ $.latency > 0.2 }", True),
    ("{ $.latency > 2.5e-1 }", False),
    ("{ $.bytes > -1 }", True),
    ('{ $.eventName = 1500 }', False),
    ('{ $.bytes = "1500" }', False),
    ('{ $.userIdentity.type = "IAMUser" && $.errorCode = "AccessDenied" }', True),
    ('{ $.userIdentity.type = "IAMUser" && $.errorCode = "Throttling" }', False),
    ('{ $.errorCode = "Throttling" || $.eventName = "ListBuckets" }', True),
    ('{ $.errorCode = "Throttling" || $.eventName = "GetObject" }', False),
    # && binds tighter than ||
    ('{ $.eventName = "X" && $.bytes = 1 || $.readOnly IS TRUE }', True),
    ('{ $.eventName = "X" && ($.bytes = 1 || $.readOnly IS TRUE) }', False),
    ('{ (($.eventName = "ListBuckets")) }', True),
    ("{ $.readOnly IS TRUE }", True),
    ("{ $.readOnly IS FALSE }", False),
    ("{ $.managementEvent is true }", True),
    ("{ $.responseElements IS NULL }", True),
    ("{ $.errorCode IS NULL }", False),
    ("{ $.missing IS NULL }", False),
    ("{ $.missing NOT EXISTS }", True),
    ("{ $.errorCode NOT EXISTS }", False),
    ("{ $.errorCode EXISTS }", True),
    ("{ $.responseElements NOT EXISTS }", False),
    # A property the event lacks matches no comparison, not even !=.
    ('{ $.missing != "x" }', False),
    ('{ $.userIdentity.missing = "*" }', False),
    ('{ $.resources[0].type = "AWS::S3::Object" }', True),
    ('{ $.resources[1].type = "AWS::S3::Object" }', False),
    ('{ $.resources[5].type = "AWS::S3::Object" }', False),
    ('{ $.resources[*].ARN = "arn:aws:s3:::b" }', True),
    ('{ $.resources.*.type = "AWS::S3::Bucket" }', True),
    ('{ $.userIdentity.* = "web03-*" }', True),
    ("", True),
    ("   ", True),
])
def test_json_patterns(pattern, expected):
    assert matches(pattern, RECORD) is expected


def test_detection_pattern_against_other_identities():
    pattern = FilterPattern(DETECTION_PATTERN)
    for identity, expected in (("IAMUser", True), ("AssumedRole", False), ("Root", False), ("AWSService", False)):
        assert pattern.matches(json.dumps({"userIdentity": {"type": identity}})) is expected
    assert pattern.matches(json.dumps({"eventName": "x"})) is False
    assert pattern.matches("not json at all IAMUser") is False
    assert pattern.matches(json.dumps(["IAMUser"])) is False


def test_escaped_quotes_in_strings():
    assert matches(r'{ $.a = "say \"hi\"" }', json.dumps({"a": 'say "hi"'}))
    assert not matches(r'{ $.a = "say \"hi\"" }', json.dumps({"a": "say hi"}))


@pytest.mark.parametrize("pattern, message, expected", [
    ("AccessDenied", RECORD, True),
    ("AccessDenied ListBuckets", RECORD, True),
    ("AccessDenied GetObject", RECORD, False),
    ('"userIdentity"', RECORD, True),
    ("?GetObject ?ListBuckets", RECORD, True),
    ("?GetObject ?PutObject", RECORD, False),
    ("-AccessDenied", RECORD, False),
    ("ListBuckets -Throttling", RECORD, True),
])
def test_term_patterns(pattern, message, expected):
    assert matches(pattern, message) is expected


@pytest.mark.parametrize("pattern", [
    "{ $.a = }",
    '{ $.a = "x"',
    '{ $.a < "x" }',
    "{ $.a IS MAYBE }",
    "{ $.a NOT THERE }",
    '{ $.a = "x" && }',
    '{ ($.a = "x" }',
    '{ $.a = "x" } trailing',
    '{ a = "x" }',
    "{ $.a ~ 1 }",
])
def test_syntax_errors_are_refused(pattern):
    with pytest.raises(PatternSyntaxError):
        FilterPattern(pattern)


@pytest.mark.parametrize("pattern", ["[ip, user, status = 4*]", "{ $.eventName = %List.*% }", "%AccessDenied%"])
def test_unmodelled_syntax_is_refused_not_guessed(pattern):
    with pytest.raises(UnsupportedPattern):
        FilterPattern(pattern)
