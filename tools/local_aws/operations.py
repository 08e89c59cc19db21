# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which AWS operation an HTTP request calls, and who signed it.

The local AWS proxy sees raw HTTP.  To count calls and to write CloudTrail records it needs what
AWS itself derives from a request: the service (the SigV4 credential scope names it), the operation
and the access key id.  The operation comes from the wire protocol:

query            ``Action=`` in the query string or the form body (IAM, STS, EC2, SNS, old SQS)
json             ``X-Amz-Target: Prefix.Operation`` (Secrets Manager, SQS, CloudWatch Logs, ...)
rpc-v2-cbor      ``POST /service/<Service>/operation/<Operation>`` (CloudWatch)
rest-xml/json    method + path + query, matched against botocore's own service model (S3, Lambda,
                 ...), so the REST mapping is the SDK's, not a hand-written table

botocore models are the source of truth because they are what every client signs requests from;
a table here would drift from them.
"""

from __future__ import annotations

import functools
import re
import threading
import urllib.parse
from dataclasses import dataclass

# SigV4 signing names whose botocore service name differs.
_SERVICE_OF_SIGNING_NAME = {
    "monitoring": "cloudwatch",
    "email": "ses",
    "states": "stepfunctions",
    "execute-api": "apigateway",
    "elasticloadbalancing": "elbv2",
    "elasticmapreduce": "emr",
    "events": "events",
    "cognito-idp": "cognito-idp",
    "s3": "s3",
}

_CREDENTIAL_RE = re.compile(r"Credential=([^,\s]+)")
_RPC_V2_PATH_RE = re.compile(r"^/service/[^/]+/operation/([^/?]+)$")
_MAX_FORM_BODY = 1 << 20


@dataclass(frozen=True)
class Operation:
    """What a request asks for.  ``action`` is None when the request could not be identified."""

    service: str | None
    action: str | None
    access_key_id: str | None
    region: str | None
    protocol: str | None


@dataclass(frozen=True)
class Credential:
    access_key_id: str
    date: str
    region: str
    service: str


def parse_credential(headers, query: dict[str, list[str]]) -> Credential | None:
    """The SigV4 credential scope of a request: header-signed, or a presigned URL's query."""
    scope = None
    authorization = headers.get("Authorization") or ""
    match = _CREDENTIAL_RE.search(authorization)
    if match:
        scope = match.group(1)
    elif query.get("X-Amz-Credential"):
        scope = query["X-Amz-Credential"][0]
    if not scope:
        return None
    parts = scope.split("/")
    if len(parts) < 5 or parts[-1] != "aws4_request":
        return None
    # An access key id never contains "/", so the last four parts are the scope.
    return Credential("/".join(parts[:-4]), parts[-4], parts[-3], parts[-2])


def _form_action(headers, body: bytes) -> str | None:
    content_type = (headers.get("Content-Type") or "").lower()
    if "x-www-form-urlencoded" not in content_type or not body or len(body) > _MAX_FORM_BODY:
        return None
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    values = form.get("Action")
    return values[0] if values else None


def form_parameters(headers, query: dict[str, list[str]], body: bytes) -> dict[str, str]:
    """Query-protocol parameters (query string and form body), first value of each."""
    params = {key: values[0] for key, values in query.items() if values}
    content_type = (headers.get("Content-Type") or "").lower()
    if "x-www-form-urlencoded" in content_type and body and len(body) <= _MAX_FORM_BODY:
        for key, values in urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
            params.setdefault(key, values[0])
    return params


def botocore_service_name(signing_name: str | None) -> str | None:
    if not signing_name:
        return None
    return _SERVICE_OF_SIGNING_NAME.get(signing_name, signing_name)


@dataclass(frozen=True)
class _RestRoute:
    name: str
    method: str
    path_re: re.Pattern
    literal_query: tuple[tuple[str, str | None], ...]
    required_headers: tuple[str, ...]
    required_query: tuple[str, ...]
    literal_chars: int


