# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The embedded local AWS: moto's server behind a small counting (and optionally recording) proxy.

    with LocalAWS() as aws:
        boto3.client("iam", endpoint_url=aws.endpoint_url, ...)
        aws.count("iam", writes_only=True)

Clients talk to the proxy (``endpoint_url``); the proxy forwards every request unchanged to moto
(``moto_url``) and notes which service, operation and access key each one used.  Counting at the
wire is what lets tests prove "a re-run makes no IAM write" without trusting the code under test.

With ``record=True`` the proxy also feeds the CloudTrail recorder (``tools/local_aws/recorder.py``):
moto enforces IAM authorisation, canary keys are denied as on AWS, and every call signed by an IAM
user's key becomes a CloudTrail record delivered through the trail's log group subscription to the
alert handler; ``fire_schedules()`` runs the Lambda targets of scheduled EventBridge rules, which moto
stores but never fires.  See docs/local_aws.md.

With ``faults=`` (or ``$LOCAL_AWS_FAULTS``, the ``--fault-*`` flags, ``POST /local-aws/faults``) the proxy
injects AWS's throttling, eventual consistency, transient errors, dropped connections and latency
(``tools/local_aws/faults.py``).

CLI: ``python -m tools.local_aws.server [--port N] [--record] [--fault-...]`` prints the endpoint URL on one line
and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import http.server
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

from tools.local_aws import faults as faults_mode
from tools.local_aws.iam_conflicts import DeleteConflicts
from tools.local_aws.operations import identify, is_read_only
from tools.serve import serve_until_signalled

DEFAULT_REGION = "us-east-1"
# moto's default account; the operator's own (non-IAM) credentials act as its root.
ACCOUNT_ID = "123456789012"
OPERATOR_ACCESS_KEY_ID = "testing"
_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
                         "expect", "content-length"))
_CHUNK = 64 * 1024
# Error bodies are small; the recorder needs them for errorCode/errorMessage.
_MAX_ERROR_BODY = 64 * 1024


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Exchange:
    """One request through the proxy, as the call log and the recorder see it."""

    method: str
    target: str
    headers: dict
    body: bytes
    client_ip: str
    started: float
    status: int = 0
    response_headers: dict = field(default_factory=dict)
    error_body: bytes = b""
    operation: object = None
    # (errorCode, errorMessage) when the recorder rewrote a denial into AWS's wording.
    denial: tuple | None = None
    request_id: str | None = None
    # The kind of fault the fault mode injected (tools/local_aws/faults.py), None for a plain call.
    fault: str | None = None


