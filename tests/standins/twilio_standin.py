"""A local Twilio Messages API for tests, reached by the real `twilio` library over HTTP.

It answers POST /2010-04-01/Accounts/{AccountSid}/Messages.json (and GET of one message) as Twilio
documents them: HTTP Basic auth with the account SID and its auth token (401, error 20003
otherwise), form-encoded To, Body, StatusCallback and From or MessagingServiceSid, a 201 with the
Message resource's JSON (sid "SM…", status "queued", or "accepted" through a messaging service),
and errors in Twilio's JSON shape ({"code", "message", "more_info", "status"}): 21604 no To, 21603
no sender, 21602 no Body, 21617 a body over 1600 characters, 21211 a To that is not E.164, 21606 a
From the account does not own, 21609 a StatusCallback that is not an absolute http(s) URL. Twilio's
magic test numbers as To give their documented errors (+15005550001 21211, +15005550002 21612,
+15005550003 21408, +15005550004 21610, +15005550009 21614).

Every request is recorded (`requests`), so tests assert the real request shape. Accounts are made
with `account_new()` (the platform's one exists from the start); `settings_for()` gives the value of
settings.TWILIO pointing the library here. Twilio's callbacks to our site are built, signed for
real with twilio's RequestValidator, by `status_callback()` (a message's status changes) and
`inbound()` (someone texts a number); `sign()` signs anything. `fail_next()` makes the next API
request fail (a 5xx, say). Loaded as a pytest plugin, it provides the session-scoped
`twilio_standin` fixture.
"""

from __future__ import annotations

import base64
import copy
import hmac
import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
BODY_MAX_LENGTH = 1600
E164 = re.compile(r"\+[1-9][0-9]{7,14}")
MESSAGES_PATH = re.compile(rf"/{API_VERSION}/Accounts/(?P<account>AC[0-9a-f]{{32}})/Messages\.json")
MESSAGE_PATH = re.compile(
    rf"/{API_VERSION}/Accounts/(?P<account>AC[0-9a-f]{{32}})/Messages/(?P<sid>(?:SM|MM)[0-9a-f]{{32}})\.json"
)
# Twilio's magic "To" numbers for test credentials, and the errors they always give.
MAGIC_TO = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: +15005550002, is not currently reachable."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number: +15005550003.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
STATUS_CALLBACK_STATES = ("queued", "sending", "sent", "delivered", "undelivered", "failed")


def sid(prefix: str) -> str:
    """A Twilio SID: two letters and 32 lower-case hex digits."""
    return prefix + secrets.token_hex(16)


def sign(url: str, params: dict[str, str], auth_token: str) -> str:
    """X-Twilio-Signature of a form POST to `url`, as Twilio computes it."""
    return RequestValidator(auth_token).compute_signature(url, params)


@dataclass(frozen=True)
class StandinAccount:
    account_sid: str
    auth_token: str = field(repr=False)
    from_number: str
    messaging_service_sid: str


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    account_sid: str  # from the path
    auth_user: str  # the Basic auth user name (the token is checked, not kept)
    authenticated: bool
    form: dict[str, str]  # first value of each form parameter
    headers: dict[str, str]  # all but Authorization
    status: int  # the HTTP status of the answer
    answer: dict[str, Any]  # … and its JSON


@dataclass(frozen=True)
class Callback:
    """A request Twilio would make to our site: POST `params` to `url` with `headers`."""

    url: str
    params: dict[str, str]
    headers: dict[str, str]

    @property
    def signature(self) -> str:
        return self.headers["X-Twilio-Signature"]


class TwilioApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }


