"""Sign-in lockouts, and the limits on sign-ups, password resets and confirmation emails.

Every key names the schema of the current connection, so counters and lockouts belong to one
institution: five failures for pat@example.org at A lock nothing at B, and B's administrators can
neither see nor lift A's lockouts. Lockouts live in one sorted set per institution (member → until),
which is what the members page lists. When Redis is unavailable nothing is counted or refused
(shared.core.throttling fails open). Limits and their settings: docs/security.md ("Abuse limits").
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection
from django.utils import formats, timezone

from shared.core.throttling import (
    REDIS_ERRORS,
    count_clear,
    count_hit,
    count_peek,
    key,
    redis_client,
    unavailable,
    wait_text,
    window_hit,
)

HOUR = 3600
# The sorted set (member → locked until) of each kind of lockout.
LOCKED_SETS = {"account": "accounts", "address": "addresses"}


def normal_email(email: str) -> str:
    return (email or "").strip().lower()[:254]


def _digest(email: str) -> str:
    return hashlib.sha256(normal_email(email).encode()).hexdigest()[:32]


def _schema() -> str:
    return connection.schema_name


def _failures_key(kind: str, subject: str) -> str:
    return key("login", _schema(), "failures", kind, _digest(subject) if kind == "account" else subject)


def _locked_key(kind: str) -> str:
    return key("login", _schema(), "locked", kind)


@dataclass(frozen=True)
class Lockout:
    kind: str  # "account" or "address"
    subject: str  # the email or the address
    until: datetime
    seconds: int

    @property
    def message(self) -> str:
        when = f"{wait_text(self.seconds)} (at {until_text(self.until)})"
        if self.kind == "account":
            return (
                "Too many failed sign-ins for this account, so signing in to it is paused. "
                f"Try again {when}, reset your password, or ask an administrator to unlock it."
            )
        return f"Too many failed sign-ins from your network, so signing in is paused. Try again {when}."


def _lockout(kind: str, subject: str, until_timestamp: float | None, now: float) -> Lockout | None:
    if until_timestamp is None or until_timestamp <= now:
        return None
    return Lockout(
        kind=kind,
        subject=subject,
        until=datetime.fromtimestamp(until_timestamp, tz=UTC),
        seconds=max(1, int(until_timestamp - now + 0.999)),
    )


def login_lockout(*, email: str, address: str) -> Lockout | None:
    """The lockout that refuses a sign-in as `email` from `address` now, if any (one round trip).
    Of two, the account's is reported: it is the one the person can do something about."""
    email = normal_email(email)
    if not email and not address:
        return None
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            pipe.zscore(_locked_key("accounts"), email or "-")
            pipe.zscore(_locked_key("addresses"), address or "-")
            account_until, address_until = pipe.execute()
    except REDIS_ERRORS as error:
        unavailable(error)
        return None
    now = time.time()
    return (_lockout("account", email, account_until, now) if email else None) or (
        _lockout("address", address, address_until, now) if address else None
    )


def login_failed(*, email: str, address: str) -> list[Lockout]:
    """Count one failed sign-in against the account and the address; the lockouts it started."""
    email = normal_email(email)
    counters = []
    if email:
        counters.append(("account", email, settings.LOGIN_FAILURE_LIMIT_ACCOUNT))
    if address:
        counters.append(("address", address, settings.LOGIN_FAILURE_LIMIT_ADDRESS))
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    started = []
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            for kind, subject, _ in counters:
                name = _failures_key(kind, subject)
                pipe.set(name, 0, ex=window, nx=True)
                pipe.incr(name)
            counts = pipe.execute()[1::2]
        reached = [counter for counter, count in zip(counters, counts, strict=True) if count >= counter[2]]
        if reached:
            lasts = settings.LOGIN_LOCKOUT_SECONDS
            now = time.time()
            with redis_client().pipeline(transaction=False) as pipe:
                for kind, subject, _ in reached:
                    locked = _locked_key(LOCKED_SETS[kind])
                    pipe.zadd(locked, {subject: now + lasts})
                    pipe.expire(locked, lasts + 60)
                    # After the lockout the person starts again with a full allowance.
                    pipe.delete(_failures_key(kind, subject))
                    started.append(_lockout(kind, subject, now + lasts, now))
                pipe.execute()
    except REDIS_ERRORS as error:
        unavailable(error)
        return []
    return [lockout for lockout in started if lockout is not None]


