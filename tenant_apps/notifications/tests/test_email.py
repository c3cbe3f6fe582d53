"""Notification emails over real SMTP: sent in the institution's name and colours, with a text and
an HTML body, absolute links, and the session's calendar invitation for a confirmed or moved booking."""

import io
from datetime import timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django_tenants.utils import tenant_context
from icalendar import Calendar
from PIL import Image

from shared.core.testing import host_of
from tenant_apps.notifications import services
from tenant_apps.notifications.email import email_send
from tenant_apps.notifications.models import Channel, Delivery, Event, Notification
from tenant_apps.notifications.services import Message
from tenant_apps.sessions.bookings import booking_approve
from tenant_apps.sessions.models import Booking
from tenant_apps.sessions.tests.factories import make_booking, make_learner, make_mentor, next_weekday_at

# The session-scoped SMTP server (until the root conftest loads it as a plugin).

NEW_YORK = "America/New_York"
TOKYO = "Asia/Tokyo"
TEAL = "#0f766e"
CRIMSON = "#b91c1c"


@pytest.fixture
def smtp(settings, smtp_standin):
    """Django's SMTP backend pointed at the local server, which starts each test empty."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_standin.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    smtp_standin.clear()
    return smtp_standin


def site(institution, path: str) -> str:
    return f"{settings.SITE_SCHEME}://{host_of(institution)}{settings.SITE_PORT_SUFFIX}{path}"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (15, 118, 110)).save(buffer, format="PNG")
    return buffer.getvalue()


class Links(HTMLParser):
    """The links and images of an HTML body."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self.hrefs.append(attrs.get("href", ""))
        elif tag == "img":
            self.images.append(attrs.get("src", ""))


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML bodies (with the line ends they had before SMTP)."""
    return tuple(
        message.get_body((subtype,)).get_content().replace("\r\n", "\n") for subtype in ("plain", "html")
    )


def calendars(message: EmailMessage) -> list[EmailMessage]:
    return [part for part in message.walk() if part.get_content_type() == "text/calendar"]


def send(institution, *, event: str, recipient, message: Message) -> tuple[str, Notification]:
    with tenant_context(institution):
        (notification,) = services.notify(event=event, recipients=[recipient], message=message)
        return email_send(notification=notification), notification


@pytest.fixture
def scene(institution_a):
    """A New York mentor, a learner in Tokyo, a confirmed hour-long session; A in teal with a logo."""
    with tenant_context(institution_a):
        institution_a.primary_color = TEAL
        institution_a.logo.save("crest.png", ContentFile(png()), save=False)
        institution_a.save()
    mentor = make_mentor(institution_a, email="mo@example.org", full_name="Mo Mentor", timezone_name=NEW_YORK)
    learner = make_learner(institution_a, email="lee@example.org", full_name="Lee Learner", timezone=TOKYO)
    starts_at = next_weekday_at(10, tz=NEW_YORK)
    with tenant_context(institution_a):
        booking = make_booking(
            mentor, learner, starts_at, minutes=60, topic="Career change into data science"
        )
    return {"mentor": mentor, "learner": learner, "booking": booking, "starts_at": starts_at}


def confirmed(booking) -> Message:
    return Message(
        title="Your session with Mo Mentor is confirmed",
        body="See you there.\nBring your questions.",
        url=f"/sessions/{booking.pk}/",
        data={"booking_id": booking.pk},
    )


# --- A confirmed session ---------------------------------------------------------------------------


def test_a_confirmed_session_is_mailed_in_the_institutions_brand_with_its_invitation(
    institution_a, scene, smtp
):
    booking, learner = scene["booking"], scene["learner"]
    with tenant_context(institution_a):
        (notification,) = services.notify(
            event=Event.BOOKING_CONFIRMED, recipients=[learner], message=confirmed(booking)
        )
        email = notification.deliveries.get(channel=Channel.EMAIL)
        delivery = services.delivery_send(delivery_id=email.pk)
    assert (delivery.status, delivery.error, delivery.to) == (Delivery.Status.SENT, "", "lee@example.org")

    (message,) = smtp.messages
    (envelope,) = smtp.envelopes
    assert envelope.rcpt_tos == ("lee@example.org",)
    assert message["Message-ID"] == delivery.provider_id
    assert message["Subject"] == "Your session with Mo Mentor is confirmed"
    sender = message["From"].addresses[0]
    assert sender.display_name == institution_a.name
    assert sender.addr_spec == envelope.mail_from == parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    assert message["To"].addresses[0].addr_spec == "lee@example.org"
    assert message["Auto-Submitted"] == "auto-generated"

    text, html = parts(message)
    session_link = site(institution_a, f"/sessions/{booking.pk}/")
    preferences = site(institution_a, "/notifications/preferences/")
    # Each institution's files are under its own schema's folder.
    logo = site(institution_a, f"/media/{institution_a.schema_name}/{institution_a.logo.name}")

    assert "Hello Lee Learner," in text
    assert "Your session with Mo Mentor is confirmed" in text
    assert "See you there.\nBring your questions." in text
    assert session_link in text and preferences in text
    # In the learner's time zone: 10:00 in New York is the next day's midnight or 23:00 in Tokyo.
    local = scene["starts_at"].astimezone(ZoneInfo(TOKYO))
    assert f"{local:%H:%M}–{local + timedelta(hours=1):%H:%M} ({TOKYO})" in text
    assert "With:   Mo Mentor" in text
    assert "Career change into data science" in text
    assert "calendar invitation" in text
    assert f"notifications on for “{Event.BOOKING_CONFIRMED.label}”" in text

    links = Links(html)
    assert session_link in links.hrefs and preferences in links.hrefs
    assert links.images == [logo]
    assert f"background:{TEAL}" in html
    assert "See you there.<br>Bring your questions." in html
    assert f"({TOKYO})" in html
    assert institution_a.name in html

    (invitation,) = calendars(message)
    assert invitation.get_param("method") == "REQUEST"
    assert invitation.get_content_disposition() == "attachment"
    assert invitation.get_filename() == f"session-{booking.pk}.ics"
    calendar = Calendar.from_ical(invitation.get_content())
    assert str(calendar["METHOD"]) == "REQUEST"
    assert calendar.get_missing_tzids() == set()
    (event,) = calendar.events
    assert event.start == scene["starts_at"]
    assert event.start.tzinfo == ZoneInfo(NEW_YORK)
    assert event.end - event.start == timedelta(hours=1)
    assert str(event["UID"]) == f"booking-{booking.pk}@{host_of(institution_a)}"
    assert str(event["ORGANIZER"]) == "mailto:mo@example.org"


def test_a_second_delivery_of_the_same_email_sends_nothing(institution_a, scene, smtp):
    with tenant_context(institution_a):
        (notification,) = services.notify(
            event=Event.BOOKING_CONFIRMED, recipients=[scene["learner"]], message=confirmed(scene["booking"])
        )
        email = notification.deliveries.get(channel=Channel.EMAIL)
        first = services.delivery_send(delivery_id=email.pk)
        again = services.delivery_send(delivery_id=email.pk)
    assert first.status == again.status == Delivery.Status.SENT
    assert again.provider_id == first.provider_id
    assert len(smtp.messages) == 1


def test_a_moved_session_invites_both_participants_each_told_who_the_other_is(institution_a, scene, smtp):
    booking, mentor, learner = scene["booking"], scene["mentor"], scene["learner"]
    message = Message(
        title="Your session moved", url=f"/sessions/{booking.pk}/", data={"booking_id": booking.pk}
    )
    with tenant_context(institution_a):
        notifications = services.notify(
            event=Event.BOOKING_RESCHEDULED, recipients=[learner, mentor.user], message=message
        )
        for notification in notifications:
            email_send(notification=notification)

    received = {m["To"].addresses[0].addr_spec: m for m in smtp.messages}
    assert set(received) == {"lee@example.org", "mo@example.org"}
    assert "With:   Mo Mentor" in parts(received["lee@example.org"])[0]
    mentor_text = parts(received["mo@example.org"])[0]
    assert "With:   Lee Learner" in mentor_text
    assert f"10:00–11:00 ({NEW_YORK})" in mentor_text  # the mentor's own time zone
    for message in received.values():
        (invitation,) = calendars(message)
        (event,) = Calendar.from_ical(invitation.get_content()).events
        assert str(event["UID"]) == f"booking-{booking.pk}@{host_of(institution_a)}"


@pytest.mark.parametrize(
    "event", [Event.PAYMENT_RECEIVED, Event.BOOKING_CANCELLED, Event.REMINDER_24H, Event.MENTOR_APPROVED]
)
def test_other_events_carry_no_invitation(institution_a, scene, smtp, event):
    booking = scene["booking"]
    message = Message(
        title="Something happened", url=f"/sessions/{booking.pk}/", data={"booking_id": booking.pk}
    )
    message_id, _ = send(institution_a, event=event, recipient=scene["learner"], message=message)

    (received,) = smtp.messages
    assert received["Message-ID"] == message_id
    assert calendars(received) == []
    assert [part.get_content_type() for part in received.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]
    text, _ = parts(received)
    assert "calendar invitation" not in text
    # Events about the session show it; the others do not.
    assert ("With:   Mo Mentor" in text) == (event in (Event.BOOKING_CANCELLED, Event.REMINDER_24H))


def test_an_email_without_a_link_has_no_button(institution_a, scene, smtp):
    send(
        institution_a,
        event=Event.MENTOR_APPROVED,
        recipient=scene["learner"],
        message=Message(title="You are a mentor now", body="Welcome aboard."),
    )
    (received,) = smtp.messages
    text, html = parts(received)
    assert Links(html).hrefs == [site(institution_a, "/notifications/preferences/")]
    assert "View details" not in text and "View details" not in html


def test_a_mentors_approval_reaches_the_learners_inbox_with_the_invitation(institution_a, scene, smtp):
    """From the booking service through the notification and its delivery to the inbox."""
    mentor, learner = scene["mentor"], scene["learner"]
    starts_at = scene["starts_at"] + timedelta(days=1)
    with tenant_context(institution_a):
        booking = make_booking(mentor, learner, starts_at, minutes=30, status=Booking.Status.REQUESTED)
        booking_approve(booking=booking, actor=mentor.user)
        notification = Notification.objects.get(recipient=learner, event=Event.BOOKING_CONFIRMED)
        delivery = services.delivery_send(delivery_id=notification.deliveries.get(channel=Channel.EMAIL).pk)
    assert delivery.status == Delivery.Status.SENT

    (received,) = smtp.messages
    assert received["Subject"] == notification.title
    text, html = parts(received)
    assert site(institution_a, f"/sessions/{booking.pk}/") in Links(html).hrefs
    assert "With:   Mo Mentor" in text
    (invitation,) = calendars(received)
    (event,) = Calendar.from_ical(invitation.get_content()).events
    assert event.start == starts_at
    assert str(event["UID"]) == f"booking-{booking.pk}@{host_of(institution_a)}"
    assert str(event["STATUS"]) == "CONFIRMED"


# --- Another institution -----------------------------------------------------------------------------


def test_institution_bs_email_carries_bs_brand(institution_a, institution_b, scene, smtp):
    with tenant_context(institution_b):
        institution_b.primary_color = CRIMSON
        institution_b.save()
    mentor = make_mentor(institution_b, full_name="Bea Mentor")
    learner = make_learner(institution_b, email="lee@example.org", full_name="Lee Learner")
    with tenant_context(institution_b):
        booking = make_booking(mentor, learner, next_weekday_at(14), minutes=30)
    message_id, _ = send(
        institution_b,
        event=Event.BOOKING_CONFIRMED,
        recipient=learner,
        message=Message(title="Confirmed", url=f"/sessions/{booking.pk}/", data={"booking_id": booking.pk}),
    )

    (received,) = smtp.messages
    assert received["Message-ID"] == message_id
    assert received["From"].addresses[0].display_name == institution_b.name
    text, html = parts(received)
    assert f"background:{CRIMSON}" in html and TEAL not in html
    assert institution_a.name not in html and institution_a.name not in text
    links = Links(html)
    assert site(institution_b, f"/sessions/{booking.pk}/") in links.hrefs
    assert all(host_of(institution_b) in href for href in links.hrefs)
    assert links.images == []  # B has no logo: its name stands in the header
    (invitation,) = calendars(received)
    (event,) = Calendar.from_ical(invitation.get_content()).events
    assert str(event["UID"]) == f"booking-{booking.pk}@{host_of(institution_b)}"


# --- Headers ------------------------------------------------------------------------------------------


def test_names_and_titles_that_need_quoting_or_span_lines_stay_one_header(institution_a, scene, smtp):
    with tenant_context(institution_a):
        institution_a.name = 'Académie d\'Été, "Paris"'
        institution_a.save()
    send(
        institution_a,
        event=Event.PAYMENT_RECEIVED,
        recipient=scene["learner"],
        message=Message(title="Payment received:\r\n  £40.00"),
    )
    (received,) = smtp.messages
    assert received["From"].addresses[0].display_name == 'Académie d\'Été, "Paris"'
    assert len(received["From"].addresses) == 1
    assert received["Subject"] == "Payment received: £40.00"
    assert "Académie d&#x27;Été, &quot;Paris&quot;" in parts(received)[1]