class _ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # Many SDK clients open connections at once (Ansible forks, thread pools).
    request_queue_size = 128

    def __init__(self, address, upstream_port: int, on_exchange, faults):
        super().__init__(address, _ProxyHandler)
        self.upstream_port = upstream_port
        self.on_exchange = on_exchange
        self.faults = faults
        self.conflicts = DeleteConflicts(upstream_port)
        self.local = threading.local()


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Buffered writes plus TCP_NODELAY: headers and body leave in one segment, so the client's
    # delayed ACK never meets Nagle's algorithm (a 40 ms stall on every call otherwise).
    wbufsize = _CHUNK
    server: _ProxyServer

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        # moto's own log has every request; a second copy on stderr only adds noise.
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _upstream(self, fresh=False) -> http.client.HTTPConnection:
        conn = getattr(self.server.local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=300)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.server.local.conn = conn
        return conn

    def _send_upstream(self, body: bytes) -> http.client.HTTPResponse:
        for attempt in (0, 1):
            conn = self._upstream(fresh=attempt > 0)
            try:
                # The Host header goes through as the client signed it: moto checks SigV4 signatures.
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP_BY_HOP:
                        conn.putheader(name, value)
                if body or self.command in ("POST", "PUT", "PATCH") or "Content-Length" in self.headers:
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
                return conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive upstream connection that moto closed meanwhile: retry once on a new one.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _answer_fault(self, exchange, verdict):
        """Log an injected fault and answer it as AWS would (an error in the service's format, or a reset)."""
        exchange.fault, exchange.status = verdict.kind, verdict.status
        self.server.on_exchange(exchange)
        if verdict.drop:
            faults_mode.reset_connection(self)
            return
        self.send_response_only(verdict.status)
        for name, value in [*verdict.headers, ("Content-Length", str(len(verdict.body)))]:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(verdict.body)
        self.wfile.flush()

    def _forward(self):
        body = self._read_body()
        faults = self.server.faults
        if self.path.startswith(faults_mode.CONTROL_PATH):
            status, state = faults.control(self.command, self.path, body)
            payload = json.dumps(state).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        exchange = Exchange(self.command, self.path, dict(self.headers.items()), body, self.client_address[0], time.time())
        verdict = faults.before(exchange) if faults.active else None
        if verdict is None:
            verdict = self.server.conflicts.verdict(exchange)
        if verdict is not None:
            self._answer_fault(exchange, verdict)
            return
        try:
            response = self._send_upstream(body)
        except OSError as exc:
            self.send_error(502, f"local AWS (moto) unreachable: {exc}")
            exchange.status = 502
            self.server.on_exchange(exchange)
            return
        exchange.status = response.status
        headers = [(name, value) for name, value in response.getheaders() if name.lower() not in _HOP_BY_HOP]
        exchange.response_headers = dict(headers)
        no_body = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
        if not no_body and response.status >= 400 and (response.length or 0) <= _MAX_ERROR_BODY:
            exchange.error_body = response.read()
        lost = None
        if faults.active:
            if not exchange.error_body and response.status == 200 and faults.wants_body(exchange):
                exchange.error_body = response.read()
            exchange.error_body, lost = faults.after(exchange, response.status, exchange.error_body)
            if lost is not None:
                # moto did the call; its answer never reaches the client.
                response.read()
                exchange.fault = lost.kind
                self.server.on_exchange(exchange)
                faults_mode.reset_connection(self)
                return
        # Logged before the client gets its last byte: a test that counts calls right after one
        # returns must see it.
        replacement = self.server.on_exchange(exchange)
        if replacement is not None:
            # A denial rewritten as AWS words and shapes it (record mode): same status, AWS's body.
            replaced_headers, exchange.error_body = replacement
            headers = [(name, value) for name, value in headers if name.lower() not in ("content-type", "x-amzn-errortype")]
            headers += replaced_headers
        self.send_response_only(response.status, response.reason)
        for name, value in headers:
            self.send_header(name, value)
        if no_body:
            length = response.getheader("Content-Length")
            if length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            response.read()
        elif exchange.error_body or response.isclosed():
            self.send_header("Content-Length", str(len(exchange.error_body)))
            self.end_headers()
            self.wfile.write(exchange.error_body)
        elif response.length is not None:
            self.send_header("Content-Length", str(response.length))
            self.end_headers()
            while chunk := response.read(_CHUNK):
                self.wfile.write(chunk)
                self.wfile.flush()
        else:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while chunk := response.read1(_CHUNK):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        if response.will_close:
            self._upstream(fresh=True)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _forward


_REPO = pathlib.Path(__file__).resolve().parents[2]


def _moto_command(port: int, enforce_auth: bool) -> tuple[list[str], dict]:
    """The command and environment of moto: plain moto_server, or the launcher that enforces IAM auth."""
    env = dict(os.environ)
    address = ["-H", "127.0.0.1", "-p", str(port)]
    if enforce_auth:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(_REPO), env.get("PYTHONPATH"))))
        return [sys.executable, "-m", "tools.local_aws.moto_launcher", *address], env
    # The moto of this interpreter's venv, never one that happens to be first on PATH.
    script = pathlib.Path(sys.executable).parent / "moto_server"
    return ([str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]) + address, env


def _child_setup(die_with_parent: bool):
    def setup():
        os.setsid()
        if die_with_parent:
            # PR_SET_PDEATHSIG: a moto left behind by a killed test run would hold its port and memory.
            # Only from the main thread: the signal follows the thread that forked, not the process.
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    return setup


