"""Background work on institutions: their domains, sign-up follow-ups and the schema pool."""

from celery import shared_task


@shared_task(acks_late=True)
def domains_verify_pending() -> int:
    """Beat: look for the TXT records of domains still waiting to be verified."""
    from .domains import domains_verify_pending as verify

    return verify()


@shared_task(acks_late=True)
def admin_email_verification_send(user_id: int) -> None:
    """After sign-up, in the new institution's schema: ask its first administrator to confirm their
    address. (Sent again if a worker dies mid-task: a second copy of the same link is harmless.)"""
    from django.db import connection

    from tenant_apps.accounts.models import User
    from tenant_apps.accounts.services import email_verification_send

    user = User.objects.filter(pk=user_id).first()
    if user is not None:
        email_verification_send(user=user, institution=connection.tenant)


@shared_task(acks_late=True)
def schema_pool_fill() -> int:
    """After each sign-up and on beat: keep TENANT_SCHEMA_POOL_SIZE ready schemas (tenants/pool.py)."""
    from .pool import schema_pool_fill as fill

    return fill().created
