# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where an alert goes: webhooks (generic JSON, Slack, Teams), SNS, or the function's log.

Every rendering is built from the payload of ``alert_payload.build_alert`` and nothing else, so
both detectors share the channels.  Delivery retries a failing channel with backoff; the caller
learns which channels took each alert and decides what a total failure means (the CloudTrail
detector raises, so Lambda retries the invocation and finally keeps it in the dead-letter queue).

Standard library + boto3 only.  Never logs the webhook URL (Slack and Teams URLs embed their
credential) nor the signing secret.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request

import alert_payload

LOGGER = logging.getLogger("canarykeys.alert")

FORMATS = ("generic", "slack", "teams")
SIGNATURE_HEADER = "X-Canary-Signature"
USER_AGENT = "canarykeys-alert/1"
# SNS refuses a subject of 100 characters or more, with a line break, or outside ASCII.
SNS_SUBJECT_MAX = 99
# Lines of calls a chat message shows; the full list is in the JSON (generic webhook, SNS, log).
CHAT_EVENT_LINES = 10
# A retry is not started when the invocation would run out of time during it.
DEADLINE_MARGIN_SECONDS = 2.0

# Tests replace this to observe the backoff without waiting.
_sleep = time.sleep


class DeliveryError(Exception):
    """A channel did not take the alert; another attempt may succeed."""


class PermanentDeliveryError(DeliveryError):
    """A channel refused the alert in a way that retrying cannot fix (HTTP 400, 403, 404...)."""


# ---------------------------------------------------------------- settings


def _number(environ, name, default, cast):
    raw = environ.get(name, "")
    if raw == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        LOGGER.error("%s=%r is not a number; using %s", name, raw, default)
        return default
    return max(value, 0)


class ChannelSettings:
    """The channel configuration (environment variables of docs/alerts.md)."""

    def __init__(self, webhook_url="", webhook_format="generic", webhook_secret="", sns_topic_arn="",
                 attempts=3, retry_delay=0.5, webhook_timeout=5.0):
        self.webhook_url = webhook_url
        self.webhook_format = webhook_format
        self.webhook_secret = webhook_secret
        self.sns_topic_arn = sns_topic_arn
        self.attempts = max(1, int(attempts))
        self.retry_delay = retry_delay
        self.webhook_timeout = webhook_timeout

    @classmethod
    def from_environ(cls, environ=None) -> "ChannelSettings":
        environ = os.environ if environ is None else environ
        webhook_format = (environ.get("CANARY_WEBHOOK_FORMAT") or "generic").strip().lower()
        if webhook_format not in FORMATS:
            # A typo must not silence the alert: the generic JSON still reaches a receiver that logs it.
            LOGGER.error("CANARY_WEBHOOK_FORMAT=%r is not one of %s; sending generic JSON", webhook_format, ", ".join(FORMATS))
            webhook_format = "generic"
        return cls(
            webhook_url=(environ.get("CANARY_WEBHOOK_URL") or "").strip(),
            webhook_format=webhook_format,
            webhook_secret=environ.get("CANARY_WEBHOOK_SECRET") or "",
            sns_topic_arn=(environ.get("CANARY_SNS_TOPIC_ARN") or "").strip(),
            attempts=_number(environ, "CANARY_DELIVERY_ATTEMPTS", 3, int),
            retry_delay=_number(environ, "CANARY_RETRY_DELAY_SECONDS", 0.5, float),
            webhook_timeout=_number(environ, "CANARY_WEBHOOK_TIMEOUT_SECONDS", 5.0, float) or 5.0,
        )

    def __repr__(self):
        # The URL and the secret are credentials; say only whether they are set.
        return (
            f"ChannelSettings(webhook={'set' if self.webhook_url else 'unset'}, format={self.webhook_format}, "
            f"secret={'set' if self.webhook_secret else 'unset'}, sns_topic_arn={self.sns_topic_arn!r}, "
            f"attempts={self.attempts}, retry_delay={self.retry_delay}, webhook_timeout={self.webhook_timeout})"
        )


# ---------------------------------------------------------------- renderings


def generic_body(alert: dict) -> bytes:
    """The generic webhook body; the signature covers exactly these bytes."""
    return json.dumps(alert, separators=(",", ":")).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _from_last_used(alert: dict) -> bool:
    """An alert of the last-used detector: one call known by its time, service and region only."""
    return alert.get("detector") == alert_payload.DETECTOR_LAST_USED


