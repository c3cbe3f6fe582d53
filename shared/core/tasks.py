"""Platform-wide periodic work of the core app."""

from celery import shared_task


@shared_task(acks_late=True)
def outbox_flush() -> int:
    """Send the tasks that waited in the outbox while the broker was down (beat, every minute)."""
    from .outbox import outbox_flush as flush

    return flush()


@shared_task(acks_late=True)
def expired_files_sweep() -> int:
    """Delete data exports' files whose download period ended (beat, hourly)."""
    from .expiry import expired_files_sweep as sweep

    return sweep()
