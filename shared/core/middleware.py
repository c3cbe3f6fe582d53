"""Request ids for the logs, and the browser security headers every response carries.

`RequestIdMiddleware` runs first: it takes the proxy's X-Request-ID when it looks like one (else makes
one), keeps it and the request in context variables that `shared.core.logging.RequestContextFilter`
reads, echoes it in the response and logs one line per request.

`SecurityHeadersMiddleware` adds Content-Security-Policy and Permissions-Policy (Django's
SecurityMiddleware adds Referrer-Policy, X-Content-Type-Options, Cross-Origin-Opener-Policy and, in
production, HSTS). Both run in every environment, so a page the policy would break breaks in
development and in the browser tests too. docs/deploy.md ("Security settings") explains the policy.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port

from .health import HEALTH_PATHS

request_logger = logging.getLogger("peerlearn.request")

REQUEST_ID_HEADER = "X-Request-ID"
# A UUID or a short opaque token from the proxy; anything else (too long, odd characters that could
# forge log lines) is replaced by our own id.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{7,63}$")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
current_request_var: ContextVar[HttpRequest | None] = ContextVar("current_request", default=None)


def incoming_request_id(value: str | None) -> str:
    """The proxy's request id if it looks like one, else a new one."""
    if value and _REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Request id in, request id out, one log line per request (path, status, duration)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = incoming_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        id_token = request_id_var.set(request_id)
        request_token = current_request_var.set(request)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            # Load balancers probe every few seconds: their lines only at DEBUG.
            level = logging.DEBUG if request.path in HEALTH_PATHS else logging.INFO
            request_logger.log(
                level,
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={"status": response.status_code, "duration_ms": duration_ms, "method": request.method},
            )
            return response
        finally:
            current_request_var.reset(request_token)
            request_id_var.reset(id_token)


# Where a submitted form may lead: the payment providers' hosted pages. Stripe's checkout, Connect
# onboarding and billing portal are redirects after a POST to our own view (form-action also applies
# to those redirects); Razorpay's hosted checkout is a form POSTed to its API host.
PAYMENT_FORM_ORIGINS = (
    "https://checkout.stripe.com",
    "https://connect.stripe.com",
    "https://billing.stripe.com",
    "https://api.razorpay.com",
)

PERMISSIONS_POLICY = ", ".join(
    (
        "accelerometer=()",
        "camera=(self)",  # the live room
        "display-capture=(self)",  # screen sharing in the live room
        "geolocation=()",
        "gyroscope=()",
        "magnetometer=()",
        "microphone=(self)",  # the live room
        "payment=()",
        "usb=()",
    )
)


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme in {"http", "https"} and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def _standin_origins() -> list[str]:
    """The payment stand-ins' hosted pages (tests and local stand-ins only; production has none)."""
    bases = [*getattr(settings, "BILLING_API_BASES", {}).values()]
    bases.append(getattr(settings, "PLATFORM_STRIPE", {}).get("api_base", ""))
    return [origin for origin in (_origin(base) for base in bases if base) if origin]


def _media_origins() -> list[str]:
    """Where uploaded files are loaded from besides this host: with media in S3 (config/settings/
    storage.py) /media/ redirects to a signed URL of the bucket, and CSP follows the redirect.
    CSP_MEDIA_ORIGINS, when set, replaces the derived list (a CDN in front of the bucket, say)."""
    explicit = getattr(settings, "CSP_MEDIA_ORIGINS", None)
    if explicit is not None:
        return list(explicit)
    storage = settings.STORAGES.get("default", {})
    if not storage.get("BACKEND", "").endswith("S3Storage"):
        return []
    options = storage.get("OPTIONS", {})
    bucket, region = options.get("bucket_name") or "", options.get("region_name") or ""
    path_style = options.get("addressing_style") == "path"
    endpoint = _origin(options.get("endpoint_url") or "")
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        return [endpoint] if path_style else [f"{scheme}://{bucket}.{host}", endpoint]
    hosts = [f"s3.{region}.amazonaws.com", "s3.amazonaws.com"] if region else ["s3.amazonaws.com"]
    return [f"https://{host}" if path_style else f"https://{bucket}.{host}" for host in hosts]


def content_security_policy(request: HttpRequest, response: HttpResponse) -> str:
    try:
        host = request.get_host()
    except DisallowedHost:
        host = ""
    port = split_domain_port(host)[1] if host else ""
    port_suffix = f":{port}" if port else ""
    scheme = "https" if request.is_secure() else "http"
    platform = settings.PLATFORM_DOMAIN
    # Sign-up on the platform site hands over to the new institution's host.
    site_origins = [f"{scheme}://{platform}{port_suffix}", f"{scheme}://*.{platform}{port_suffix}"]
    # The live room's and the notification bell's sockets, on this host only ('self' covers ws/wss
    # of the same host in CSP level 3; older browsers need it spelled out).
    sockets = [f"{'wss' if request.is_secure() else 'ws'}://{host}"] if host else []
    media = _media_origins()
    # Only the branding preview is framed, by its own origin (xframe_options_sameorigin).
    framed_by_self = response.get("X-Frame-Options", "").upper() == "SAMEORIGIN"
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # Brand colours and fonts are CSS variables in a <style> element; some templates use style=.
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:", *media],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'", *sockets],
        "media-src": ["'self'", "blob:", *media],
        "frame-src": ["'self'"],
        "frame-ancestors": ["'self'"] if framed_by_self else ["'none'"],
        "form-action": ["'self'", *site_origins, *PAYMENT_FORM_ORIGINS, *_standin_origins()],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
    }
    report_uri = getattr(settings, "CSP_REPORT_URI", "")
    policy = "; ".join(f"{name} {' '.join(dict.fromkeys(values))}" for name, values in directives.items())
    return f"{policy}; report-uri {report_uri}" if report_uri else policy


class SecurityHeadersMiddleware:
    """Content-Security-Policy and Permissions-Policy on every response that does not set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy(request, response)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response
