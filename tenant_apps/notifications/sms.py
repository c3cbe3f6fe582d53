"""SMS through Twilio: sending, phone numbers, and the signatures of Twilio's callbacks.

The only module that imports `twilio`. An institution sends from its own Twilio account when its
SMS settings say so, otherwise from the platform's (settings.TWILIO); the same choice decides which
auth token signs the callbacks that come back to the institution's site.

Twilio's Messages API: POST /2010-04-01/Accounts/{AccountSid}/Messages.json with To, Body,
StatusCallback and From (or MessagingServiceSid), HTTP Basic auth with the account SID and auth
token. `settings.TWILIO["api_base"]` replaces https://api.twilio.com (tests and local stand-ins only).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from shared.core.errors import ApplicationError
from tenant_apps.accounts.models import User

from .models import SmsSettings

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = 15.0  # seconds, to connect and to read
BODY_MAX_LENGTH = 1600  # Twilio's limit for one message body (error 21617 above it)
E164_MIN_DIGITS, E164_MAX_DIGITS = 8, 15
RETRYABLE_CODES = frozenset({20429, 20500, 20503})  # too many requests, internal error, unavailable

# What Twilio's error codes mean for the people reading the delivery log.
ERROR_MESSAGES = {
    20003: "Twilio refused the account SID or auth token.",
    20404: "Twilio does not know this account.",
    21211: "The number is not a valid phone number.",
    21212: "The sender number is not a valid phone number.",
    21408: "This Twilio account may not send SMS to that country.",
    21602: "The message was empty.",
    21603: "No sender number or messaging service is set up.",
    21606: "The sender number does not belong to this Twilio account or cannot send SMS there.",
    21610: "The person replied STOP to this sender; Twilio will not text them until they reply START.",
    21612: "Twilio cannot reach that number from this sender.",
    21614: "The number cannot receive SMS.",
    21617: "The message was too long for one SMS.",
}


class SmsError(Exception):
    """Twilio refused the message or could not be reached; `message` can be shown to a person."""

    def __init__(self, message: str, *, code: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable


@dataclass(frozen=True)
class SmsResult:
    sid: str  # Twilio's message SID, SM…
    status: str  # Twilio's status on acceptance: queued (or accepted with a messaging service)


@dataclass(frozen=True)
class TwilioAccount:
    """The account that sends an institution's SMS, decrypted, in memory only."""

    account_sid: str
    auth_token: str = field(repr=False)
    from_number: str = ""
    messaging_service_sid: str = ""
    own: bool = False  # the institution's own account (else the platform's)

    @property
    def complete(self) -> bool:
        return bool(self.account_sid and self.auth_token and (self.from_number or self.messaging_service_sid))


def sms_settings() -> SmsSettings | None:
    """The institution's SMS settings (one row), if it ever saved any."""
    return SmsSettings.objects.order_by("pk").first()


def sms_account() -> TwilioAccount:
    """The institution's own account when it chose one, else the platform's."""
    row = sms_settings()
    if row is not None and row.use_own_account:
        return TwilioAccount(
            account_sid=row.account_sid,
            auth_token=row.auth_token or "",
            from_number=row.from_number,
            messaging_service_sid=row.messaging_service_sid,
            own=True,
        )
    platform = getattr(settings, "TWILIO", {}) or {}
    return TwilioAccount(
        account_sid=platform.get("account_sid") or "",
        auth_token=platform.get("auth_token") or "",
        from_number=platform.get("from_number") or "",
        messaging_service_sid=platform.get("messaging_service_sid") or "",
    )


def sms_configured() -> bool:
    """Whether this institution can send SMS: its own account if it chose one (an incomplete own
    account never falls back to the platform's), else the platform's."""
    return sms_account().complete


def auth_token_for_callbacks() -> str:
    """The token Twilio signs this institution's callbacks with (its own account's or the platform's)."""
    return sms_account().auth_token


@contextmanager
def _client(account: TwilioAccount) -> Iterator[Client]:
    """A Twilio client for one account; its HTTP session is closed afterwards."""
    http = TwilioHttpClient(timeout=REQUEST_TIMEOUT)
    client = Client(account.account_sid, account.auth_token, http_client=http)
    api_base = (getattr(settings, "TWILIO", {}) or {}).get("api_base") or ""
    if api_base:
        client.api.base_url = api_base.rstrip("/")  # the Api domain's root, https://api.twilio.com
    try:
        yield client
    finally:
        if http.session is not None:
            http.session.close()


