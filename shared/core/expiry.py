"""Files that must disappear at a given time (data exports' downloads), whatever the institution.

`file_expire_at` records the file in the public `ExpiringFile` table; `expired_files_sweep` (beat,
hourly) deletes the due ones from their institution's storage. The sweep reads only the rows that
are due, through the index on `expires_at`: its cost follows the files, not the institutions.
Pages that hand out such a file check the time themselves, so a file is never served late even
when the sweep has not run yet.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from .models import ExpiringFile

logger = logging.getLogger(__name__)
SWEEP_BATCH = 500


def file_expire_at(*, name: str, expires_at: datetime) -> ExpiringFile:
    """Delete the current institution's file `name` at `expires_at`."""
    schema = connection.schema_name
    with schema_context("public"):
        row, _ = ExpiringFile.objects.update_or_create(
            schema_name=schema, name=name, defaults={"expires_at": expires_at}
        )
    return row


def file_forget(*, name: str) -> None:
    """The file was deleted already (with what it belonged to): nothing left to expire."""
    schema = connection.schema_name
    with schema_context("public"):
        ExpiringFile.objects.filter(schema_name=schema, name=name).delete()


def expired_files_sweep(*, now: datetime | None = None) -> int:
    """Delete every file whose time has come; returns how many."""
    now = now or timezone.now()
    done = 0
    with schema_context("public"), transaction.atomic():
        due = list(
            ExpiringFile.objects.select_for_update(skip_locked=True)
            .filter(expires_at__lte=now)
            .order_by("expires_at")[:SWEEP_BATCH]
        )
        for row in due:
            with schema_context(row.schema_name):  # the storage's prefix is the schema's
                default_storage.delete(row.name)
            row.delete()
            done += 1
    if done:
        logger.info("deleted %d expired files", done)
    return done
