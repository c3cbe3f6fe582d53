"""Scheduling reminders of confirmed sessions, and the tick that sends the due ones.

The schedule is one public table (models.DueReminder). The institution's code writes it when a
session is confirmed and clears it when the session is cancelled or moved; the tick claims due
rows with `FOR UPDATE SKIP LOCKED` and enqueues one task per reminder in the institution's schema;
the task notifies with a dedupe key (booking, kind, session time), so a reminder reaches each
person once even if the tick or the task runs twice, or a worker dies mid-way (late ack).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from .models import DueReminder

logger = logging.getLogger(__name__)

K = DueReminder.Kind
OFFSETS = {K.DAY_BEFORE: timedelta(hours=24), K.HOUR_BEFORE: timedelta(hours=1), K.STARTING: timedelta(0)}
# A claimed reminder whose task never finished (its worker died before it was even received) is
# claimed again after this long.
RECLAIM_AFTER = timedelta(minutes=10)
TICK_BATCH = 1000


def reminders_schedule(
    *, subject: str, object_id: int, starts_at: datetime, now: datetime | None = None
) -> int:
    """(Re)write the reminders of a confirmed session; only the ones still ahead."""
    now = now or timezone.now()
    schema = connection.schema_name
    rows = [
        DueReminder(
            schema_name=schema,
            subject=subject,
            object_id=object_id,
            kind=kind,
            due_at=starts_at - offset,
            starts_at=starts_at,
        )
        for kind, offset in OFFSETS.items()
        if starts_at - offset > now or (kind == K.STARTING and starts_at > now - timedelta(minutes=5))
    ]
    with schema_context("public"):
        DueReminder.objects.filter(schema_name=schema, subject=subject, object_id=object_id).delete()
        DueReminder.objects.bulk_create(rows)
    return len(rows)


def reminders_clear(*, subject: str, object_id: int) -> int:
    """A cancelled or moved session keeps no reminder of its old time."""
    schema = connection.schema_name
    with schema_context("public"):
        deleted, _ = DueReminder.objects.filter(
            schema_name=schema, subject=subject, object_id=object_id, done_at__isnull=True
        ).delete()
    return deleted


def reminders_tick(*, now: datetime | None = None) -> int:
    """Claim what is due (and what was claimed long ago but never finished) and enqueue it."""
    from tenant_apps.notifications.tasks import reminder_send

    now = now or timezone.now()
    with schema_context("public"), transaction.atomic():
        due = list(
            DueReminder.objects.select_for_update(skip_locked=True)
            .filter(done_at__isnull=True, due_at__lte=now)
            .exclude(claimed_at__gt=now - RECLAIM_AFTER)
            .order_by("due_at")
            .values_list("pk", "schema_name")[:TICK_BATCH]
        )
        if not due:
            return 0
        DueReminder.objects.filter(pk__in=[pk for pk, _ in due]).update(claimed_at=now)

        def enqueue() -> None:
            for pk, schema in due:
                with schema_context(schema):  # the task carries the schema it runs in
                    reminder_send.delay(pk)

        transaction.on_commit(enqueue)
    return len(due)


def reminder_send(*, reminder_id: int) -> None:
    """Send one reminder, in the institution's schema (the task's). Safe to run twice."""
    from tenant_apps.notifications.events import session_reminder

    schema = connection.schema_name
    with schema_context("public"):
        reminder = DueReminder.objects.filter(pk=reminder_id, schema_name=schema).first()
    if reminder is None or reminder.done_at is not None:
        return
    session_reminder(
        subject=reminder.subject,
        object_id=reminder.object_id,
        kind=reminder.kind,
        starts_at=reminder.starts_at,
    )
    with schema_context("public"):
        DueReminder.objects.filter(pk=reminder_id).update(done_at=timezone.now())