class TwilioStandin:
    def __init__(self) -> None:
        self.accounts: dict[str, StandinAccount] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self._failures: list[TwilioApiError] = []
        self._numbers = iter(range(1000, 10_000))
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.platform = self.account_new()

    # -- server -----------------------------------------------------------------------------------

    def start(self) -> None:
        handler = type("TwilioHandler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="twilio-standin", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def api_base(self) -> str:
        assert self._server is not None, "the stand-in is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- test controls ----------------------------------------------------------------------------

    def account_new(self) -> StandinAccount:
        """A Twilio account with one SMS number and one messaging service."""
        with self._lock:
            account = StandinAccount(
                account_sid=sid("AC"),
                auth_token=secrets.token_hex(16),
                from_number=f"+1415555{next(self._numbers)}",
                messaging_service_sid=sid("MG"),
            )
            self.accounts[account.account_sid] = account
        return account

    def settings_for(self, account: StandinAccount | None = None, **overrides: str) -> dict[str, str]:
        """settings.TWILIO for an account of the stand-in (the platform's by default)."""
        account = account or self.platform
        values = {
            "account_sid": account.account_sid,
            "auth_token": account.auth_token,
            "from_number": account.from_number,
            "api_base": self.api_base,
        }
        values.update(overrides)
        return values

    def fail_next(
        self, *, status: int = 503, code: int = 20503, message: str = "Service unavailable"
    ) -> None:
        """The next authenticated API request gets this error instead of its answer."""
        with self._lock:
            self._failures.append(TwilioApiError(status, code, message))

    def sent(self, account: StandinAccount | None = None) -> list[RecordedRequest]:
        """The requests that created a message, oldest first (of one account if given)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == "POST"
                and r.status == 201
                and (account is None or r.account_sid == account.account_sid)
            ]

    def message(self, message_sid: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.messages[message_sid])

    def status_callback(self, message_sid: str, status: str, *, error_code: str = "") -> Callback:
        """The message moves on (sent, delivered, undelivered, failed): the signed POST Twilio makes
        to the message's StatusCallback, with its documented parameters."""
        assert status in STATUS_CALLBACK_STATES, status
        with self._lock:
            message = self.messages[message_sid]
            message["status"] = status
            message["date_updated"] = formatdate(usegmt=True)
            if error_code:
                message["error_code"] = int(error_code)
            url = message["_status_callback"]
            account = self.accounts[message["account_sid"]]
            params = {
                "AccountSid": account.account_sid,
                "ApiVersion": API_VERSION,
                "From": message["from"] or account.from_number,
                "MessageSid": message_sid,
                "MessageStatus": status,
                "SmsSid": message_sid,
                "SmsStatus": status,
                "To": message["to"],
            }
            if message["messaging_service_sid"]:
                params["MessagingServiceSid"] = message["messaging_service_sid"]
            if error_code:
                params["ErrorCode"] = str(error_code)
        assert url, "the message was sent without a StatusCallback"
        return Callback(url, params, {"X-Twilio-Signature": sign(url, params, account.auth_token)})

    def inbound(
        self, url: str, *, from_: str, body: str, account: StandinAccount | None = None, to: str = ""
    ) -> Callback:
        """Someone texts the account's number: the signed POST Twilio makes to the number's
        incoming-message webhook `url`."""
        account = account or self.platform
        message_sid = sid("SM")
        params = {
            "AccountSid": account.account_sid,
            "ApiVersion": API_VERSION,
            "Body": body,
            "From": from_,
            "MessageSid": message_sid,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsMessageSid": message_sid,
            "SmsSid": message_sid,
            "SmsStatus": "received",
            "To": to or account.from_number,
        }
        return Callback(url, params, {"X-Twilio-Signature": sign(url, params, account.auth_token)})

    # -- API --------------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, form: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, Any]:
        """Answer one API request, and record it with its answer."""
        match = MESSAGES_PATH.fullmatch(path) or MESSAGE_PATH.fullmatch(path)
        account_sid = match["account"] if match else ""
        user, token = _basic_auth(headers.get("Authorization", ""))
        with self._lock:
            account = self.accounts.get(user)
            authenticated = bool(
                account is not None
                and hmac.compare_digest(token.encode(), account.auth_token.encode())
                and (not account_sid or account_sid == user)
            )
            try:
                if account is None or not authenticated:
                    raise TwilioApiError(401, 20003, "Authenticate")
                status, answer = self._answer(account, method, path, form)
            except TwilioApiError as error:
                status, answer = error.status, error.body
            self.requests.append(
                RecordedRequest(
                    method,
                    path,
                    account_sid,
                    user,
                    authenticated,
                    dict(form),
                    {name: value for name, value in headers.items() if name.lower() != "authorization"},
                    status,
                    answer,
                )
            )
        return status, answer

    def _answer(
        self, account: StandinAccount, method: str, path: str, form: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if self._failures:
            raise self._failures.pop(0)
        if method == "POST" and MESSAGES_PATH.fullmatch(path):
            return 201, self._create_message(account, form)
        if method == "GET" and (found := MESSAGE_PATH.fullmatch(path)):
            message = self.messages.get(found["sid"])
            if message is not None and message["account_sid"] == account.account_sid:
                return 200, _public(message)
        raise TwilioApiError(404, 20404, f"The requested resource {path} was not found")

    def _create_message(self, account: StandinAccount, form: dict[str, str]) -> dict[str, Any]:
        to, body = form.get("To", ""), form.get("Body", "")
        from_, service = form.get("From", ""), form.get("MessagingServiceSid", "")
        callback = form.get("StatusCallback", "")
        if not to:
            raise TwilioApiError(400, 21604, "A 'To' phone number is required.")
        if not from_ and not service:
            raise TwilioApiError(400, 21603, "A 'From' phone number is required.")
        if not body:
            raise TwilioApiError(400, 21602, "Message body is required.")
        if len(body) > BODY_MAX_LENGTH:
            raise TwilioApiError(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if to in MAGIC_TO:
            code, message = MAGIC_TO[to]
            raise TwilioApiError(400, code, message)
        if not E164.fullmatch(to):
            raise TwilioApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if from_ and from_ != account.from_number:
            raise TwilioApiError(
                400,
                21606,
                f"The 'From' phone number provided ({from_}) is not a valid message-capable Twilio "
                "phone number for this destination/account.",
            )
        if service and service != account.messaging_service_sid:
            raise TwilioApiError(404, 20404, f"The requested resource /Services/{service} was not found")
        if callback:
            parts = urlsplit(callback)
            if parts.scheme not in ("http", "https") or not parts.hostname or "_" in parts.hostname:
                raise TwilioApiError(400, 21609, "Invalid 'StatusCallback'")
        message_sid = sid("SM")
        now = formatdate(usegmt=True)
        base = f"/{API_VERSION}/Accounts/{account.account_sid}/Messages/{message_sid}"
        message = {
            "account_sid": account.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_ or None,
            "messaging_service_sid": service or None,
            "num_media": "0",
            "num_segments": "0" if service else str(_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": message_sid,
            "status": "accepted" if service and not from_ else "queued",
            "subresource_uris": {"media": f"{base}/Media.json"},
            "to": to,
            "uri": f"{base}.json",
            "_status_callback": callback,
        }
        self.messages[message_sid] = message
        return _public(message)


def _segments(body: str) -> int:
    """GSM-7 segments: one of up to 160 characters, else 153 per part."""
    return 1 if len(body) <= 160 else -(-len(body) // 153)


def _public(message: dict[str, Any]) -> dict[str, Any]:
    return {key: copy.deepcopy(value) for key, value in message.items() if not key.startswith("_")}


def _basic_auth(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme != "Basic":
        return "", ""
    try:
        user, _, token = base64.b64decode(encoded, validate=True).decode().partition(":")
    except ValueError:
        return "", ""
    return user, token


class _Handler(BaseHTTPRequestHandler):
    standin: TwilioStandin

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def log_message(self, format: str, *args: Any) -> None:  # keeps test output clean
        pass

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        form = {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}
        status, answer = self.standin.handle(method, url.path, form, dict(self.headers.items()))
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="session")
def twilio_standin() -> Iterator[TwilioStandin]:
    standin = TwilioStandin()
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()
