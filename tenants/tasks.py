"""Periodic work on institutions and their domains (public schema)."""

from celery import shared_task


@shared_task(acks_late=True)
def domains_verify_pending() -> int:
    """Beat: look for the TXT records of domains still waiting to be verified."""
    from .domains import domains_verify_pending as verify

    return verify()
