"""Background work of the admin console; each task runs in the schema of the institution that
sent it (tenant-schemas-celery), takes ids, and is safe to run twice."""

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def member_import_run(import_id: int) -> None:
    """Create the accounts of an uploaded CSV, chunk by chunk (see members.member_import_process)."""
    from .members import member_import_fail, member_import_process

    try:
        member_import_process(import_id=import_id)
    except Exception:
        member_import_fail(import_id=import_id)
        raise


@shared_task(acks_late=True, reject_on_worker_lost=True)
def institution_export_run(export_id: int) -> None:
    """Build an administrator's "Export everything" archive (exports.institution_export_run)."""
    from tenants.backup import BackupError

    from .exports import export_failed
    from .exports import institution_export_run as run

    try:
        run(export_id=export_id)
    except BackupError as error:  # an operator's problem (no pg_dump, …): recorded, not retried
        export_failed(export_id=export_id, error=str(error))
    except Exception:
        export_failed(export_id=export_id, error="The export failed; ask again, or contact support.")
        raise
