"""Telling people what happens: one Notification per recipient, delivered on the channels they
chose (in the app at once, email and SMS by the worker), each delivery recorded once.

    notify()  ──commit──▶  push to open pages (in-app)
                     └──▶  deliver task ──▶ email / SMS, one Delivery row per channel
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tenant_apps.accounts.models import User

from .models import BUILT_IN_DEFAULTS, Channel, Delivery, Event, InstitutionDefault, Notification, Preference
from .push import push_to_users

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """What a notification says; `url` is a path on the institution's site."""

    title: str
    body: str = ""
    url: str = ""
    data: dict | None = None


# --- Who gets what, where --------------------------------------------------------------------------


def channels_for(*, user: User, event: str, defaults: dict[str, set[str]] | None = None) -> set[str]:
    """The person's choice for the event, else the institution's default, else the built-in one.
    SMS only to a person who opted in with a valid number."""
    preference = Preference.objects.filter(user=user, event=event).first()
    if preference is not None:
        chosen = {c for c in Channel.values if getattr(preference, c)}
    else:
        chosen = (defaults or institution_defaults()).get(event, set(BUILT_IN_DEFAULTS[event]))
    if Channel.SMS in chosen and not user.can_receive_sms:
        chosen = chosen - {Channel.SMS}
    return set(chosen)


def institution_defaults() -> dict[str, set[str]]:
    """Every event's default channels for the current institution (one query)."""
    chosen = {event: set(channels) for event, channels in BUILT_IN_DEFAULTS.items()}
    for row in InstitutionDefault.objects.all():
        chosen[row.event] = {c for c in Channel.values if getattr(row, c)}
    return chosen


# --- Sending ---------------------------------------------------------------------------------------


def notify(
    *, event: str, recipients: Iterable[User], message: Message, dedupe_key: str = ""
) -> list[Notification]:
    """Record the event for each (active) recipient and deliver it after commit.

    With a `dedupe_key`, a recipient who already has that notification gets nothing new: a
    second run of the same reminder changes nothing.
    """
    assert event in Event.values, event
    defaults = institution_defaults()
    made: list[Notification] = []
    for user in {u.pk: u for u in recipients if u is not None and u.is_active}.values():
        channels = channels_for(user=user, event=event, defaults=defaults)
        if not channels:
            continue
        try:
            with transaction.atomic():
                notification = Notification.objects.create(
                    recipient=user,
                    event=event,
                    title=message.title[:200],
                    body=message.body,
                    url=message.url,
                    data=message.data or {},
                    dedupe_key=dedupe_key,
                )
                Delivery.objects.bulk_create(
                    Delivery(notification=notification, channel=channel)
                    for channel in sorted(channels - {Channel.IN_APP})
                )
        except IntegrityError:
            if dedupe_key and Notification.objects.filter(recipient=user, dedupe_key=dedupe_key).exists():
                continue  # already told
            raise
        made.append(notification)
        if Channel.IN_APP in channels:
            _push(notification)
        if channels - {Channel.IN_APP}:
            from .tasks import deliver

            notification_id = notification.pk
            transaction.on_commit(lambda notification_id=notification_id: deliver.delay(notification_id))
    return made


def _push(notification: Notification) -> None:
    push_to_users(
        user_ids=[notification.recipient_id],
        event="notification",
        payload={
            "id": notification.pk,
            "event": notification.event,
            "title": notification.title,
            "body": notification.body,
            "url": notification.url,
        },
    )


def deliver(*, notification: Notification) -> None:
    """Send each pending delivery of a notification (the worker's task; safe to run twice)."""
    for delivery_id in notification.deliveries.filter(status=Delivery.Status.PENDING).values_list(
        "pk", flat=True
    ):
        delivery_send(delivery_id=delivery_id)