def _event_line(event: dict, outcome_known: bool = True) -> list:
    """The parts of one call's line: time, service, call, region, caller, outcome, client.

    A null ``errorCode`` means success in a CloudTrail record; in IAM's last-used record the outcome
    is simply not known, and "OK" would tell the responder something nobody knows.
    """
    source = (event.get("eventSource") or "?").replace(".amazonaws.com", "")
    return [
        event.get("eventTime") or "?",
        f"{source}:{event.get('eventName') or '?'}",
        event.get("awsRegion") or "-",
        event.get("sourceIPAddress") or "-",
        event.get("errorCode") or ("OK" if outcome_known else "?"),
        event.get("userAgent") or "-",
    ]


def _detector_facts(alert: dict) -> list:
    """What a tamper or exposed alert adds: who changed what, or what AWS said."""
    change = alert.get("change") if isinstance(alert.get("change"), dict) else None
    exposure = alert.get("exposure") if isinstance(alert.get("exposure"), dict) else None
    if change is not None:
        params = change.get("request_parameters")
        text = json.dumps(params, separators=(",", ":"), sort_keys=True) if params else ""
        return [
            ("Changed by", change.get("principal_arn") or change.get("invoked_by")),
            ("Call", change.get("call")),
            ("Parameters", text if len(text) <= 600 else text[:597] + "..."),
        ]
    if exposure is not None:
        return [("AWS says", exposure.get("description")), ("AWS event", exposure.get("event_arn"))]
    return []


def _calls_heading(alert: dict, shown: int) -> str:
    if _from_last_used(alert):
        return "Latest call (IAM's last-used record: time, service and region only):"
    count = alert.get("count") or 0
    return "Calls, in time order:" if shown >= count else f"The earliest {shown} of {count} calls:"


def _account_label(alert: dict):
    """The account as a responder knows it: its name from canary_accounts, with the id AWS uses."""
    name, account_id = alert.get("account"), alert.get("account_id")
    if name and account_id:
        return f"{name} ({account_id})"
    return name or account_id


def _facts(alert: dict) -> list:
    """(label, value) pairs every rendering shows, in reading order; empty values left out."""
    count = alert.get("count") or 0
    span = alert.get("first_seen") or "?"
    if alert.get("last_seen") and alert.get("last_seen") != alert.get("first_seen"):
        span += f" to {alert['last_seen']}"
    detector_facts = _detector_facts(alert)
    if detector_facts:
        calls = ("When", alert.get("first_seen"))
    elif _from_last_used(alert):
        calls = ("Last used", f"{alert.get('last_seen') or '?'} (IAM's last-used record of the key)")
    else:
        calls = ("Calls", f"{count} ({span})")
    pairs = [
        ("Host", alert.get("host")),
        ("File", alert.get("path")),
        ("Profile", alert.get("profile")),
        *detector_facts,
        ("Reminder", alert.get("reminder")),
        ("Planted at", alert.get("planted_at")),
        ("IAM user", alert.get("iam_user")),
        ("Account", _account_label(alert)),
        ("Access key", alert.get("access_key_id")),
        calls,
        ("Source IPs", ", ".join(alert_payload.source_addresses(alert))),
    ]
    return [(label, value) for label, value in pairs if value]


_MEANINGS = {
    (alert_payload.DETECTOR_TAMPER, alert_payload.KIND_CANARY):
        "Someone other than the collection's own runs changed a canary IAM user. Nobody has a reason to touch it: "
        "find out who holds the credentials of the principal below; treat them as an attacker's.",
    (alert_payload.DETECTOR_TAMPER, alert_payload.KIND_UNKNOWN_USER):
        "An IAM user was deleted in the canary account by someone other than the collection's own runs, and its "
        "mapping could no longer be read: it may have been a canary. Find out who holds the credentials of the "
        "principal below.",
    (alert_payload.DETECTOR_EXPOSED, alert_payload.KIND_CANARY):
        "AWS found this canary key published (GitHub or another public source): the file below left its host and "
        "was published. Treat that host as compromised and find where the file went.",
    (alert_payload.DETECTOR_EXPOSED, alert_payload.KIND_UNKNOWN_USER):
        "AWS found a published access key of the canary account that is not a canary's (or whose user is gone).",
}
_QUARANTINED = ("AWS attached its quarantine policy to this canary's user: AWS believes the key was exposed, usually "
                "published. The file below left its host. Treat that host as compromised.")


