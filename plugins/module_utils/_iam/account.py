# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connection to one canary account: the ``account`` option of the IAM modules (doc fragment canarykeys.aws.account).

IAM allows 5,000 users an account, so a large estate spreads its canaries over several accounts.  The controller
keeps one identity (amazon.aws's connection options, set once through module_defaults) and reaches each canary
account from it, by sts:AssumeRole into a role of that account or through another AWS profile.

``CanaryAccountModule`` is AnsibleAWSModule whose ``client()`` reaches the account.  Every client of the module is
made there (canarykeys' ``iam_client``, amazon.aws's ``get_aws_account_info``, ...), so no call can slip into the
controller's own account by mistake.  The role is assumed once per module run, inside the module: the temporary
credentials live in this object only, never in ``params``, a result, a warning or a log, and never travel through
Ansible variables.  They last AssumeRole's default hour; a module run longer than that would fail with ExpiredToken.
"""

from __future__ import annotations

import copy
import re

try:
    import boto3
    import botocore.exceptions
except ImportError:
    pass  # AnsibleAWSModule reports the missing dependency

from ansible_collections.amazon.aws.plugins.module_utils.botocore import boto3_conn, get_aws_connection_info
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry, RetryingBotoClientWrapper

from ansible_collections.canarykeys.aws.plugins.module_utils._lambda_shared.iam_reads import error_code

DEFAULT_SESSION_NAME = "canarykeys"

# The ``account`` option; its documentation is plugins/doc_fragments/account.py.
ACCOUNT_SPEC = dict(
    name=dict(type="str", default=""),
    role_arn=dict(type="str"),
    external_id=dict(type="str", no_log=False),
    session_name=dict(type="str", default=DEFAULT_SESSION_NAME),
    profile=dict(type="str"),
)
ACCOUNT_OPTION = dict(type="dict", options=ACCOUNT_SPEC)

# AWS's own constraints, checked before any call so that a typo fails in one line and changes nothing.
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
ARN_ACCOUNT = re.compile(r"^arn:[^:]+:[^:]+:[^:]*:(\d{12}):")


def entry_label(entry: dict) -> str:
    return f"canary account {entry['name']}" if entry.get("name") else "the canary account"


def entry_problem(entry: dict) -> str:
    """The one line that refuses a bad ``account`` entry, or "" when it is usable."""
    label = entry_label(entry)
    if entry.get("role_arn") and entry.get("profile"):
        return f"{label}: set role_arn or profile, not both"
    if entry.get("role_arn") and not ROLE_ARN.match(entry["role_arn"]):
        return f"{label}: role_arn {entry['role_arn']} is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)"
    if entry.get("role_arn") and not SESSION_NAME.match(entry.get("session_name") or ""):
        return f"{label}: session_name must be 2 to 64 letters, digits or the characters +=,.@_-"
    if entry.get("external_id") and not entry.get("role_arn"):
        return f"{label}: external_id is used with role_arn only"
    if entry.get("external_id") and not EXTERNAL_ID.match(entry["external_id"]):
        return f"{label}: external_id must be 2 to 1224 letters, digits or the characters +=,.@:/_-"
    return ""


def account_problem(entry) -> str:
    """``entry_problem``, and a profile that no AWS config or credentials file has."""
    entry = dict(entry or {})
    problem = entry_problem(entry)
    if not problem and entry.get("profile") and entry["profile"] not in boto3.session.Session().available_profiles:
        problem = f"{entry_label(entry)}: AWS profile {entry['profile']} is not in the AWS config or credentials files"
    return problem


def arn_account_id(arn) -> str:
    """The account id of an ARN, "" for anything else."""
    match = ARN_ACCOUNT.match(arn or "")
    return match.group(1) if match else ""


class CanaryAccountModule(AnsibleAWSModule):
    """AnsibleAWSModule with the ``account`` option: every client it makes reaches that canary account."""

    def __init__(self, **kwargs):
        kwargs["argument_spec"] = dict(kwargs.get("argument_spec") or {}, account=copy.deepcopy(ACCOUNT_OPTION))
        super().__init__(**kwargs)
        self.use_account(self.params.get("account"))

    def use_account(self, entry) -> None:
        """Work in the account of ``entry`` from now on (canary_key_batch's placements of several accounts, in turn)."""
        account = dict(entry or {})
        account["name"] = account.get("name") or ""
        account["session_name"] = account.get("session_name") or DEFAULT_SESSION_NAME
        problem = account_problem(account)
        if problem:
            self.fail_json(msg=problem)
        # What was learnt of an account (its credentials, an ARN of it: its id and partition) is kept for when the module comes back to it: one
        # AssumeRole per account and run, however often the module switches.
        states = self.__dict__.setdefault("_states", {})
        if self.__dict__.get("account") is not None:
            states[repr(sorted(self.account.items()))] = (self._reached, self._known_arn)
        self.account = account
        # _reached: the connection settings that reach the account, made on the first client.
        self._reached, self._known_arn = states.get(repr(sorted(account.items())), (None, ""))

    def _reach(self) -> dict:
        """boto3 settings that replace the module's own credentials: the entry's profile, or the assumed role's keys."""
        if self._reached is None:
            if self.account.get("profile"):
                self._reached = dict(aws_access_key_id=None, aws_secret_access_key=None, aws_session_token=None,
                                     profile_name=self.account["profile"])
            else:
                self._reached = self._assume_role()
        return self._reached

    def _assume_role(self) -> dict:
        role_arn = self.account["role_arn"]
        # The module's own connection (amazon.aws's options) makes the one AssumeRole call.
        sts = super().client("sts", retry_decorator=AWSRetry.jittered_backoff())
        extra = {"ExternalId": self.account["external_id"]} if self.account.get("external_id") else {}
        try:
            answer = sts.assume_role(aws_retry=True, RoleArn=role_arn, RoleSessionName=self.account["session_name"], **extra)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            if isinstance(e, botocore.exceptions.ClientError):
                code, detail = error_code(e), e.response.get("Error", {}).get("Message", "")
            else:
                code, detail = type(e).__name__, str(e)
            detail = " ".join(detail.split())  # one line
            self.fail_json(msg=f"Failed to assume role {role_arn} for {entry_label(self.account)}: {code} ({detail}); "
                               "nothing was changed", error_code=code)
        self._known_arn = answer["AssumedRoleUser"]["Arn"]
        credentials = answer["Credentials"]
        return dict(aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                    aws_session_token=credentials["SessionToken"], profile_name=None)

    def _connection(self, conn_type, service, extra_params):
        # The module's region, endpoint, TLS and botocore config, with the account's credentials instead of its own.
        region, endpoint_url, settings = get_aws_connection_info(self)
        settings.update(self._reach())
        if settings.get("profile_name") and not self.params.get("region"):
            region = boto3.session.Session(profile_name=settings["profile_name"]).region_name or region
        kw_args = dict(region=region, endpoint=endpoint_url, **settings)
        kw_args.update(extra_params)
        return boto3_conn(self, conn_type=conn_type, resource=service, **kw_args)

    def client(self, service: str, retry_decorator=None, **extra_params):
        if not (self.account.get("role_arn") or self.account.get("profile")):
            return super().client(service, retry_decorator=retry_decorator, **extra_params)
        conn = self._connection("client", service, extra_params)
        return conn if retry_decorator is None else RetryingBotoClientWrapper(conn, retry_decorator)

    def resource(self, service: str, **extra_params):
        if not (self.account.get("role_arn") or self.account.get("profile")):
            return super().resource(service, **extra_params)
        return self._connection("resource", service, extra_params)

    def account_id(self, arns=()) -> str:
        """The account's id: from the assumed role, else an ARN the module already holds, else one sts:GetCallerIdentity."""
        if not self._known_arn:
            self._known_arn = next((arn for arn in arns if arn_account_id(arn)), "")
        if not self._known_arn:
            sts = self.client("sts", retry_decorator=AWSRetry.jittered_backoff())
            try:
                self._known_arn = sts.get_caller_identity(aws_retry=True)["Arn"]
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
                self.fail_json_aws(e, msg=f"Failed to read the account id of {entry_label(self.account)} (sts:GetCallerIdentity)")
        return arn_account_id(self._known_arn)

    def partition(self, arns=()) -> str:
        """The account's partition (aws, aws-cn, aws-us-gov), learnt with its id."""
        self.account_id(arns)
        return self._known_arn.split(":")[1]

    def description(self) -> str:
        """The account for a message: its id, and its entry's name when it has one."""
        name = self.account["name"]
        return f"{self.account_id()} ({name})" if name else self.account_id()

    def label(self, items, arn_field="user_arn") -> None:
        """Add ``account`` (the entry's name) and ``account_id`` to each result item, in place."""
        items = list(items)
        if not items:
            return
        account_id = self.account_id(item.get(arn_field) for item in items)
        for item in items:
            item["account"] = self.account["name"]
            item["account_id"] = arn_account_id(item.get(arn_field)) or account_id