def login_succeeded(*, email: str) -> None:
    """A successful sign-in forgets the account's failures (not the address's: one good account
    must not reset the count of an address that is guessing others' passwords)."""
    count_clear(_failures_key("account", normal_email(email)))


def _locked(kind: str) -> list[tuple[str, datetime]]:
    now = time.time()
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(_locked_key(kind), "-inf", now)
            pipe.zrange(_locked_key(kind), 0, -1, withscores=True)
            _, rows = pipe.execute()
    except REDIS_ERRORS as error:
        unavailable(error)
        return []
    return [
        ((subject.decode() if isinstance(subject, bytes) else subject), datetime.fromtimestamp(until, tz=UTC))
        for subject, until in rows
    ]


def locked_accounts() -> list[tuple[str, datetime]]:
    """(email, until) of this institution's locked-out accounts, soonest to unlock first."""
    return _locked("accounts")


def locked_addresses() -> list[tuple[str, datetime]]:
    return _locked("addresses")


def lockout_lift(*, kind: str, subject: str) -> bool:
    """Unlock an account ("account", email) or an address; False if it was not locked here."""
    if kind not in ("account", "address"):
        return False
    if kind == "account":
        subject = normal_email(subject)
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            pipe.zscore(_locked_key(LOCKED_SETS[kind]), subject)
            pipe.zrem(_locked_key(LOCKED_SETS[kind]), subject)
            pipe.delete(_failures_key(kind, subject))
            until, removed, _ = pipe.execute()
    except REDIS_ERRORS as error:
        unavailable(error)
        return False
    return bool(removed) and until is not None and until > time.time()


# --- Sign-ups, password resets, confirmation emails -----------------------------------------------


def _refusal(name: str, *, limit: int, period: int) -> int | None:
    """Seconds to wait when the counter `name` has reached `limit`; None when it has not."""
    found = count_peek(name, period=period)
    if found is None or found.count < limit:
        return None
    return found.retry_after


def signup_refusal(*, address: str, platform: bool = False) -> str | None:
    """Why no new account (or, on the platform site, institution) may be made from `address` now."""
    if not address:
        return None
    limit = settings.PLATFORM_SIGNUP_LIMIT_ADDRESS if platform else settings.SIGNUP_LIMIT_ADDRESS
    wait = _refusal(key("signup", _schema(), address), limit=limit, period=HOUR)
    if wait is None:
        return None
    what = "institutions were registered" if platform else "accounts were created"
    return f"Too many {what} from your network in the last hour. Please try again {wait_text(wait)}."


def signup_recorded(*, address: str) -> None:
    if address:
        count_hit(key("signup", _schema(), address), period=HOUR)


def password_reset_refusal(*, email: str, address: str) -> tuple[str, int] | None:
    """(message, seconds) when this reset request is one too many for the address or the email.
    Counts the request (each one may send an email)."""
    checks = [
        (key("reset", _schema(), "address", address), settings.PASSWORD_RESET_LIMIT_ADDRESS),
        (key("reset", _schema(), "account", _digest(email)), settings.PASSWORD_RESET_LIMIT_ACCOUNT),
    ]
    for name, limit in checks if address else checks[1:]:
        hit = count_hit(name, period=HOUR)
        if hit is not None and hit.count > limit:
            return (
                f"Too many password reset requests. Please check your inbox for the links already "
                f"sent, or try again {wait_text(hit.retry_after)}.",
                hit.retry_after,
            )
    return None


def verification_resend_refusal(*, user_id: int) -> str | None:
    hit = count_hit(key("verify", _schema(), user_id), period=HOUR)
    if hit is None or hit.count <= settings.EMAIL_VERIFICATION_RESEND_LIMIT:
        return None
    return f"We already sent several confirmation links. Please try again {wait_text(hit.retry_after)}."


def failed_signin_audit_allowed() -> bool:
    """Whether one more failed sign-in may be written to this institution's audit log this hour
    (FAILED_SIGNIN_AUDIT_LIMIT): a spray from many addresses is counted and locked out, but it
    cannot grow the table without bound. Lockouts are always written."""
    hit = window_hit(key("audit", _schema(), "failed-signins"), period=HOUR)
    return hit is None or hit.count <= settings.FAILED_SIGNIN_AUDIT_LIMIT


def until_text(until: datetime) -> str:
    """'14:32' today, else the date and time, on the viewer's clock."""
    local = timezone.localtime(until)
    if local.date() == timezone.localdate():
        return formats.time_format(local)
    return formats.date_format(local, "SHORT_DATETIME_FORMAT")