def _route(name: str, http: dict, input_shape) -> _RestRoute:
    uri = http.get("requestUri", "/")
    path, _sep, query = uri.partition("?")
    pattern = []
    literal_chars = 0
    for token in re.split(r"(\{[^}]+\})", path):
        if token.startswith("{") and token.endswith("}"):
            pattern.append(".+" if token.endswith("+}") else "[^/]+")
        else:
            pattern.append(re.escape(token))
            literal_chars += len(token)
    literal_query = []
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        literal_query.append((key, value if sep else None))
    required_headers, required_query = [], []
    if input_shape is not None:
        for member in input_shape.required_members:
            serialization = input_shape.members[member].serialization
            if serialization.get("location") == "header":
                required_headers.append(serialization.get("name", member).lower())
            elif serialization.get("location") == "querystring":
                required_query.append(serialization.get("name", member))
    return _RestRoute(name, http.get("method", "GET").upper(), re.compile("^" + "".join(pattern).rstrip("/") + "/?$"),
                      tuple(literal_query), tuple(required_headers), tuple(required_query), literal_chars)


_model_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def service_model(service: str):
    """botocore's model of a service, or None when botocore does not know it."""
    import botocore.exceptions  # pylint: disable=import-outside-toplevel
    import botocore.session  # pylint: disable=import-outside-toplevel

    with _model_lock:
        try:
            return botocore.session.get_session().get_service_model(service)
        except botocore.exceptions.UnknownServiceError:
            return None


@functools.lru_cache(maxsize=None)
def _rest_routes(service: str) -> tuple[_RestRoute, ...]:
    model = service_model(service)
    if model is None:
        return ()
    routes = []
    for name in model.operation_names:
        operation = model.operation_model(name)
        routes.append(_route(name, operation.http, operation.input_shape))
    return tuple(routes)


def rest_operation(service: str, method: str, path: str, query: dict[str, list[str]], headers) -> str | None:
    """The REST operation a request calls, by the most specific route of botocore's model.

    Several operations can share a method and path (S3 PutObject, CopyObject and UploadPart are all
    ``PUT /{Bucket}/{Key+}``): a route whose required header or query members are missing is out,
    and among the rest the one that matches more literal query keys and required members wins.
    """
    header_names = {name.lower() for name in headers.keys()}
    best, best_score = None, None
    for route in _rest_routes(service):
        if route.method != method or not route.path_re.match(path):
            continue
        if any(key not in query or (value is not None and value not in query[key]) for key, value in route.literal_query):
            continue
        if any(name not in header_names for name in route.required_headers):
            continue
        if any(name not in query for name in route.required_query):
            continue
        score = (len(route.literal_query) + len(route.required_headers) + len(route.required_query), route.literal_chars)
        if best_score is None or score > best_score:
            best, best_score = route.name, score
    return best


def s3_path(headers, path: str) -> str:
    """Virtual-hosted-style S3 requests (``bucket.localhost``) in path style."""
    host = (headers.get("Host") or "").rsplit(":", 1)[0]
    if host.endswith(".localhost"):
        return "/" + host[: -len(".localhost")] + (path if path != "/" else "")
    return path


def identify(method: str, target: str, headers, body: bytes = b"") -> Operation:
    """The operation of a request: ``target`` is the request line's path with its query string."""
    method = method.upper()
    raw_path, _sep, raw_query = target.partition("?")
    query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
    credential = parse_credential(headers, query)
    signing_name = credential.service if credential else None
    access_key_id = credential.access_key_id if credential else None
    region = credential.region if credential else None

    action, protocol = None, None
    amz_target = headers.get("X-Amz-Target")
    if query.get("Action"):
        action, protocol = query["Action"][0], "query"
    elif amz_target:
        action, protocol = amz_target.rsplit(".", 1)[-1], "json"
    else:
        rpc = _RPC_V2_PATH_RE.match(raw_path)
        if rpc and method == "POST":
            action, protocol = rpc.group(1), "smithy-rpc-v2-cbor"
        else:
            action = _form_action(headers, body) if method == "POST" else None
            if action:
                protocol = "query"
    if action is None and signing_name:
        service = botocore_service_name(signing_name)
        model = service_model(service)
        if model is not None and model.protocol in ("rest-xml", "rest-json"):
            path = s3_path(headers, raw_path) if service == "s3" else raw_path
            action = rest_operation(service, method, urllib.parse.unquote(path) if service != "s3" else path, query, headers)
            protocol = model.protocol
    return Operation(signing_name, action, access_key_id, region, protocol)


READ_ONLY_PREFIXES = ("Get", "List", "Describe", "Generate", "Head", "Simulate", "Lookup", "Search", "Select", "Query",
                      "Scan", "BatchGet", "Check", "Test", "Estimate", "Preview", "Validate", "Verify")


def is_read_only(action: str | None) -> bool:
    """Whether an operation only reads, by AWS's naming convention (what counting IAM writes needs)."""
    return bool(action) and action.startswith(READ_ONLY_PREFIXES)
