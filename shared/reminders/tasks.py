"""The scheduler's tick (beat, every minute, public schema)."""

from celery import shared_task


@shared_task(acks_late=True)
def reminders_tick() -> int:
    from .services import reminders_tick as tick

    return tick()
