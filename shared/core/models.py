"""Platform-wide rows of the public schema that belong to no single feature."""

from django.db import models


class OutboxTask(models.Model):
    """A Celery task the broker could not take when it was enqueued (Redis was down): kept here,
    in Postgres, until `outbox_flush` hands it to the broker (shared/core/outbox.py).

    Rows of every institution share this public table, so the periodic flush costs in proportion to
    the tasks waiting, not to the number of institutions."""

    task_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    schema_name = models.CharField(max_length=63, help_text="The institution the task runs for.")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    eta = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.name} for {self.schema_name}"


class ExpiringFile(models.Model):
    """A file of one institution's storage to delete at `expires_at` (a data export's download).

    One public table for every institution, read through an index on the time, so the hourly
    sweep costs in proportion to the files that are due (shared/core/tasks.py)."""

    schema_name = models.CharField(max_length=63)
    name = models.CharField(max_length=300, help_text="The file's name in the institution's storage.")
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["schema_name", "name"], name="expiring_file_once")]

    def __str__(self) -> str:
        return f"{self.schema_name}/{self.name} until {self.expires_at:%Y-%m-%d %H:%M}"
