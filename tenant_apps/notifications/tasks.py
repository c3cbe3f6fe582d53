"""Delivering notifications and sending reminders; each task runs in the schema of the
institution that sent it (tenant-schemas-celery), takes ids, and is safe to run twice."""

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def deliver(notification_id: int) -> None:
    from .models import Notification
    from .services import deliver as deliver_all

    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is not None:
        deliver_all(notification=notification)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def deliver_one(delivery_id: int) -> None:
    from .services import delivery_send

    delivery_send(delivery_id=delivery_id)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def reminder_send(reminder_id: int) -> None:
    """One due reminder (public row id), in its institution's schema."""
    from shared.reminders.services import reminder_send as send

    send(reminder_id=reminder_id)
