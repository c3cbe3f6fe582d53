"""Data exports kept for download: an institution's everything (its schema and media, for its
administrators) and a person's own data when it is too large to stream while they wait.

The file is written by the worker under the institution's own media prefix, in `exports/` (which
no public media URL serves and which backups leave out), handed out only by a view that checks who
is asking, and deleted when its download period ends (shared/core/expiry.py).
"""

from __future__ import annotations

import logging
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.http import FileResponse, HttpResponse
from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.core.errors import ApplicationError
from shared.core.expiry import file_expire_at, file_forget
from shared.core.storage import redirect_to_signed_url, signed_media_url
from tenant_apps.accounts.models import User

from .audit import audit_record
from .models import DataExport

logger = logging.getLogger(__name__)

EXPORTS_PREFIX = "exports/"
# An export still queued or running after this long is taken for dead (its worker was killed
# before it could record a failure) and no longer blocks a new one.
STALE_AFTER = timedelta(hours=2)


# --- Files ---------------------------------------------------------------------------------------


def export_available(export: DataExport) -> bool:
    """Ready, with a file, and within its download period."""
    return (
        export.status == DataExport.Status.READY
        and bool(export.file_name)
        and export.expires_at is not None
        and export.expires_at > timezone.now()
    )


def export_store(*, export: DataExport, source: File, name: str) -> DataExport:
    """Keep `source` as the export's file, downloadable for DATA_EXPORT_DOWNLOAD_DAYS."""
    folder = f"{EXPORTS_PREFIX}{export.kind}/"
    stored = default_storage.save(f"{folder}{secrets.token_urlsafe(12)}-{name}", source)
    now = timezone.now()
    expires_at = now + timedelta(days=settings.DATA_EXPORT_DOWNLOAD_DAYS)
    DataExport.objects.filter(pk=export.pk).update(
        status=DataExport.Status.READY,
        file_name=stored,
        size=default_storage.size(stored),
        finished_at=now,
        expires_at=expires_at,
        error="",
    )
    file_expire_at(name=stored, expires_at=expires_at)
    export.refresh_from_db()
    return export


def export_file_delete(export: DataExport) -> None:
    """Delete the export's file now (after commit) and forget its expiry."""
    name = export.file_name
    if not name:
        return
    file_forget(name=name)
    transaction.on_commit(lambda: default_storage.delete(name))


def export_download(export: DataExport, *, download_name: str) -> HttpResponse:
    """The export's file as an attachment: straight from disk, or a short-lived signed S3 link."""
    if (signed := signed_media_url(export.file_name, download_name=download_name)) is not None:
        return redirect_to_signed_url(signed)
    response = FileResponse(
        default_storage.open(export.file_name, "rb"), as_attachment=True, filename=download_name
    )
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def export_failed(*, export_id: int, error: str) -> None:
    DataExport.objects.filter(pk=export_id).exclude(status=DataExport.Status.READY).update(
        status=DataExport.Status.FAILED, error=error[:300], finished_at=timezone.now()
    )


# --- The institution's everything ----------------------------------------------------------------


def institution_exports() -> list[DataExport]:
    return list(
        DataExport.objects.filter(kind=DataExport.Kind.INSTITUTION).select_related("requested_by")[:20]
    )


@transaction.atomic
def institution_export_request(*, actor: User) -> DataExport:
    """An administrator asks for everything; the worker builds it (institution_export_run)."""
    if not actor.is_tenant_admin:
        raise ApplicationError("Only the institution's administrators can export everything.", status=403)
    pending = DataExport.objects.select_for_update().filter(
        kind=DataExport.Kind.INSTITUTION,
        status__in=[DataExport.Status.QUEUED, DataExport.Status.RUNNING],
    )
    if pending.filter(created_at__gt=timezone.now() - STALE_AFTER).exists():
        raise ApplicationError(
            "An export is already being prepared. It appears below when it is ready.",
            code="export_in_progress",
            status=409,
        )
    pending.update(status=DataExport.Status.FAILED, error="The export did not finish; ask again.")
    export = DataExport.objects.create(kind=DataExport.Kind.INSTITUTION, requested_by=actor)
    audit_record(actor=actor, action="export.institution_requested", target=f"export {export.pk}")
    from .tasks import institution_export_run as task

    export_id = export.pk
    transaction.on_commit(lambda: task.delay(export_id))
    return export


def institution_export_run(*, export_id: int) -> DataExport | None:
    """Build the institution's archive (tenants/backup.py: pg_dump of its schema, its public rows,
    its media, a manifest) and keep it for download. Safe to run twice: a ready export is left."""
    from tenants.backup import institution_backup

    institution = connection.tenant
    export = DataExport.objects.filter(pk=export_id, kind=DataExport.Kind.INSTITUTION).first()
    if export is None or export.status == DataExport.Status.READY:
        return export
    DataExport.objects.filter(pk=export_id).update(status=DataExport.Status.RUNNING)
    with tempfile.TemporaryDirectory(prefix="peerlearn-export-") as work:
        try:
            result = institution_backup(institution.slug, Path(work))
        finally:
            connection.set_tenant(institution)  # the backup reads the public schema
        name = f"{institution.slug}-everything-{timezone.now():%Y%m%d-%H%M}.tar"
        with tenant_context(institution), result.path.open("rb") as archive:
            export = export_store(export=export, source=File(archive), name=name)
    logger.info("institution export %s ready (%s bytes)", export.pk, export.size)
    return export
