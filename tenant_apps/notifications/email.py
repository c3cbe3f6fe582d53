"""Notification emails: one message per notification, sent in the institution's name and colours,
with a text and an HTML body, and the session's calendar invitation when a booking is confirmed or
moved.

Runs in the institution's schema (`connection.tenant`), in the worker that delivers the
notification (services.delivery_send).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import formataddr, parseaddr
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, make_msgid
from django.core.mail.message import SafeMIMEText
from django.db import connection
from django.template.loader import render_to_string
from django.urls import reverse
from icalendar import Calendar

from tenant_apps.accounts.models import User
from tenant_apps.sessions.calendar import booking_ics, site_url
from tenant_apps.sessions.models import Booking
from tenants.branding import branding_for

from .models import Event, Notification

HTML_TEMPLATE = "notifications/email/base.html"
TEXT_TEMPLATE = "notifications/email/base.txt"

# Events whose email carries the session as a calendar invitation (.ics).
INVITE_EVENTS = frozenset({Event.BOOKING_CONFIRMED, Event.BOOKING_RESCHEDULED})
# Events about one booking: the email shows the session's details.
SESSION_EVENTS = frozenset(
    {
        Event.BOOKING_REQUESTED,
        Event.BOOKING_CONFIRMED,
        Event.BOOKING_DECLINED,
        Event.BOOKING_CANCELLED,
        Event.BOOKING_RESCHEDULED,
        Event.REMINDER_24H,
        Event.REMINDER_1H,
        Event.SESSION_STARTING,
    }
)
BUTTON_LABELS = {event: "View the session" for event in SESSION_EVENTS} | {
    Event.PAYMENT_RECEIVED: "View the payment",
    Event.PAYMENT_REFUNDED: "View the refund",
    Event.REVIEW_REQUESTED: "Write a review",
    Event.PAYOUT_SENT: "View your earnings",
}
DEFAULT_BUTTON_LABEL = "View details"


@dataclass(frozen=True)
class SessionDetails:
    """A booking as its email shows it to one participant, in that person's time zone."""

    with_name: str
    starts_at: datetime
    ends_at: datetime
    minutes: int
    topic: str
    zone: str


def email_send(*, notification: Notification) -> str:
    """Send the notification's email to its recipient; returns the Message-ID it went with."""
    message = email_message(notification=notification)
    message.send()
    return message.extra_headers["Message-ID"]


def email_message(*, notification: Notification) -> EmailMultiAlternatives:
    """The notification's email, ready to send (its Message-ID set)."""
    recipient = notification.recipient
    if not recipient.email:
        raise ValueError("The person has no email address.")
    institution = connection.tenant
    sender_address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    message_id = make_msgid(domain=sender_address.rpartition("@")[2] or None)
    booking = _booking_of(notification)
    context = _context(notification=notification, booking=booking)
    message = EmailMultiAlternatives(
        subject=_one_line(notification.title),
        body=render_to_string(TEXT_TEMPLATE, context),
        from_email=formataddr((_one_line(institution.name), sender_address)),
        to=[formataddr((_one_line(recipient.full_name), recipient.email))],
        headers={
            "Message-ID": message_id,
            # An automatic message (RFC 3834): out-of-office replies are not sent back to it.
            "Auto-Submitted": "auto-generated",
        },
    )
    message.attach_alternative(render_to_string(HTML_TEMPLATE, context), "text/html")
    if booking is not None and notification.event in INVITE_EVENTS:
        message.attach(_invitation(booking))
    return message


def _context(*, notification: Notification, booking: Booking | None) -> dict:
    branding = branding_for(connection.tenant)
    site = site_url("")  # the institution's address, looked up once
    return {
        "notification": notification,
        "recipient": notification.recipient,
        "event_label": notification.get_event_display(),
        "branding": branding,
        # The institution's theme's email layouts, which the two templates extend.
        "theme_email_layout": branding.email_layout,
        "theme_email_layout_txt": branding.email_layout_txt,
        "logo_url": _absolute(site, branding.logo_url),  # media URLs are paths on the site
        "action_url": _absolute(site, notification.url),
        "action_label": BUTTON_LABELS.get(notification.event, DEFAULT_BUTTON_LABEL),
        "preferences_url": site + reverse("notifications:preferences"),
        "session": _session_details(booking, notification.recipient) if booking is not None else None,
        "invitation_attached": booking is not None and notification.event in INVITE_EVENTS,
    }


def _booking_of(notification: Notification) -> Booking | None:
    if notification.event not in SESSION_EVENTS:
        return None
    try:
        booking_id = int((notification.data or {}).get("booking_id"))
    except (TypeError, ValueError):
        return None
    return Booking.objects.select_related("mentor__user", "learner").filter(pk=booking_id).first()


def _session_details(booking: Booking, recipient: User) -> SessionDetails:
    mentor = booking.mentor.user
    other = booking.learner if recipient.pk == mentor.pk else mentor
    return SessionDetails(
        with_name=other.full_name or other.email,
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        minutes=int((booking.ends_at - booking.starts_at).total_seconds() // 60),
        topic=booking.topic,
        zone=_zone_name(recipient.timezone),
    )


def _zone_name(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name


def _invitation(booking: Booking) -> SafeMIMEText:
    """The session's .ics as an iTIP request (RFC 6047: the METHOD inside matches the part's)."""
    calendar = Calendar.from_ical(booking_ics(booking=booking))
    calendar.method = "REQUEST"
    part = SafeMIMEText(calendar.to_ical().decode(), "calendar", "utf-8")
    part.set_param("method", "REQUEST")
    part.add_header("Content-Disposition", "attachment", filename=f"session-{booking.pk}.ics")
    return part


def _absolute(site: str, url: str) -> str:
    if not url or url.startswith(("https://", "http://")):
        return url
    return f"{site}/{url.lstrip('/')}"


def _one_line(text: str) -> str:
    """Header values may not span lines."""
    return " ".join(text.split())
