"""Twilio's requests to an institution's site: message status callbacks and incoming SMS.

Both are signed by Twilio with the auth token of the account that sent (or received) the message:
X-Twilio-Signature is HMAC-SHA1 over the full public URL Twilio requested and the POST parameters.
The URL is rebuilt from the request, so behind a TLS-terminating proxy SECURE_PROXY_SSL_HEADER must
be set (config/settings/production.py) for the https URL Twilio signed to be the one checked. A
request whose signature does not verify changes nothing. Each institution checks with its own
token on its own host, so one institution's callbacks can never touch another's deliveries.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from tenant_apps.accounts.models import User

from . import services
from .sms import auth_token_for_callbacks, request_is_valid

logger = logging.getLogger(__name__)

MAX_CALLBACK_BYTES = 64 * 1024
# Twilio's default opt-out and opt-in keywords (Advanced Opt-Out's defaults).
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP"})
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _refused(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _verified(request: HttpRequest) -> JsonResponse | None:
    """None when Twilio signed this request for this institution; else the refusal to answer."""
    if len(request.body) > MAX_CALLBACK_BYTES:
        return _refused("too_large", "Callback body too large.", 413)
    signature = request.headers.get("X-Twilio-Signature", "")
    if not request_is_valid(
        url=request.build_absolute_uri(),
        params=request.POST,
        signature=signature,
        auth_token=auth_token_for_callbacks(),
    ):
        logger.warning(
            "Twilio callback to %s refused: %s",
            request.path,
            "bad signature" if signature else "no signature",
        )
        return _refused("invalid_signature", "The request signature does not verify.", 403)
    return None


@csrf_exempt  # signed by Twilio instead
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    refusal = _verified(request)
    if refusal is not None:
        return refusal
    sid = request.POST.get("MessageSid", "")
    status = request.POST.get("MessageStatus", "") or request.POST.get("SmsStatus", "")
    if not (sid and status):
        return _refused("invalid", "MessageSid and MessageStatus are required.", 400)
    delivery = services.sms_status(
        provider_id=sid, status=status, error_code=request.POST.get("ErrorCode", "")
    )
    return JsonResponse({"received": sid, "known": delivery is not None})


@csrf_exempt  # signed by Twilio instead
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    refusal = _verified(request)
    if refusal is not None:
        return refusal
    phone = request.POST.get("From", "")
    keyword = request.POST.get("Body", "").strip().upper()
    if phone and keyword in OPT_OUT_KEYWORDS:
        changed = services.sms_opt_out(phone=phone)
        logger.info("SMS opt-out by reply: %s account(s)", changed)
    elif phone and keyword in OPT_IN_KEYWORDS:
        changed = _opt_in(phone=phone)
        logger.info("SMS opt-in by reply: %s account(s)", changed)
    # Twilio answers the keywords itself; anything else gets no reply.
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


def _opt_in(*, phone: str) -> int:
    """A START reply: the people with this number get SMS again (Twilio unblocks them too)."""
    return User.objects.filter(phone=phone, sms_opt_in=False, is_active=True).update(sms_opt_in=True)


urlpatterns = [
    path("twilio/status/", twilio_status, name="twilio_status"),
    path("twilio/inbound/", twilio_inbound, name="twilio_inbound"),
]
