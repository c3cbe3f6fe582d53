"""The institution admins' console: the audit log, and bulk member imports."""

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """Who changed which setting, role or member, who signed in or failed to, and when (append-only)."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200, help_text="The actor's name and email at the time.")
    action = models.CharField(max_length=60, db_index=True)
    target = models.CharField(
        max_length=200, blank=True, help_text="What was changed, e.g. a member's email."
    )
    changes = models.JSONField(default=dict, blank=True, help_text="field → [before, after]")
    address = models.GenericIPAddressField(
        null=True, blank=True, help_text="The client address of the request that made the change."
    )
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.target}"


class MemberImport(models.Model):
    """A CSV of learners and mentors being imported by the worker, with its progress and report."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Importing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    file_name = models.CharField(max_length=200)
    content = models.TextField(help_text="The uploaded CSV, decoded.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{row, email, message}]")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.status})"


class DataExport(models.Model):
    """A download of data: a person's own ("personal", a zip of JSON and their files) or the whole
    institution's ("institution", its schema and media: tenants/backup.py). Built by the worker when
    large; the file lives under the institution's media prefix until `expires_at`."""

    class Kind(models.TextChoices):
        PERSONAL = "personal", "My data"
        INSTITUTION = "institution", "Everything"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Preparing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="data_exports"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    file_name = models.CharField(
        max_length=300, blank=True, help_text="The file in the institution's storage (none when streamed)."
    )
    size = models.BigIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["kind", "requested_by", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} export {self.pk} ({self.status})"