def delivery_send(*, delivery_id: int) -> Delivery:
    """Send one delivery exactly once: the row stays locked while it is sent, and is marked sent
    in the same transaction. A worker that dies mid-way commits nothing, so the redelivered task
    finds it still pending; a second worker waits on the lock and then finds it sent."""
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update().select_related("notification__recipient").get(pk=delivery_id)
        )
        if delivery.status != Delivery.Status.PENDING:
            return delivery
        delivery.attempts += 1
        notification, user = delivery.notification, delivery.notification.recipient
        try:
            if delivery.channel == Channel.EMAIL:
                from .email import email_send

                delivery.to = user.email
                delivery.provider_id = email_send(notification=notification)[:120]
                delivery.status = Delivery.Status.SENT
            elif delivery.channel == Channel.SMS:
                _send_sms(delivery, notification, user)
        except _Skip as skip:
            delivery.status, delivery.error = Delivery.Status.SKIPPED, str(skip)[:300]
        except Exception as error:
            logger.warning("delivery %s on %s failed: %s", delivery.pk, delivery.channel, error)
            delivery.status, delivery.error = Delivery.Status.FAILED, str(error)[:300]
        delivery.save()
        if delivery.channel == Channel.SMS and delivery.status in (
            Delivery.Status.FAILED,
            Delivery.Status.SKIPPED,
        ):
            sms_fallback(delivery=delivery)
    return delivery


class _Skip(Exception):
    pass


def _send_sms(delivery: Delivery, notification: Notification, user: User) -> None:
    from .sms import SmsError, sms_send

    if not user.can_receive_sms:
        raise _Skip("The person has not opted in to SMS.")
    delivery.to = user.phone
    body = f"{connection.tenant.name}: {notification.title}"
    if notification.url:
        from tenant_apps.sessions.calendar import site_url

        body += f" {site_url(notification.url)}"
    try:
        result = sms_send(to=user.phone, body=body[:600], status_callback=_status_callback_url())
    except SmsError as error:
        raise RuntimeError(error.message) from None
    delivery.provider_id, delivery.provider_status = result.sid, result.status
    delivery.status = Delivery.Status.SENT


def _status_callback_url() -> str:
    from django.urls import reverse

    from tenant_apps.sessions.calendar import site_url

    return site_url(reverse("notifications:twilio_status"))


def sms_fallback(*, delivery: Delivery) -> Delivery | None:
    """An SMS that could not go (or was reported undelivered) goes by email instead, once."""
    notification = delivery.notification
    fallback, created = Delivery.objects.get_or_create(notification=notification, channel=Channel.EMAIL)
    if not created:
        return None  # the email was part of the plan anyway, or already sent
    from .tasks import deliver_one

    transaction.on_commit(lambda: deliver_one.delay(fallback.pk))
    return fallback


def sms_status(*, provider_id: str, status: str, error_code: str = "") -> Delivery | None:
    """Twilio's status callback: record the final status; an undelivered SMS falls back to email."""
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update().filter(channel=Channel.SMS, provider_id=provider_id).first()
        )
        if delivery is None:
            return None
        delivery.provider_status = status[:30]
        if status == "delivered":
            delivery.status = Delivery.Status.DELIVERED
        elif status in ("failed", "undelivered"):
            delivery.status = Delivery.Status.FAILED
            delivery.error = f"Twilio reported {status}{f' ({error_code})' if error_code else ''}."
        delivery.save()
        if delivery.status == Delivery.Status.FAILED:
            sms_fallback(delivery=delivery)
    return delivery


def sms_opt_out(*, phone: str) -> int:
    """A STOP reply: nobody with this number gets SMS any more (Twilio blocks them too)."""
    return User.objects.filter(phone=phone, sms_opt_in=True).update(sms_opt_in=False)


# --- The notification centre -------------------------------------------------------------------------


def unread_count(*, user: User) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def mark_read(*, user: User, notification_ids: Iterable[int] | None = None) -> int:
    """Mark some (or all) of a person's notifications read; another person's ids change nothing."""
    unread = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if notification_ids is not None:
        unread = unread.filter(pk__in=list(notification_ids))
    return unread.update(read_at=timezone.now())