def _meaning(alert: dict) -> str:
    if alert.get("detector") == alert_payload.DETECTOR_TAMPER and (alert.get("change") or {}).get("by_aws"):
        return _QUARANTINED
    fixed = _MEANINGS.get((alert.get("detector"), alert.get("alert")))
    if fixed:
        return fixed
    if alert.get("alert") == alert_payload.KIND_CANARY:
        meaning = ("Someone used a canary access key: it can only have been read from the file below. "
                   "Treat that host as compromised.")
    else:
        meaning = ("An IAM user that is not a canary made API calls in the canary account, which should hold "
                   "nothing but canaries. Find out who created this user and why.")
    if _from_last_used(alert):
        meaning += (" Seen in the key's last-used record in IAM, which keeps only the time, service and region of "
                    "the latest call: not the call, the caller's address nor its outcome (CloudTrail has them "
                    "when the service logs the call).")
    return meaning


def _more_line(alert: dict, shown: int) -> str:
    rest = (alert.get("count") or 0) - shown
    return f"... and {rest} more call(s), see the JSON alert" if rest > 0 else ""


def _slack_escape(text) -> str:
    # Slack parses <...> as links and mentions (<!channel>) and & as entities, even in code spans;
    # the user agent and the caller address are chosen by the attacker.
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_code(text) -> str:
    return "`" + _slack_escape(text).replace("`", "'") + "`"


def render_slack(alert: dict) -> dict:
    """Slack incoming-webhook message: ``text`` for notifications, ``blocks`` for the channel."""
    title = alert_payload.headline(alert)
    facts = _facts(alert)
    events = (alert.get("events") or [])[:CHAT_EVENT_LINES]
    known = not _from_last_used(alert)
    lines = [" ".join(_slack_code(part) if index == 5 else _slack_escape(part) for index, part in enumerate(_event_line(event, known)))
             for event in events]
    more = _more_line(alert, len(events))
    if more:
        lines.append(_slack_escape(more))
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(_meaning(alert))}},
        {
            "type": "section",
            # Slack allows at most 10 fields of 2,000 characters in a section.
            "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{_slack_escape(value)[:1900]}"} for label, value in facts[:10]],
        },
    ]
    if lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}})
    blocks.append({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": _slack_escape(f"canarykeys.aws - detector {alert.get('detector')} - {alert.get('alert')}")}],
    })
    if _from_last_used(alert):
        note = f"last used {alert.get('last_seen') or '?'}"
    elif isinstance(alert.get("change"), dict):
        note = alert["change"].get("call") or "?"
    elif isinstance(alert.get("exposure"), dict):
        note = alert["exposure"].get("event_type") or "?"
    else:
        note = f"{alert.get('count') or 0} calls"
    return {"text": _slack_escape(f"{title} ({note})"), "blocks": blocks}


def _run(text, **style) -> dict:
    # TextRun is never parsed as Markdown, unlike TextBlock and FactSet: attacker-chosen text
    # (user agent, caller address) cannot turn into a link or formatting.
    return dict({"type": "TextRun", "text": str(text)}, **style)


def _rich(*inlines, **style) -> dict:
    return dict({"type": "RichTextBlock", "inlines": list(inlines)}, **style)


def render_teams(alert: dict) -> dict:
    """Teams message with an Adaptive Card: what Workflows webhooks and the older connectors accept."""
    events = (alert.get("events") or [])[:CHAT_EVENT_LINES]
    body = [
        _rich(_run(alert_payload.headline(alert), weight="Bolder", size="Medium", color="Attention")),
        _rich(_run(_meaning(alert))),
    ]
    body.extend(_rich(_run(f"{label}: ", weight="Bolder"), _run(value)) for label, value in _facts(alert))
    if events:
        body.append(_rich(_run(_calls_heading(alert, len(events)) if _from_last_used(alert) else "Calls", weight="Bolder"), separator=True))
        known = not _from_last_used(alert)
        body.extend(_rich(_run("  ".join(_event_line(event, known)), fontType="Monospace", size="Small")) for event in events)
    more = _more_line(alert, len(events))
    if more:
        body.append(_rich(_run(more, isSubtle=True)))
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    }
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}],
    }