def sms_send(*, to: str, body: str, status_callback: str) -> SmsResult:
    """Send one SMS from the institution's account; Twilio reports its fate to `status_callback`."""
    account = sms_account()
    if not account.complete:
        raise SmsError("SMS is not set up for this institution.")
    if len(body) > BODY_MAX_LENGTH:
        raise SmsError(ERROR_MESSAGES[21617], code=21617)
    sender = (
        {"messaging_service_sid": account.messaging_service_sid}
        if account.messaging_service_sid
        else {"from_": account.from_number}
    )
    try:
        with _client(account) as client:
            message = client.messages.create(
                to=to, body=body, status_callback=status_callback or None, **sender
            )
    except TwilioRestException as error:
        raise _refused(error.status, error.code, error.msg) from None
    except TwilioServiceException as error:
        raise _refused(error.status, error.code, error.detail or error.title) from None
    except requests.RequestException as error:
        logger.warning("Twilio could not be reached: %s", type(error).__name__)
        raise SmsError("Twilio could not be reached.", retryable=True) from None
    except TwilioException as error:
        logger.warning("Twilio client error: %s", type(error).__name__)
        raise SmsError("The message could not be sent through Twilio.") from None
    return SmsResult(sid=str(message.sid), status=str(message.status or "queued"))


def _refused(status: int, code: int | None, detail: str | None) -> SmsError:
    retryable = status == 429 or status >= 500 or code in RETRYABLE_CODES
    message = ERROR_MESSAGES.get(code or 0)
    if message is None:
        detail = (detail or "").removeprefix("Unable to create record: ").strip()
        message = f"Twilio refused the message: {detail}" if detail else "Twilio refused the message."
    logger.info("Twilio answered %s (error %s)", status, code)
    return SmsError(f"{message} (Twilio error {code})" if code else message, code=code, retryable=retryable)


# --- Phone numbers ---------------------------------------------------------------------------------

_TRUNK_ZERO = re.compile(r"\(\s*0\s*\)")  # "+44 (0)20 …": the national prefix, not dialled from abroad
_SEPARATORS = re.compile(r"[\s.\-/()]")
_DIGITS = re.compile(r"[0-9]+")


def e164(number: str) -> str:
    """The number in E.164 (+ and 8 to 15 digits, no leading zero), from how people write it:
    spaces, dashes, dots, brackets, a leading 00 and a "(0)" after the country code are fine."""
    compact = _SEPARATORS.sub("", _TRUNK_ZERO.sub("", (number or "").strip()))
    if not compact:
        raise ValidationError("Enter a phone number.", code="required")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not compact.startswith("+"):
        raise ValidationError(
            "Enter the number with its country code, starting with + (for example +44 7700 900123).",
            code="e164_prefix",
        )
    digits = compact[1:]
    if not _DIGITS.fullmatch(digits):
        raise ValidationError(
            "A phone number may contain only digits after the + (spaces, dashes and brackets are fine).",
            code="e164_characters",
        )
    if digits.startswith("0"):
        raise ValidationError("A country code never starts with 0.", code="e164_country")
    if not E164_MIN_DIGITS <= len(digits) <= E164_MAX_DIGITS:
        raise ValidationError(
            "A phone number has %(min)d to %(max)d digits with its country code; this one has %(count)d.",
            code="e164_length",
            params={"min": E164_MIN_DIGITS, "max": E164_MAX_DIGITS, "count": len(digits)},
        )
    return "+" + digits


def sms_contact_update(*, user: User, phone: str, sms_opt_in: bool) -> User:
    """A person's number and their choice to receive SMS; opting in needs a number."""
    errors: dict[str, list[str]] = {}
    number = ""
    if phone.strip():
        try:
            number = e164(phone)
        except ValidationError as error:
            errors["phone"] = list(error.messages)
    if sms_opt_in and not number and "phone" not in errors:
        errors["sms_opt_in"] = ["Add your mobile number to receive text messages."]
    if errors:
        raise ApplicationError("Please correct the errors below.", fields=errors)
    with transaction.atomic():
        user.phone, user.sms_opt_in = number, bool(sms_opt_in)
        user.save(update_fields=["phone", "sms_opt_in"])
    return user


# --- Callbacks from Twilio -------------------------------------------------------------------------


def request_is_valid(*, url: str, params: dict, signature: str, auth_token: str) -> bool:
    """Whether X-Twilio-Signature `signature` is Twilio's for this URL and these POST parameters."""
    if not (auth_token and signature and url):
        return False
    return RequestValidator(auth_token).validate(url, params, signature)
