# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""moto's server with IAM authorisation enforced, as the recording local AWS runs it.

    python -m tools.local_aws.moto_launcher -H 127.0.0.1 -p PORT     (moto_server's own arguments)

Changes to moto, about the mechanics of a local AWS, none about what a canary key may do:

1. The operator's access keys (``CANARYKEYS_LOCAL_AWS_OPERATOR_KEYS``, default ``testing``) act as the
   account's root user: moto skips authorisation for them, as AWS evaluates no IAM policy for root.
   Without this the operator would need an IAM user of its own, which every ``/moto-api/reset``
   deletes and which would show up in every ``list_users`` the product and its tests make.
   Unsigned requests (moto's own ``/moto-api``) pass too: moto cannot authorise them at all.
   An operator key followed by ``-<account id>`` (``testing-111111111111``) is the root user of that
   account (``operator_account``): moto gives every account id its own IAM, and the local AWS's
   recorder and in-process Lambdas act in each account as the operator does in the first.
2. moto verifies a SigV4 signature over its *parsed* parameters when a request has no body, so a
   correctly signed ``GET`` without a query string (Lambda ``ListFunctions``, ``GetFunction``, ...)
   fails with SignatureDoesNotMatch where AWS answers AccessDenied.  The payload AWS hashes is the raw
   body, which is what the signature is now checked against.
3. An inactive access key is refused as AWS refuses it (InvalidClientTokenId; InvalidAccessKeyId for
   S3); moto would authenticate it.
4. ``sts:GetCallerIdentity`` with an operator key answers what AWS answers the root user
   (``arn:aws:iam::<account>:root``), moto's ``arn:aws:sts::<account>:user/moto`` otherwise: the
   recorder logs the operator's calls as the root user's, and a detection stack that trusts "the
   principal that deployed it" must find the same ARN in both places.

Every other key is authenticated (signature checked against moto's copy of its secret) and
authorised by moto's IAM policy evaluation; ``sts:GetCallerIdentity`` is always allowed, as on AWS.
"""

from __future__ import annotations

import os
import sys

OPERATOR_KEYS_ENV = "CANARYKEYS_LOCAL_AWS_OPERATOR_KEYS"


def operator_keys() -> frozenset:
    return frozenset(filter(None, os.environ.get(OPERATOR_KEYS_ENV, "testing").split(",")))


def operator_account(access_key_id: str, keys: frozenset):
    """The account whose root ``access_key_id`` is: "" for a plain operator key (moto's default account),
    the account id of ``<operator key>-<12 digits>``, None for any other key."""
    if access_key_id in keys:
        return ""
    key, _sep, account = access_key_id.rpartition("-")
    return account if key in keys and len(account) == 12 and account.isdigit() else None


def patch_moto(keys: frozenset) -> None:
    from botocore.awsrequest import AWSRequest  # pylint: disable=import-outside-toplevel
    from moto.core import authorization  # pylint: disable=import-outside-toplevel
    from moto.core import exceptions as core_exceptions  # pylint: disable=import-outside-toplevel
    from moto.iam import access_control  # pylint: disable=import-outside-toplevel
    from moto.iam.models import iam_backends  # pylint: disable=import-outside-toplevel
    from moto.s3 import exceptions as s3_exceptions  # pylint: disable=import-outside-toplevel
    from moto.core.responses import ActionResult, BaseResponse  # pylint: disable=import-outside-toplevel
    from moto.sts.responses import TokenResponse  # pylint: disable=import-outside-toplevel

    from tools.local_aws.operations import parse_credential  # pylint: disable=import-outside-toplevel

    def _inactive(access_key_id: str) -> bool:
        for account in list(iam_backends.values()):
            for backend in list(account.values()):
                key = backend.access_keys.get(access_key_id)
                if key is not None:
                    return key.status == "Inactive"
        return False

    mixin = authorization.ActionAuthenticatorMixin
    request_base = access_control.IAMRequestBase
    for owner, name in ((mixin, "_authenticate_and_authorize_action"), (request_base, "_create_aws_request"),
                        (request_base, "_get_string_between"), (request_base, "_create_headers_for_aws_request")):
        if not callable(getattr(owner, name, None)):
            raise RuntimeError(f"this moto has no {owner.__name__}.{name}: tools/local_aws/moto_launcher.py needs updating")

    enforce = mixin._authenticate_and_authorize_action  # pylint: disable=protected-access

    def authenticate_and_authorize_action(self, iam_request_cls, resource="*"):
        headers = self.headers
        credential = parse_credential(headers, {})
        if credential is None or operator_account(credential.access_key_id, keys) is not None:
            return None
        if _inactive(credential.access_key_id):
            # AWS refuses an inactive key as if it did not exist; moto would let it through.
            if issubclass(iam_request_cls, access_control.S3IAMRequest):
                raise s3_exceptions.S3InvalidAccessKeyIdError()
            raise core_exceptions.InvalidClientTokenIdError()
        return enforce(self, iam_request_cls, resource)

    def create_aws_request(self):
        signed_headers = self._get_string_between("SignedHeaders=", ",", self._headers["Authorization"]).split(";")
        headers = self._create_headers_for_aws_request(signed_headers, self._headers)
        body = self._body
        if not body:
            # moto parses a form body away before this point, leaving its parameters in _data; with
            # neither body nor parameters, _data holds the request headers, which AWS never signs as payload.
            data = self._data or {}
            body = b"" if any(name.lower() == "authorization" for name in data) else data
        request = AWSRequest(method=self._method, url=self._path, data=body, headers=headers)
        request.context["timestamp"] = headers["X-Amz-Date"]
        return request

    current_account = BaseResponse.get_current_account

    def get_current_account(self):
        # An operator key of another account acts there (moto would fall back to its default account).
        credential = parse_credential(self.headers, {})
        account = operator_account(credential.access_key_id, keys) if credential is not None else None
        return account or current_account(self)

    caller_identity = TokenResponse.get_caller_identity

    def get_caller_identity(self):
        # moto's own key parsing only knows 20-character key ids: the operator's is read from the scope.
        credential = parse_credential(self.headers, {})
        if credential is not None and operator_account(credential.access_key_id, keys) is not None:
            account = self.current_account
            return ActionResult({"UserId": account, "Account": account, "Arn": f"arn:{self.partition}:iam::{account}:root"})
        return caller_identity(self)

    TokenResponse.get_caller_identity = get_caller_identity
    BaseResponse.get_current_account = get_current_account
    mixin._authenticate_and_authorize_action = authenticate_and_authorize_action  # pylint: disable=protected-access
    request_base._create_aws_request = create_aws_request  # pylint: disable=protected-access


def main(argv=None) -> int:
    # moto reads the threshold when its settings module is imported: set it first.
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    patch_moto(operator_keys())
    from moto.server import main as moto_main  # pylint: disable=import-outside-toplevel

    moto_main(argv if argv is not None else sys.argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