def sns_subject(alert: dict) -> str:
    """A readable e-mail subject within SNS's rules (ASCII, one line, under 100 characters)."""

    def ascii_line(text):
        text = " ".join(str(text).split())
        return text.encode("ascii", "replace").decode("ascii")

    subject = ascii_line(alert_payload.headline(alert))
    if len(subject) > SNS_SUBJECT_MAX and alert.get("alert") == alert_payload.KIND_CANARY and alert.get("path"):
        # The host and the profile say the most; a long path keeps its end (the file name).
        path = ascii_line(alert["path"])
        budget = SNS_SUBJECT_MAX - (len(subject) - len(path)) - 3
        if budget > 8:
            subject = subject.replace(path, "..." + path[-budget:], 1)
    if len(subject) > SNS_SUBJECT_MAX:
        subject = subject[:SNS_SUBJECT_MAX - 3] + "..."
    return subject


def sns_message(alert: dict) -> str:
    """The e-mail body: the facts for a human, then the same JSON the generic webhook receives."""
    facts = _facts(alert)
    width = max(len(label) for label, _value in facts) + 2 if facts else 0
    lines = [alert_payload.headline(alert), "", _meaning(alert), ""]
    lines.extend(f"{(label + ':').ljust(width)}{value}" for label, value in facts)
    events = alert.get("events") or []
    if events:
        known = not _from_last_used(alert)
        lines.extend(["", _calls_heading(alert, len(events))])
        lines.extend("  " + "  ".join(_event_line(event, known)) for event in events)
    lines.extend(["", "Alert (JSON, as the generic webhook receives it):", json.dumps(alert, indent=2, sort_keys=False)])
    return "\n".join(lines)


# ---------------------------------------------------------------- channels


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a 301/302 answer to a POST as a GET without the body: a lost alert that
    looks delivered.  Refused, the redirect surfaces as an HTTP error instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_RefuseRedirects)


class WebhookChannel:
    def __init__(self, url: str, webhook_format: str = "generic", secret: str = "", timeout: float = 5.0):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("https", "http") or not parsed.netloc:
            # urllib would also open file:// and ftp:// URLs; a webhook is HTTP(S) only.
            raise ValueError("CANARY_WEBHOOK_URL must be an http(s) URL")
        self.url = url
        self.format = webhook_format
        self.secret = secret
        self.timeout = timeout
        # Only the host is ever shown: the path of a Slack or Teams URL is its credential.
        self.name = f"webhook:{webhook_format}:{parsed.hostname}"

    def body_and_headers(self, alert: dict):
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
        if self.format == "slack":
            return json.dumps(render_slack(alert)).encode("utf-8"), headers
        if self.format == "teams":
            return json.dumps(render_teams(alert)).encode("utf-8"), headers
        body = generic_body(alert)
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        return body, headers

    def send(self, alert: dict) -> None:
        body, headers = self.body_and_headers(alert)
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:  # nosec B310: scheme checked above
                response.read(4096)
        except urllib.error.HTTPError as error:
            error.close()
            # Rate limits and time-outs pass; a refused payload, a wrong URL or a redirect will not.
            if 300 <= error.code < 400 or (400 <= error.code < 500 and error.code not in (408, 425, 429)):
                raise PermanentDeliveryError(f"HTTP {error.code} {error.reason}") from None
            raise DeliveryError(f"HTTP {error.code} {error.reason}") from None
        except urllib.error.URLError as error:
            raise DeliveryError(f"cannot reach the webhook: {error.reason}") from None
        except (OSError, http.client.HTTPException) as error:
            raise DeliveryError(f"webhook connection failed: {error.__class__.__name__}: {error}") from None


_SNS_CLIENTS = {}


def sns_client(region: str):
    """One SNS client per region, kept across warm invocations (creating one costs ~30 ms of CPU)."""
    client = _SNS_CLIENTS.get(region)
    if client is None:
        import boto3  # pylint: disable=import-outside-toplevel  # only the SNS channel needs it

        client = _SNS_CLIENTS[region] = boto3.client("sns", region_name=region)
    return client


class SnsChannel:
    def __init__(self, topic_arn: str, client_factory=sns_client):
        parts = topic_arn.split(":")
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sns":
            raise ValueError(f"CANARY_SNS_TOPIC_ARN is not an SNS topic ARN: {topic_arn!r}")
        self.topic_arn = topic_arn
        # The topic's own region, whatever region the function runs in.
        self.region = parts[3]
        self.client_factory = client_factory
        self.name = f"sns:{parts[5]}"

    def send(self, alert: dict) -> None:
        from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel

        try:
            self.client_factory(self.region).publish(TopicArn=self.topic_arn, Subject=sns_subject(alert), Message=sns_message(alert))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            message = f"SNS {code}: {error.response.get('Error', {}).get('Message', '')}"
            if code in ("NotFound", "InvalidParameter", "AuthorizationError", "InvalidParameterValue"):
                raise PermanentDeliveryError(message) from None
            raise DeliveryError(message) from None
        except BotoCoreError as error:
            raise DeliveryError(f"SNS: {error}") from None


