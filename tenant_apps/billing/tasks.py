"""Background work of billing; each task runs in the schema of the institution that sent it
(tenant-schemas-celery) and takes ids, never model instances."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection
from django.template.loader import render_to_string

from .gateways.base import GatewayError

logger = logging.getLogger(__name__)

RETRY = {"autoretry_for": (GatewayError,), "retry_backoff": 5, "retry_backoff_max": 600, "max_retries": 8}


@shared_task(acks_late=True, **RETRY)
def refund_submit(refund_id: int) -> None:
    from .models import Refund
    from .services import refund_submit as submit

    refund = Refund.objects.select_related("payment").filter(pk=refund_id).first()
    if refund is not None:
        submit(refund=refund)


@shared_task(acks_late=True, **RETRY)
def payout_submit(payout_id: int) -> None:
    from .models import Payout
    from .services import payout_submit as submit

    payout = Payout.objects.filter(pk=payout_id).first()
    if payout is not None:
        submit(payout=payout)


@shared_task(acks_late=True, **RETRY)
def checkout_cancel(payment_id: int) -> None:
    """Stop a cancelled payment's checkout at the gateway, where the provider allows it."""
    from .gateways import gateway_for
    from .models import Payment

    payment = Payment.objects.filter(pk=payment_id).first()
    if payment is not None and payment.provider_ref:
        gateway_for(payment.gateway).cancel_checkout(provider_ref=payment.provider_ref)


@shared_task(acks_late=True)
def webhook_event_retry(event_id: int) -> None:
    """Apply a stored event that could not be applied on arrival; scheduled again while it waits.
    (One delayed task per waiting event: the cost follows the events, not the institutions.)"""
    from .models import WebhookEvent
    from .webhooks import webhook_process

    event = WebhookEvent.objects.filter(pk=event_id).first()
    if event is not None:
        webhook_process(event=event)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=2, max_retries=5)
def sandbox_deliver(url: str, body: str, headers: dict[str, str]) -> int:
    """The sandbox gateway's webhook delivery: a real HTTP POST to the institution's endpoint."""
    if not settings.BILLING_SANDBOX_ENABLED:
        return 0
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not a web address: {url}")
    parts = urlsplit(url)
    if parts.hostname == "localhost" or (parts.hostname or "").endswith(".localhost"):
        # Browsers resolve *.localhost to loopback; Python does not: connect there, keep the Host.
        headers = {**headers, "Host": parts.netloc}
        url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{parts.port}" if parts.port else "127.0.0.1"))
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our own site)
            return response.status
    except urllib.error.HTTPError as error:
        logger.warning("sandbox webhook to %s answered %s: %s", url, error.code, error.read()[:200])
        return error.code


@shared_task(acks_late=True)
def receipt_send(payment_id: int, refund_id: int | None = None) -> None:
    """Email the learner a receipt for a payment, or for one of its refunds."""
    from tenant_apps.sessions.calendar import site_url

    from .models import Payment
    from .receipts import receipt_context

    payment = Payment.objects.select_related("learner", "booking__mentor__user").filter(pk=payment_id).first()
    if payment is None:
        return
    from tenant_apps.accounts.data_rights import is_erased

    if is_erased(payment.learner):  # the learner deleted their account: no address to write to
        return
    refund = payment.refunds.filter(pk=refund_id).first() if refund_id else None
    context = receipt_context(payment=payment, refund=refund)
    context["receipt_url"] = site_url(context["receipt_path"])
    context["institution"] = connection.tenant
    subject = render_to_string("billing/email/receipt_subject.txt", context).strip()
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("billing/email/receipt.txt", context),
        to=[payment.learner.email],
    )
    message.attach_alternative(render_to_string("billing/email/receipt.html", context), "text/html")
    message.send()
    logger.info("receipt %s sent", json.dumps({"payment": payment.reference, "refund": refund_id}))
