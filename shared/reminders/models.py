"""The one schedule of every institution's reminders, in the public schema.

A reminder is a row here (schema, session, kind, when), written by the institution's booking code
when a session is confirmed and removed when it is cancelled or moved. The scheduler's tick reads
only the rows that are due, through an index on the time, so its work grows with the reminders
that are due and not with the number of institutions (docs/notifications.md). Rows refer to the
booking by plain values: no key crosses schemas.
"""

from django.db import models
from django.db.models import Q


class DueReminder(models.Model):
    class Kind(models.TextChoices):
        DAY_BEFORE = "reminder_24h", "A day before"
        HOUR_BEFORE = "reminder_1h", "An hour before"
        STARTING = "session_starting", "Starting now"

    class Subject(models.TextChoices):
        BOOKING = "booking", "1:1 session"
        GROUP = "group", "Group session"

    schema_name = models.CharField(max_length=63)
    subject = models.CharField(max_length=10, choices=Subject.choices, default=Subject.BOOKING)
    object_id = models.BigIntegerField(help_text="The booking's or group session's id in its schema.")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    due_at = models.DateTimeField()
    starts_at = models.DateTimeField(
        help_text="The session time it reminds of (a moved session is a new row)."
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["schema_name", "subject", "object_id", "kind"], name="reminder_once_per_kind"
            )
        ]
        indexes = [
            # The tick: what is due and not done, oldest first.
            models.Index(fields=["due_at"], condition=Q(done_at__isnull=True), name="reminder_due_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.schema_name} {self.subject} {self.object_id} {self.kind} at {self.due_at:%Y-%m-%d %H:%M}"
        )