class LogChannel:
    """The function's own log: the channel of last resort, and the only one when none is set."""

    name = "log"

    @staticmethod
    def send(alert: dict) -> None:
        LOGGER.warning("%s", json.dumps(alert, separators=(",", ":")))


def channels_from_settings(settings: ChannelSettings, sns_client_factory=sns_client) -> list:
    """The configured channels; a setting that cannot work is logged and left out, never fatal."""
    channels = []
    if settings.webhook_url:
        try:
            channels.append(WebhookChannel(settings.webhook_url, settings.webhook_format, settings.webhook_secret, settings.webhook_timeout))
        except ValueError as error:
            LOGGER.error("webhook channel off: %s", error)
    if settings.sns_topic_arn:
        try:
            channels.append(SnsChannel(settings.sns_topic_arn, sns_client_factory))
        except ValueError as error:
            LOGGER.error("SNS channel off: %s", error)
    return channels


class Dispatcher:
    """Delivers alerts to every channel, with retries, within the invocation's time.

    ``remaining_seconds`` (a callable, e.g. from the Lambda context) stops retries that would
    outlive the invocation.  A channel that exhausted its attempts is not tried again for the
    rest of the invocation: ten alerts must not wait ten times for a webhook that is down.
    """

    def __init__(self, channels: list, attempts: int = 3, retry_delay: float = 0.5, remaining_seconds=None, timeout: float = 5.0):
        self.channels = list(channels)
        self.attempts = max(1, int(attempts))
        self.retry_delay = retry_delay
        self.remaining_seconds = remaining_seconds
        self.timeout = timeout
        self.down = {}

    @classmethod
    def from_settings(cls, settings: ChannelSettings, remaining_seconds=None, sns_client_factory=sns_client) -> "Dispatcher":
        return cls(channels_from_settings(settings, sns_client_factory), settings.attempts, settings.retry_delay,
                   remaining_seconds, settings.webhook_timeout)

    def _time_for(self, delay: float) -> bool:
        if self.remaining_seconds is None:
            return True
        return self.remaining_seconds() > delay + self.timeout + DEADLINE_MARGIN_SECONDS

    def _send_with_retries(self, channel, alert: dict):
        """None on success, else the last error text."""
        for attempt in range(1, self.attempts + 1):
            try:
                channel.send(alert)
                return None
            except DeliveryError as error:
                last = str(error)
                LOGGER.warning("channel %s failed (attempt %d of %d): %s", channel.name, attempt, self.attempts, last)
                if isinstance(error, PermanentDeliveryError):
                    return last
            except Exception as error:  # pylint: disable=broad-exception-caught
                # A bug in one channel must not cost the other channels, or the other alerts.
                LOGGER.exception("channel %s failed unexpectedly", channel.name)
                return f"{error.__class__.__name__}: {error}"
            delay = self.retry_delay * (2 ** (attempt - 1))
            if attempt == self.attempts:
                break
            if not self._time_for(delay):
                LOGGER.warning("channel %s: no time left in this invocation for another attempt", channel.name)
                break
            _sleep(delay)
        return last

    def deliver(self, alert: dict) -> dict:
        """Send one alert everywhere: ``{"delivered": [names], "failed": {name: error}}``."""
        if not self.channels:
            LogChannel.send(alert)
            return {"delivered": [LogChannel.name], "failed": {}}
        delivered, failed = [], {}
        for channel in self.channels:
            if channel.name in self.down:
                failed[channel.name] = "failed earlier in this invocation: " + self.down[channel.name]
                continue
            error = self._send_with_retries(channel, alert)
            if error is None:
                delivered.append(channel.name)
            else:
                failed[channel.name] = error
                self.down[channel.name] = error
        if not delivered:
            # The alert must survive somewhere even if the retry of the invocation never comes.
            LOGGER.error("no channel took the alert; it follows in full")
            LogChannel.send(alert)
        elif failed:
            LOGGER.error("alert delivered by %s, but not by %s", ", ".join(delivered), ", ".join(sorted(failed)))
        return {"delivered": delivered, "failed": failed}
