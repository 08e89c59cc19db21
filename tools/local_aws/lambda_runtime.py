# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local AWS's Lambda runtime: a deployed function's code, run in-process as Lambda would run it.

moto keeps a function's zip but runs no code.  The recorder (recorder.py) hands each invocation here:
the function's configuration comes from moto (handler, environment, memory, timeout), its code from this
collection's sources laid out flat as the detection role packages them (``lambda/*.py`` plus
``plugins/module_utils/_lambda_shared/*.py``; the handler imports its siblings by plain name).

Each function (by ARN) is its own cold start with its own copies of the package's modules, as each
function is its own process on AWS: a module-level cache (the IAM client of alert_handler, the SNS
clients of alert_channels) belongs to one function, so the function of one account never reuses a
client made with another account's credentials.

The function runs as the root user of its own account (the account in its ARN): the operator's key
for that account (``LocalAWS.operator_env(account)``), so that its IAM reads see that account's users,
as its execution role's would on AWS.  moto does not evaluate the execution role's least-privilege
policy here; the role's statements are checked by the detection role's tests, not by running them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import shutil
import sys
import tempfile
import threading
import time
import uuid

_REPO = pathlib.Path(__file__).resolve().parents[2]
LAMBDA_DIR = _REPO / "lambda"
# The detection role packages lambda/*.py plus the files the collection shares with the Lambda (the mapping
# schema, the IAM reads), flat at the zip root.
SHARED_LAMBDA_SOURCES = tuple(sorted((_REPO / "plugins" / "module_utils" / "_lambda_shared").glob("[!_]*.py")))
# One function at a time changes os.environ (the function reads its settings and credentials there).
_ENVIRON_LOCK = threading.Lock()


class LambdaContext:  # pylint: disable=too-few-public-methods,too-many-instance-attributes
    """What the Lambda runtime passes as ``context``."""

    def __init__(self, function_arn: str, memory: int = 128, timeout: int = 30):
        self.invoked_function_arn = function_arn
        self.function_name = function_arn.split(":")[6] if function_arn.count(":") >= 6 else function_arn
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = str(memory)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def function_account(function_arn: str) -> str:
    """The account of a function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME)."""
    return function_arn.split(":")[4]


class LambdaRuntime:
    """Runs deployed functions' handlers in-process; ``client(service, region, account)`` reads moto as the operator."""

    def __init__(self, aws, client, lambda_dir: pathlib.Path = LAMBDA_DIR):
        self._aws = aws
        self._client = client
        self._lambda_dir = pathlib.Path(lambda_dir)
        self._staging = None
        # (function ARN, handler module) -> the module, and function ARN -> the package's modules it imported.
        self._modules = {}
        self._siblings = {}

    def close(self):
        if self._staging is not None:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(self._staging))
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def invoke(self, function_arn: str, payload: dict):
        """Run the function once with ``payload``; returns what its handler returned (its exceptions propagate)."""
        region, account = function_arn.split(":")[3], function_account(function_arn)
        config = self._client("lambda", region, account).get_function_configuration(FunctionName=function_arn)
        function = self._handler(config["FunctionArn"], config["Handler"])
        environment = dict((config.get("Environment") or {}).get("Variables") or {})
        # The runtime's own variables win, as on AWS (they are reserved); the function's role is the operator of
        # its account here.
        environment.update(self._aws.operator_env(account))
        environment.update({"AWS_REGION": region, "AWS_DEFAULT_REGION": region,
                            "AWS_LAMBDA_FUNCTION_NAME": config["FunctionName"],
                            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.get("MemorySize", 128))})
        context = LambdaContext(config["FunctionArn"], config.get("MemorySize", 128), config.get("Timeout", 3))
        import boto3  # pylint: disable=import-outside-toplevel

        with _ENVIRON_LOCK:
            saved, session = dict(os.environ), boto3.DEFAULT_SESSION
            os.environ.clear()
            os.environ.update({name: value for name, value in saved.items() if not name.startswith(("AWS_", "CANARY_"))})
            os.environ.update(environment)
            # boto3's default session keeps the credentials it first resolved: a function creating its clients
            # must find its own account's in a session of its own, as in its own process on AWS.
            boto3.DEFAULT_SESSION = None
            try:
                return function(payload, context)
            finally:
                boto3.DEFAULT_SESSION = session
                os.environ.clear()
                os.environ.update(saved)

    def _handler(self, function_arn: str, handler: str):
        """The function's handler, imported from a flat copy of the package the detection role deploys.

        moto keeps a function's zip but cannot hand it back, so the code run is this collection's
        sources, laid out as in the package (the handler imports its siblings by plain name).
        """
        module_name, _sep, function_name = handler.rpartition(".")
        key = (function_arn, module_name)
        if key not in self._modules:
            if self._staging is None:
                self._staging = pathlib.Path(tempfile.mkdtemp(prefix="canarykeys-lambda-"))
                for source in [*sorted(self._lambda_dir.glob("*.py")), *SHARED_LAMBDA_SOURCES]:
                    if source.exists():
                        shutil.copy2(source, self._staging / source.name)
                sys.path.insert(0, str(self._staging))
            path = self._staging / (module_name.replace(".", "/") + ".py")
            if not path.exists():
                raise FileNotFoundError(f"the function's handler {handler} is not in {self._lambda_dir}")
            spec = importlib.util.spec_from_file_location(f"_local_lambda_{module_name.replace('.', '_')}", path)
            module = importlib.util.module_from_spec(spec)
            self._exec_cold(function_arn, spec, module)
            self._modules[key] = module
        return getattr(self._modules[key], function_name)

    def _exec_cold(self, function_arn: str, spec, module):
        """Run the handler's module with this function's own copies of the siblings it imports by plain name.

        Through sys.modules every function (and every LocalAWS) of a process would share them, and a
        module-level cache (the SNS client of alert_channels, the IAM client of alert_handler) would keep the
        credentials of another account or the endpoint of a LocalAWS already stopped: each function is a cold
        start of its own, and sys.modules is left as it was.
        """
        siblings = self._siblings.setdefault(function_arn, {})
        names = {source.stem for source in self._staging.glob("*.py")}
        outside = {name: sys.modules.pop(name) for name in names if name in sys.modules}
        sys.modules.update(siblings)
        try:
            spec.loader.exec_module(module)
        finally:
            siblings.update({name: sys.modules.pop(name) for name in names if name in sys.modules})
            sys.modules.update(outside)