class LocalAWS:
    """moto_server on a free port plus the counting proxy clients should use.

    record       enforce IAM authorisation in moto and turn IAM users' calls into CloudTrail records
                 delivered through the trail's log group subscription filters (docs/local_aws.md)
    handler      callable(event, context) the delivery invokes instead of the subscription's Lambda
    lambda_dir   where the subscription's Lambda code is imported from (default: this collection's lambda/)
    delivery_interval  seconds between deliveries of the background loop (``recorder.flush()`` any time)
    """

    def __init__(self, port: int = 0, record: bool = False, handler=None, delivery_interval: float = 1.0,
                 start_timeout: float = 30.0, lambda_dir=None, faults=None):  # pylint: disable=too-many-arguments
        self.requested_port = port
        self.record = record
        self.handler = handler
        self.delivery_interval = delivery_interval
        self.lambda_dir = lambda_dir
        self.start_timeout = start_timeout
        self.endpoint_url = None
        self.moto_url = None
        self._proc = None
        self._proxy = None
        self._proxy_thread = None
        self._workdir = None
        self._calls = []
        self._calls_lock = threading.Lock()
        self.recorder = None
        self.account_id = ACCOUNT_ID
        # Fault mode: a FaultConfig, a dict or "name=value,..." (default: $LOCAL_AWS_FAULTS, else none).
        self.faults = faults_mode.Faults(faults_mode.FaultConfig.parse(faults) if faults is not None
                                         else faults_mode.FaultConfig.from_env())

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self._workdir = tempfile.mkdtemp(prefix="canarykeys-local-aws-")
        try:
            self._start_moto()
            self._proxy = _ProxyServer(("127.0.0.1", self.requested_port), self._moto_port, self._on_exchange, self.faults)
            self._proxy_thread = threading.Thread(target=self._proxy.serve_forever, kwargs={"poll_interval": 0.2},
                                                  name="local-aws-proxy", daemon=True)
            self._proxy_thread.start()
            self.endpoint_url = f"http://127.0.0.1:{self._proxy.server_address[1]}"
            if self.record:
                from tools.local_aws.recorder import Recorder  # pylint: disable=import-outside-toplevel

                options = {"lambda_dir": self.lambda_dir} if self.lambda_dir else {}
                self.recorder = Recorder(self, handler=self.handler, interval=self.delivery_interval, **options)
                self.recorder.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_moto(self):
        log_path = pathlib.Path(self._workdir) / "moto.log"
        last_error = None
        for _attempt in range(3):
            self._moto_port = free_port()
            self.moto_url = f"http://127.0.0.1:{self._moto_port}"
            with open(log_path, "ab") as log:
                # Another process may take the port between free_port() and moto's bind: retry.
                argv, env = _moto_command(self._moto_port, self.record)
                setup = _child_setup(threading.current_thread() is threading.main_thread())
                self._proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                              preexec_fn=setup)  # pylint: disable=subprocess-popen-preexec-fn
            deadline = time.monotonic() + self.start_timeout
            banner = f"Running on http://127.0.0.1:{self._moto_port}"
            while self._proc.poll() is None and time.monotonic() < deadline:
                try:
                    # Werkzeug prints the banner once it has bound the port: until then an answer on the
                    # port could come from another engineer's server that took it first.
                    if banner not in log_path.read_text(errors="replace"):
                        raise ConnectionRefusedError("moto has not bound its port yet")
                    # A side-effect-free moto endpoint: an HTTP answer means moto is serving.
                    self._moto_request("GET", "/moto-api/reset-auth", timeout=2)
                    return
                except (OSError, http.client.HTTPException) as exc:
                    last_error = exc
                    time.sleep(0.05)
            self._kill_moto()
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        raise RuntimeError(f"moto_server did not start ({last_error}); its log ends with:\n{tail}")

    def stop(self):
        if self.recorder is not None:
            self.recorder.stop()
            self.recorder = None
        if self._proxy is not None:
            self._proxy.shutdown()
            self._proxy.server_close()
            self._proxy = None
        self._kill_moto()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _kill_moto(self):
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        # moto runs in its own session: the whole process group goes, reloader children included.
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    # -- moto, directly ----------------------------------------------------------------------------

    def _moto_request(self, method, path, body=b"", timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self._moto_port, timeout=timeout)
        try:
            conn.request(method, path, body=body)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def reset(self):
        """Forget every AWS resource and every recorded call."""
        status, body = self._moto_request("POST", "/moto-api/reset")
        if status != 200:
            raise RuntimeError(f"moto reset failed: {status} {body[:200]!r}")
        with self._calls_lock:
            self._calls.clear()
        self.faults.reset()
        if self.recorder is not None:
            self.recorder.reset()

    def operator_key(self, account_id: str | None = None) -> str:
        """The operator's access key id in ``account_id`` (default: this local AWS's own account).

        Not a secret: with ``record`` moto treats it as that account's root user (moto_launcher.py); moto gives
        every account id its own IAM, and ``<key>-<account id>`` acts in that account.
        """
        if account_id in (None, "", self.account_id):
            return OPERATOR_ACCESS_KEY_ID
        return f"{OPERATOR_ACCESS_KEY_ID}-{account_id}"

    def operator_account(self, access_key_id: str) -> str | None:
        """The account whose root ``access_key_id`` is (an operator key of ``operator_key``), else None."""
        from tools.local_aws.moto_launcher import operator_account  # pylint: disable=import-outside-toplevel

        account = operator_account(access_key_id or "", frozenset((OPERATOR_ACCESS_KEY_ID,)))
        return None if account is None else account or self.account_id

    def operator_env(self, account_id: str | None = None) -> dict:
        """AWS_* variables a subprocess needs to act as the operator of this local AWS (in ``account_id``)."""
        access_key_id, secret = self.operator_key(account_id), "testing"
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": access_key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": DEFAULT_REGION,
            "AWS_REGION": DEFAULT_REGION,
        }

    def client(self, service, region=DEFAULT_REGION, direct=False, account_id=None):
        """A boto3 client as the operator (the root user of ``account_id``, default this local AWS's account):
        through the proxy, or to moto itself (``direct``, not counted)."""
        import boto3  # pylint: disable=import-outside-toplevel

        env = self.operator_env(account_id)
        return boto3.client(service, endpoint_url=self.moto_url if direct else self.endpoint_url, region_name=region,
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])

    def fire_schedules(self, regions=None, accounts=None) -> list[dict]:
        """Run every enabled scheduled rule's Lambda targets once, as EventBridge would (``record=True`` only),
        in ``accounts`` (default: every account seen) and ``regions`` (default: all).

        See ``Recorder.fire_schedules``; the entries are also kept in ``recorder.fired()``.
        """
        if self.recorder is None:
            raise RuntimeError("firing schedules runs the targets' Lambda code, which needs LocalAWS(record=True)")
        return self.recorder.fire_schedules(regions, accounts)

    # -- the call log ------------------------------------------------------------------------------

    def _on_exchange(self, exchange: Exchange):
        """Log the call; in record mode, return AWS's rendering of a denial ((headers, body)) or None."""
        operation = identify(exchange.method, exchange.target, exchange.headers, exchange.body)
        exchange.operation = operation
        call = {
            "service": operation.service,
            "action": operation.action,
            "access_key_id": operation.access_key_id,
            "status": exchange.status,
            "method": exchange.method,
            "path": urllib.parse.urlsplit(exchange.target).path,
            "region": operation.region,
            "time": exchange.started,
            "fault": exchange.fault,
        }
        with self._calls_lock:
            self._calls.append(call)
        if exchange.fault and exchange.fault != "lost_response":
            # moto never saw the call: AWS has nothing to record either.
            return None
        replacement = None
        if self.recorder is not None:
            if exchange.status == 403:
                replacement = self.recorder.denied_response(exchange)
            self.recorder.submit(exchange)
        return replacement

    def calls(self) -> list[dict]:
        with self._calls_lock:
            return [dict(call) for call in self._calls]

    def count(self, service=None, action=None, writes_only=False) -> int:
        return sum(1 for call in self.calls()
                   if (service is None or call["service"] == service)
                   and (action is None or call["action"] == action)
                   and not (writes_only and is_read_only(call["action"])))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run the local AWS (moto + counting proxy) until SIGTERM/SIGINT.")
    parser.add_argument("--port", type=int, default=0, help="proxy port (default: a free one)")
    parser.add_argument("--record", action="store_true", help="enforce IAM auth and record CloudTrail events")
    faults_mode.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        faults = faults_mode.config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    return serve_until_signalled(LocalAWS(port=args.port, record=args.record, faults=faults), lambda aws: aws.endpoint_url)


if __name__ == "__main__":
    sys.exit(main())
