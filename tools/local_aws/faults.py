# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real AWS's faults, injected by the local AWS proxy at rates set per run (docs/local_aws.md, "Fault mode").

moto answers every call at once, never throttles and is immediately consistent; AWS does none of
that.  Code that only ever met moto has never met a ``Throttling`` error, a user that answers
``NoSuchEntity`` right after ``CreateUser`` returned it, a key that STS does not know yet, a 503, or
a connection that closes with no answer.  This module decides, request by request, which of those a
call meets, answers it the way AWS would (the service's error format, so botocore classifies and
retries it as it does AWS's), and counts what it injected.

Kinds, in the order a request meets them:

``latency``          every call of the selected services waits ``latency`` (+ up to ``latency_jitter``) s
``dropped``          the connection is reset before the request reaches moto (``drop_rate``)
``throttled``        IAM only: beyond a token bucket of ``iam_rate`` calls/s (``iam_burst`` at once),
                     400 ``Throttling`` "Rate exceeded" in IAM's XML, as IAM answers
``error_500``/``error_503``  transient server errors (``error_rate``, half each)
``invalid_token``    a request signed by an access key created less than ``consistency_delay`` s ago:
                     ``InvalidClientTokenId`` (S3 ``InvalidAccessKeyId``, JSON ``UnrecognizedClientException``)
``not_yet_consistent``  an IAM read naming a user or key created less than ``consistency_delay`` s ago:
                     404 ``NoSuchEntity``; ``ListAccessKeys`` leaves such keys out of its answer
``lost_response``    moto did the call but the connection is reset before the answer (``lost_response_rate``):
                     the dangerous one, a ``CreateAccessKey`` whose secret nobody received

Random draws come from one ``random.Random(seed)``: the same seed and the same sequence of calls
give the same faults (calls made concurrently draw in the order they arrive).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import socket
import struct
import threading
import time
import urllib.parse
import uuid

from tools.local_aws.operations import form_parameters, identify, is_read_only

ENV_VAR = "LOCAL_AWS_FAULTS"
CONTROL_PATH = "/local-aws/faults"
KINDS = ("latency", "dropped", "throttled", "error_500", "error_503", "invalid_token", "not_yet_consistent", "lost_response")
_IAM_XMLNS = "https://iam.amazonaws.com/doc/2010-05-08/"
_ACCESS_KEY_ID = re.compile(r"<AccessKeyId>([A-Z0-9]+)</AccessKeyId>")
_USER_NAME = re.compile(r"<UserName>([^<]+)</UserName>")
# ListAccessKeys members are flat: one <member> per key, no nested members.
_KEY_MEMBER = re.compile(r"\s*<member>(?:(?!</member>).)*?<AccessKeyId>([A-Z0-9]+)</AccessKeyId>.*?</member>", re.S)


@dataclasses.dataclass
class FaultConfig:
    """The rates of one run; all zero (the default) is plain moto."""

    seed: int = 0
    iam_rate: float = 0.0  # IAM calls per second before Throttling; 0: no budget
    iam_burst: int = 0  # the bucket's size; 0: max(1, iam_rate)
    consistency_delay: float = 0.0  # seconds a new user or key is unknown to IAM reads and to authentication
    error_rate: float = 0.0  # fraction of calls answered 500 or 503
    drop_rate: float = 0.0  # fraction of requests reset before they reach moto
    lost_response_rate: float = 0.0  # fraction of requests moto does whose answer is reset
    latency: float = 0.0  # seconds added to every call
    latency_jitter: float = 0.0  # up to this many more seconds, uniformly
    services: tuple = ()  # services (signing names) the random faults and latency apply to; empty: all
    # Scripted lost answers, for tests that must meet one exactly: "CreateAccessKey:1" loses the answer of the next
    # CreateAccessKey (moto does the call); "Action:N,Action:N" for several.  Not drawn, not seeded.
    lose_responses: str = ""

    @property
    def active(self) -> bool:
        return any((self.iam_rate, self.consistency_delay, self.error_rate, self.drop_rate, self.lost_response_rate,
                    self.latency, self.latency_jitter, self.lose_responses))

    def scripted_losses(self) -> dict:
        """``lose_responses`` as {action: how many answers to lose}; ValueError on a bad one."""
        losses = {}
        for item in filter(None, (part.strip() for part in self.lose_responses.split(","))):
            action, _sep, count = item.partition(":")
            if not action.isalnum() or not (count or "1").isdigit():
                raise ValueError(f"lose_responses item {item!r} is not Action:N")
            losses[action] = int(count or 1)
        return losses

    def updated(self, changes: dict) -> "FaultConfig":
        """A copy with ``changes`` (names as the fields; values as JSON or strings give them); ValueError on a bad one."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        values = dataclasses.asdict(self)
        for name, value in changes.items():
            if name not in fields:
                raise ValueError(f"unknown fault setting {name!r}; known: {', '.join(fields)}")
            if name == "services":
                value = tuple(filter(None, value.split(",") if isinstance(value, str) else value))
            elif name == "lose_responses":
                value = str(value)
            else:
                value = type(values[name])(value)
                if value < 0 or (name.endswith("_rate") and name != "iam_rate" and value > 1):
                    raise ValueError(f"fault setting {name} out of range: {value}")
            values[name] = value
        if values["error_rate"] + values["drop_rate"] + values["lost_response_rate"] > 1:
            raise ValueError("error_rate + drop_rate + lost_response_rate must not exceed 1")
        config = FaultConfig(**values)
        config.scripted_losses()
        return config

    @classmethod
    def parse(cls, spec) -> "FaultConfig":
        """From a FaultConfig, a dict, JSON text or ``name=value,name=value`` (the environment variable's form)."""
        if spec is None or isinstance(spec, FaultConfig):
            return spec or cls()
        if isinstance(spec, dict):
            return cls().updated(spec)
        spec = spec.strip()
        if spec.startswith("{"):
            return cls().updated(json.loads(spec))
        changes = {}
        for item in filter(None, (part.strip() for part in re.split(r"[,\s]+(?=[a-z_]+=)", spec))):
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"fault setting {item!r} is not name=value")
            changes[name.strip()] = value.strip()
        return cls().updated(changes)

    @classmethod
    def from_env(cls, environ=None) -> "FaultConfig":
        return cls.parse((environ if environ is not None else os.environ).get(ENV_VAR) or None)


def add_arguments(parser: argparse.ArgumentParser):
    """The fault flags of ``python -m tools.local_aws.server``; they override ``$LOCAL_AWS_FAULTS``."""
    group = parser.add_argument_group("fault mode (docs/local_aws.md); also $" + ENV_VAR)
    for field in dataclasses.fields(FaultConfig):
        flag = "--fault-" + field.name.replace("_", "-")
        group.add_argument(flag, dest="fault_" + field.name, default=None, metavar=field.name.upper(),
                           help=f"default {field.default!r}" + ("; comma-separated" if field.name == "services" else ""))


def config_from_args(args, environ=None) -> FaultConfig:
    changes = {f.name: getattr(args, "fault_" + f.name) for f in dataclasses.fields(FaultConfig)
               if getattr(args, "fault_" + f.name, None) is not None}
    return FaultConfig.from_env(environ).updated(changes)


@dataclasses.dataclass
class Verdict:
    """What the proxy does instead of forwarding: answer (status, headers, body) or reset the connection."""

    kind: str | None  # None: not a fault, an answer IAM itself gives that moto does not (iam_conflicts.py)
    status: int = 0
    headers: list = dataclasses.field(default_factory=list)
    body: bytes = b""

    @property
    def drop(self) -> bool:
        return self.kind in ("dropped", "lost_response")


def _error(operation, status, code, message, kind) -> Verdict:
    """``code`` rendered in the service's error format, as botocore parses AWS's."""
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", request_id)]
    protocol, service = operation.protocol, operation.service
    if service == "ec2":
        body = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                f"<RequestID>{request_id}</RequestID></Response>")
        headers.append(("Content-Type", "text/xml"))
    elif protocol in ("json", "rest-json"):
        body = json.dumps({"__type": code, "message": message})
        headers += [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
    elif protocol == "rest-xml":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        headers += [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
    else:
        # The query protocol (IAM, STS, SQS's query form) and anything unknown.
        fault_type = "Receiver" if status >= 500 else "Sender"
        xmlns = f' xmlns="{_IAM_XMLNS}"' if service == "iam" else ""
        body = (f"<ErrorResponse{xmlns}><Error><Type>{fault_type}</Type><Code>{code}</Code><Message>{message}</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
        headers.append(("Content-Type", "text/xml"))
    return Verdict(kind, status, headers, body.encode())


# The same rendering for the local AWS's models of IAM's own answers (tools/local_aws/iam_conflicts.py).
error_verdict = _error


def _server_error(operation, status, kind) -> Verdict:
    if status == 503:
        return _error(operation, 503, "ServiceUnavailable", "Service is unavailable", kind)
    # IAM documents ServiceFailure for its 500s; S3 says InternalError; the others InternalFailure.
    code = {"iam": "ServiceFailure", "s3": "InternalError"}.get(operation.service, "InternalFailure")
    return _error(operation, 500, code, "The request processing has failed because of an unknown error, exception or failure.", kind)


def _invalid_token(operation) -> Verdict:
    if operation.protocol == "rest-xml":
        return _error(operation, 403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.",
                      "invalid_token")
    if operation.service == "ec2":
        return _error(operation, 401, "AuthFailure", "AWS was not able to validate the provided access credentials", "invalid_token")
    if operation.protocol in ("json", "rest-json"):
        return _error(operation, 400, "UnrecognizedClientException", "The security token included in the request is invalid.",
                      "invalid_token")
    return _error(operation, 403, "InvalidClientTokenId", "The security token included in the request is invalid.", "invalid_token")


class Faults:
    """The fault decisions and counters of one local AWS (thread-safe: the proxy serves on many threads)."""

    def __init__(self, config: FaultConfig | None = None):
        self._lock = threading.Lock()
        self.config = config or FaultConfig()
        self.reset()

    @property
    def active(self) -> bool:
        return self.config.active

    def configure(self, **changes) -> FaultConfig:
        """Change settings for the rest of the run; a new ``seed`` restarts the random sequence."""
        with self._lock:
            self.config = self.config.updated(changes)
            if "seed" in changes:
                self._random = random.Random(self.config.seed)
            if "lose_responses" in changes:
                self._to_lose = self.config.scripted_losses()
            return self.config

    def reset(self):
        """Counters, the random sequence (from the seed), the token bucket and the new users and keys start over."""
        with self._lock:
            self._random = random.Random(self.config.seed)
            self._tokens = None
            self._refilled = time.monotonic()
            self._new_users: dict[str, float] = {}
            self._new_keys: dict[str, float] = {}
            self._counts = {kind: {} for kind in KINDS}
            self._calls = 0
            self._to_lose = self.config.scripted_losses()

    def counters(self) -> dict:
        """``{"calls": N, "injected": {kind: total}, "by_action": {kind: {"iam:CreateUser": n}}}``."""
        with self._lock:
            return {"calls": self._calls,
                    "injected": {kind: sum(actions.values()) for kind, actions in self._counts.items()},
                    "by_action": {kind: dict(actions) for kind, actions in self._counts.items() if actions}}

    def state(self) -> dict:
        return {"config": dataclasses.asdict(self.config), **self.counters()}

    # -- decisions -----------------------------------------------------------------------------------

    def _count(self, kind, operation):
        name = f"{operation.service}:{operation.action}"
        self._counts[kind][name] = self._counts[kind].get(name, 0) + 1

    def _take_token(self, now) -> bool:
        rate = self.config.iam_rate
        burst = self.config.iam_burst or max(1.0, rate)
        if self._tokens is None:
            self._tokens = float(burst)
        self._tokens = min(float(burst), self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _is_new(self, table, name, now) -> bool:
        created = table.get(name)
        if created is None:
            return False
        if now - created < self.config.consistency_delay:
            return True
        del table[name]
        return False

    def before(self, exchange) -> Verdict | None:
        """The fault a request meets before moto sees it (None: forward it); sleeps the latency itself."""
        operation = identify(exchange.method, exchange.target, exchange.headers, exchange.body)
        exchange.operation = operation
        config = self.config
        selected = not config.services or operation.service in config.services
        with self._lock:
            self._calls += 1
            delay = 0.0
            if selected and (config.latency or config.latency_jitter):
                delay = config.latency + self._random.uniform(0, config.latency_jitter)
                self._count("latency", operation)
            draw = self._random.random() if selected else 1.0
            verdict = self._decide(exchange, operation, draw, time.monotonic())
            if verdict is not None:
                self._count(verdict.kind, operation)
        if delay:
            time.sleep(delay)
        return verdict

    def _decide(self, exchange, operation, draw, now) -> Verdict | None:
        config = self.config
        if draw < config.drop_rate:
            return Verdict("dropped")
        if operation.service == "iam" and config.iam_rate and not self._take_token(now):
            return _error(operation, 400, "Throttling", "Rate exceeded", "throttled")
        errors_from = config.drop_rate
        if draw - errors_from < config.error_rate and draw >= errors_from:
            status = 500 if draw - errors_from < config.error_rate / 2 else 503
            return _server_error(operation, status, f"error_{status}")
        if not config.consistency_delay:
            return None
        if operation.access_key_id and self._is_new(self._new_keys, operation.access_key_id, now):
            return _invalid_token(operation)
        if operation.service == "iam" and is_read_only(operation.action):
            params = _parameters(exchange)
            user, key = params.get("UserName"), params.get("AccessKeyId")
            if key and self._is_new(self._new_keys, key, now):
                return _error(operation, 404, "NoSuchEntity", f"The Access Key with id {key} cannot be found.", "not_yet_consistent")
            if user and self._is_new(self._new_users, user, now) and operation.action != "ListAccessKeys":
                return _error(operation, 404, "NoSuchEntity", f"The user with name {user} cannot be found.", "not_yet_consistent")
        return None

    def wants_body(self, exchange) -> bool:
        """Whether the proxy must hand this successful answer to ``after`` whole (IAM answers it reads or rewrites)."""
        operation = exchange.operation
        return (bool(self.config.consistency_delay) and operation is not None and operation.service == "iam"
                and operation.action in ("CreateUser", "CreateAccessKey", "ListAccessKeys"))

    def after(self, exchange, status, body: bytes) -> tuple[bytes, Verdict | None]:
        """Note new users and keys, hide new keys from ListAccessKeys, and maybe lose the answer: (body, verdict)."""
        operation = exchange.operation
        config = self.config
        now = time.monotonic()
        with self._lock:
            if status == 200 and body and self.wants_body(exchange):
                text = body.decode("utf-8", "replace")
                if operation.action == "CreateUser":
                    for name in _USER_NAME.findall(text)[:1]:
                        self._new_users[name] = now
                elif operation.action == "CreateAccessKey":
                    for key in _ACCESS_KEY_ID.findall(text)[:1]:
                        self._new_keys[key] = now
                else:
                    hidden = [m for m in _KEY_MEMBER.finditer(text) if self._is_new(self._new_keys, m.group(1), now)]
                    if hidden:
                        self._count("not_yet_consistent", operation)
                        for match in reversed(hidden):
                            text = text[:match.start()] + text[match.end():]
                        body = text.encode()
            action = operation.action if operation is not None else None
            if status == 200 and self._to_lose.get(action):
                self._to_lose[action] -= 1
                self._count("lost_response", operation)
                return body, Verdict("lost_response")
            selected = not config.services or operation is None or operation.service in config.services
            if selected and config.lost_response_rate and self._random.random() < config.lost_response_rate:
                self._count("lost_response", operation)
                return body, Verdict("lost_response")
        return body, None

    # -- the control endpoint -----------------------------------------------------------------------

    def control(self, method: str, target: str, body: bytes) -> tuple[int, dict]:
        """``GET /local-aws/faults``: settings and counters; ``POST`` a JSON object of settings; ``POST .../reset``."""
        path = urllib.parse.urlsplit(target).path.rstrip("/")
        try:
            if method == "POST" and path == CONTROL_PATH + "/reset":
                self.reset()
            elif method == "POST" and path == CONTROL_PATH:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("the body must be a JSON object of fault settings")
                self.configure(**changes)
            elif not (method == "GET" and path == CONTROL_PATH):
                return 404, {"error": f"{method} {path}: use GET or POST {CONTROL_PATH}, or POST {CONTROL_PATH}/reset"}
        except (ValueError, TypeError) as exc:
            return 400, {"error": str(exc)}
        return 200, self.state()


def _parameters(exchange) -> dict:
    raw_query = exchange.target.partition("?")[2]
    return form_parameters(exchange.headers, urllib.parse.parse_qs(raw_query, keep_blank_values=True), exchange.body)


def reset_connection(handler):
    """Close the client's connection with a TCP reset and no answer, as a dropped connection looks to an SDK."""
    handler.close_connection = True
    try:
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
    except OSError:
        pass
