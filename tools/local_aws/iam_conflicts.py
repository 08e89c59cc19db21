# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""IAM's ``DeleteConflict``, which moto does not model: the local AWS answers it always, faults or not.

IAM refuses to delete a user that still holds access keys or policies (409 ``DeleteConflict``, "Cannot
delete entity, must delete access keys first."); moto deletes the user and its keys with it.  Code
that retires a user after a ListAccessKeys that missed a key (eventual consistency: a key minted
seconds ago) then looks correct on moto and leaves a live key behind on IAM.  The proxy asks moto
itself (directly, not counted) what the user still holds before it lets a ``DeleteUser`` through.
"""

from __future__ import annotations

import threading
import urllib.parse

from tools.local_aws.faults import Verdict, error_verdict
from tools.local_aws.operations import form_parameters, identify

# What IAM names first when a user holds several kinds of things.
_HELD = (
    ("list_access_keys", "AccessKeyMetadata", "access keys"),
    ("list_user_policies", "PolicyNames", "policies"),
    ("list_attached_user_policies", "AttachedPolicies", "policies"),
)


class DeleteConflicts:
    """Decides, for a request, whether IAM would answer it ``DeleteConflict`` (thread-safe)."""

    def __init__(self, moto_port: int, access_key_id: str = "testing", secret: str = "testing"):
        self._moto_url = f"http://127.0.0.1:{moto_port}"
        self._credentials = (access_key_id, secret)
        self._lock = threading.Lock()
        self._client = None

    def _iam(self):
        with self._lock:
            if self._client is None:
                import boto3  # pylint: disable=import-outside-toplevel

                self._client = boto3.session.Session().client(
                    "iam", endpoint_url=self._moto_url, region_name="us-east-1",
                    aws_access_key_id=self._credentials[0], aws_secret_access_key=self._credentials[1])
            return self._client

    def verdict(self, exchange) -> Verdict | None:
        """IAM's 409 for a DeleteUser of a user that still holds keys or policies; None: forward the request."""
        if b"DeleteUser" not in exchange.body and "DeleteUser" not in exchange.target:
            return None  # cheap: almost no request is one
        operation = exchange.operation or identify(exchange.method, exchange.target, exchange.headers, exchange.body)
        if operation.service != "iam" or operation.action != "DeleteUser":
            return None
        query = urllib.parse.parse_qs(exchange.target.partition("?")[2], keep_blank_values=True)
        user_name = form_parameters(exchange.headers, query, exchange.body).get("UserName")
        if not user_name:
            return None
        iam = self._iam()
        for method, field, what in _HELD:
            try:
                held = getattr(iam, method)(UserName=user_name)[field]
            except Exception:  # pylint: disable=broad-except
                return None  # no such user (or moto cannot say): moto answers the DeleteUser itself
            if held:
                return error_verdict(operation, 409, "DeleteConflict", f"Cannot delete entity, must delete {what} first.", None)
        return None
