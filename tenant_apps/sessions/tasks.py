"""Background work of mentoring; each task runs in the schema of the institution that sent it."""

from celery import shared_task

from .models import Booking


@shared_task(acks_late=True)
def hold_expire(booking_id: int) -> None:
    """Sent with an ETA at the end of a payment hold: frees the slot if it is still unpaid."""
    from .bookings import booking_expire_hold

    booking = Booking.objects.filter(pk=booking_id).first()
    if booking is not None:
        booking_expire_hold(booking=booking)
