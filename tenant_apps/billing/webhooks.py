"""Receiving webhooks: verify with the provider's library, store once by event id, then apply.

An invalid signature stores nothing (the view answers 400). A replayed event id stores and does
nothing. An event that refers to something not recorded yet (it overtook our own write) is kept
with its error and retried by a delayed task (`tasks.webhook_event_retry`) up to
BILLING_WEBHOOK_MAX_ATTEMPTS times.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from shared.core.errors import ApplicationError

from .gateways import gateway_for
from .gateways.base import EventKind, GatewayError, GatewayEvent, SignatureError
from .models import Gateways, WebhookEvent
from .services import EventNotReady, webhook_apply

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    event: WebhookEvent
    replay: bool


def webhook_receive(*, gateway: str, body: bytes, headers: Mapping[str, str]) -> Received:
    if gateway not in (Gateways.STRIPE, Gateways.RAZORPAY, Gateways.SANDBOX):
        raise ApplicationError("No such webhook endpoint.", code="not_found", status=404)
    try:
        parsed = gateway_for(gateway).parse_webhook(body=body, headers=headers)
    except SignatureError:
        raise ApplicationError(
            "The webhook signature is not valid.", code="bad_signature", status=400
        ) from None
    except GatewayError as error:  # not configured for this institution: nothing could verify it
        raise ApplicationError(error.message, code="not_configured", status=400) from None
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(
                gateway=gateway,
                event_id=parsed.event_id,
                type=parsed.type[:80],
                kind=parsed.kind,
                payload=parsed.payload,
                details=_details(parsed),
                provider_created_at=parsed.created,
            )
    except IntegrityError:
        event = WebhookEvent.objects.get(gateway=gateway, event_id=parsed.event_id)
        if event.processed_at is None:  # stored, but not applied yet: a redelivery is a retry
            webhook_process(event=event, parsed=parsed)
            event.refresh_from_db()
        return Received(event, replay=True)
    webhook_process(event=event, parsed=parsed)
    event.refresh_from_db()
    return Received(event, replay=False)


def webhook_process(*, event: WebhookEvent, parsed: GatewayEvent | None = None) -> bool:
    """Apply a stored event (once); returns whether it is done."""
    if event.processed_at is not None:
        return True
    if parsed is None:  # a retry: parse the stored payload again (its signature was checked on arrival)
        parsed = _reparse(event)
    try:
        with transaction.atomic():
            locked = WebhookEvent.objects.select_for_update().get(pk=event.pk)
            if locked.processed_at is not None:
                return True
            webhook_apply(gateway=event.gateway, event=parsed)
            locked.processed_at = timezone.now()
            locked.attempts += 1
            locked.error = ""
            locked.save(update_fields=["processed_at", "attempts", "error"])
            return True
    except (EventNotReady, ApplicationError) as error:
        message = getattr(error, "message", str(error))
    except GatewayError as error:
        message = error.message
    except OperationalError as error:  # e.g. a deadlock or a lost connection: try again later
        logger.warning("webhook %s %s failed: %s", event.gateway, event.event_id, error)
        message = "A database error interrupted it; it will be retried."
    attempts = event.attempts + 1
    WebhookEvent.objects.filter(pk=event.pk).update(attempts=attempts, error=message[:300])
    logger.info("webhook %s %s not applied yet: %s", event.gateway, event.event_id, message)
    if attempts < settings.BILLING_WEBHOOK_MAX_ATTEMPTS:
        from .tasks import webhook_event_retry

        event_id = event.pk
        transaction.on_commit(
            lambda: webhook_event_retry.apply_async(
                args=[event_id], countdown=settings.BILLING_WEBHOOK_RETRY_SECONDS
            )
        )
    return False


DETAIL_FIELDS = (
    "reference",
    "provider_ref",
    "provider_payment_id",
    "provider_refund_id",
    "provider_transfer_id",
    "account_id",
    "account_ready",
    "amount_minor",
    "currency",
    "fee_minor",
)


def _details(parsed: GatewayEvent) -> dict:
    return {name: getattr(parsed, name) for name in DETAIL_FIELDS}


def _reparse(event: WebhookEvent) -> GatewayEvent:
    return GatewayEvent(
        event_id=event.event_id,
        type=event.type,
        kind=EventKind(event.kind),
        created=event.provider_created_at,
        payload=event.payload,
        **{name: value for name, value in event.details.items() if name in DETAIL_FIELDS},
    )


def webhook_events_retry() -> int:
    """Retry now every event of this institution still waiting (oldest first); how many are done."""
    due = WebhookEvent.objects.filter(
        processed_at__isnull=True, attempts__lt=settings.BILLING_WEBHOOK_MAX_ATTEMPTS
    ).order_by("received_at")[:100]
    return sum(1 for event in due if webhook_process(event=event))
