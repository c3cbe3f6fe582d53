"""Sign-ins, failed sign-ins, sign-outs and lockouts: counted for the lockouts and written to the
institution's audit log, whichever way in was used (the sign-in page, the admin site, sign-up, a
sign-in link, the API's token endpoint).

Django's own signals carry the page flows (`user_logged_in`, `user_logged_out` and
`user_login_failed`, which `authenticate()` sends for every failure, the API's included); the token
endpoint, which signs no session in, calls `signin_succeeded` itself. Requests made in code (the
test client's `login()`) have no institution and are ignored.
"""

from __future__ import annotations

import logging

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import connection
from django.dispatch import receiver
from django.http import HttpRequest
from django_tenants.utils import get_public_schema_name

from shared.core.errors import ApplicationError
from shared.core.throttling import client_address
from tenant_apps.admin_console.audit import audit_record

from . import throttling
from .throttling import Lockout

logger = logging.getLogger("peerlearn.security")

ANONYMOUS = "Anonymous visitor"

# How a sign-in happened, by the view that handled it.
VIA = {
    "accounts:login": "password",
    "accounts:signup": "sign-up",
    "accounts:mentor_apply": "sign-up",
    "accounts:login_link": "sign-in link",
    "tenant_admin:login": "admin site",
    "api-token": "API token",
}


def via_of(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return ""
    return VIA.get(match.view_name, match.view_name)


def in_institution(request: HttpRequest | None) -> bool:
    """A request served on an institution's site (its schema is the connection's)."""
    tenant = getattr(request, "tenant", None) if request is not None else None
    return (
        tenant is not None
        and tenant.schema_name != get_public_schema_name()
        and connection.schema_name == tenant.schema_name
    )


def signin_succeeded(*, request: HttpRequest, user, via: str, changes: dict | None = None) -> None:
    throttling.login_succeeded(email=user.email)
    if in_institution(request):
        audit_record(
            actor=user,
            action="auth.signed_in",
            target=user.email,
            changes={"via": [None, via], **(changes or {})},
            address=client_address(request),
        )


def signin_failed(*, request: HttpRequest, email: str, via: str) -> list[Lockout]:
    """Count a failed sign-in (the account's and the address's); record it and any lockout it
    started. Nothing is created for an email that matches no account: the attempt is recorded
    under the email as typed."""
    address = client_address(request)
    email = throttling.normal_email(email)
    lockouts = throttling.login_failed(email=email, address=address)
    if in_institution(request):
        if throttling.failed_signin_audit_allowed():
            audit_record(
                actor=None,
                actor_label=ANONYMOUS,
                action="auth.signin_failed",
                target=email,
                changes={"via": [None, via]},
                address=address,
            )
        for lockout in lockouts:
            audit_record(
                actor=None,
                actor_label=ANONYMOUS,
                action="auth.locked_out",
                target=lockout.subject,
                changes={"locked": [None, lockout.kind], "until": [None, lockout.until.isoformat()]},
                address=address,
            )
    for lockout in lockouts:
        logger.warning(
            "Sign-in locked out: %s %s in schema %s", lockout.kind, lockout.subject, connection.schema_name
        )
    return lockouts


@receiver(user_login_failed, dispatch_uid="accounts.security.login_failed")
def _login_failed(sender, credentials: dict, request: HttpRequest | None = None, **kwargs) -> None:
    if getattr(request, "tenant", None) is None:
        return
    email = credentials.get("username") or credentials.get("email") or ""
    signin_failed(request=request, email=email, via=via_of(request))


@receiver(user_logged_in, dispatch_uid="accounts.security.logged_in")
def _logged_in(sender, request: HttpRequest | None, user, **kwargs) -> None:
    if getattr(request, "tenant", None) is None:
        return
    signin_succeeded(request=request, user=user, via=via_of(request))


@receiver(user_logged_out, dispatch_uid="accounts.security.logged_out")
def _logged_out(sender, request: HttpRequest | None, user, **kwargs) -> None:
    if user is None or not in_institution(request) or not user.is_active:
        return  # a deleted account's sign-out (data_rights.account_delete) is not recorded
    audit_record(actor=user, action="auth.signed_out", target=user.email, address=client_address(request))


def lockout_unlock(*, actor, kind: str, subject: str) -> bool:
    """An institution admin lifts a lockout of an account (kind "account", an email) or of an address
    ("address") in their own institution; recorded. False if it was not locked (here)."""
    if not actor.is_tenant_admin:
        raise ApplicationError("Only institution administrators can do this.", status=403)
    lifted = throttling.lockout_lift(kind=kind, subject=subject)
    if lifted:
        audit_record(
            actor=actor,
            action="auth.unlocked",
            target=throttling.normal_email(subject) if kind == "account" else subject,
            changes={"locked": [kind, None]},
        )
    return lifted
