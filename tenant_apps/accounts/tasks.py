"""Background work of accounts; each task runs in the schema of the institution that sent it
(tenant-schemas-celery), takes ids, and is safe to run twice."""

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def personal_export_run(export_id: int) -> None:
    """Prepare a large account's "Download my data" zip and email the link (data_rights.py)."""
    from tenant_apps.admin_console.exports import export_failed

    from .data_rights import personal_export_run as run

    try:
        run(export_id=export_id)
    except Exception:
        export_failed(export_id=export_id, error="Preparing your data failed; please ask again.")
        raise
