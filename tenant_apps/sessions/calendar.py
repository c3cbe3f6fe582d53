"""iCalendar documents: one session's .ics file, and a person's private, revocable feed of sessions."""

import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from icalendar import Calendar, Event, vCalAddress, vText

from tenant_apps.accounts.models import User

from .models import Booking, CalendarFeed, Enrollment, GroupSession, new_feed_token

PRODID = "-//PeerLearn//Mentoring sessions//EN"
# How far back the feed reaches: recent sessions stay in people's calendars.
FEED_PAST_DAYS = 30
# Booking statuses a feed shows. Completed ones too: a session does not vanish from the calendar
# when the mentor marks it done. Held bookings only while their hold lasts.
FEED_BOOKING_STATUSES = (
    Booking.Status.REQUESTED,
    Booking.Status.HELD,
    Booking.Status.CONFIRMED,
    Booking.Status.COMPLETED,
)
FEED_GROUP_STATUSES = (GroupSession.Status.SCHEDULED, GroupSession.Status.COMPLETED)
# Tokens are made by `new_feed_token` (secrets.token_urlsafe(24): 32 characters).
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")

_EVENT_STATUS = {
    Booking.Status.CONFIRMED: "CONFIRMED",
    Booking.Status.COMPLETED: "CONFIRMED",
    Booking.Status.REQUESTED: "TENTATIVE",
    Booking.Status.HELD: "TENTATIVE",
}


# --- Where things live ------------------------------------------------------------------------


def institution_uid_host() -> str:
    """The institution's own host under the platform domain: it never changes, so UIDs stay stable.

    (A custom primary domain added later would otherwise duplicate every event in people's
    calendars.)
    """
    return f"{connection.tenant.slug}.{settings.PLATFORM_DOMAIN}"


def site_url(path: str) -> str:
    """An absolute link on the current institution's primary domain (one query)."""
    domain = connection.tenant.get_primary_domain()
    host = domain.domain if domain else institution_uid_host()
    return f"{settings.SITE_SCHEME}://{host}{settings.SITE_PORT_SUFFIX}{path}"


def booking_path(booking_id: int) -> str:
    return f"/sessions/{booking_id}/"


def _group_path(group_id: int) -> str | None:
    try:
        return reverse("mentoring:group_detail", args=[group_id])
    except NoReverseMatch:
        return None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _address(user: User, *, role: str | None = None) -> vCalAddress:
    address = vCalAddress(f"mailto:{user.email}")
    address.params["CN"] = vText(user.full_name or user.email)
    if role:
        address.params["ROLE"] = vText(role)
    return address


# --- Events ------------------------------------------------------------------------------------


def _booking_event(booking: Booking, *, stamp: datetime, link_base: str) -> Event:
    mentor_user = booking.mentor.user
    zone = _zone(mentor_user.timezone)
    link = f"{link_base}{booking_path(booking.pk)}"
    description = "\n\n".join(part for part in (booking.topic.strip(), f"Session page: {link}") if part)
    event = Event()
    event.add("uid", f"booking-{booking.pk}@{institution_uid_host()}")
    event.add("dtstamp", stamp)
    event.add("dtstart", booking.starts_at.astimezone(zone))
    event.add("dtend", booking.ends_at.astimezone(zone))
    event.add("summary", f"Mentoring: {booking.learner.full_name} with {mentor_user.full_name}")
    event.add("description", description)
    event.add("url", link)
    event.add("status", _EVENT_STATUS.get(booking.status, "CANCELLED"))
    event.add("organizer", _address(mentor_user))
    event.add("attendee", _address(booking.learner, role="REQ-PARTICIPANT"))
    return event


def _group_event(group: GroupSession, *, stamp: datetime, link_base: str) -> Event:
    mentor_user = group.mentor.user
    zone = _zone(mentor_user.timezone)
    path = _group_path(group.pk)
    link = f"{link_base}{path}" if path else ""
    parts = (group.description.strip(), f"Session page: {link}" if link else "")
    event = Event()
    event.add("uid", f"group-{group.pk}@{institution_uid_host()}")
    event.add("dtstamp", stamp)
    event.add("dtstart", group.starts_at.astimezone(zone))
    event.add("dtend", group.ends_at.astimezone(zone))
    event.add("summary", f"Group session: {group.title} with {mentor_user.full_name}")
    event.add("description", "\n\n".join(part for part in parts if part))
    if link:
        event.add("url", link)
    event.add("status", "CANCELLED" if group.status == GroupSession.Status.CANCELLED else "CONFIRMED")
    event.add("organizer", _address(mentor_user))
    return event


def _calendar(events: Iterable[Event], *, name: str | None = None) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if name:
        calendar.add("name", name)
        calendar.add("x-wr-calname", name)
        # Calendar apps that honour it re-fetch the feed hourly.
        calendar.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
        calendar.add("x-published-ttl", "PT1H")
    starts: list[date] = []
    for event in events:
        calendar.add_component(event)
        starts.append(event.decoded("dtstart").date())
    if starts:
        # VTIMEZONE definitions covering a year either side of the events (RFC 5545 needs one per
        # TZID used; UTC needs none and is written with "Z").
        calendar.add_missing_timezones(
            first_date=min(starts) - timedelta(days=366), last_date=max(starts) + timedelta(days=366)
        )
    return calendar.to_ical()


def booking_ics(*, booking: Booking) -> bytes:
    """A VCALENDAR with the one session, in the mentor's time zone (with its VTIMEZONE)."""
    return _calendar([_booking_event(booking, stamp=timezone.now(), link_base=site_url(""))])


# --- The private feed -------------------------------------------------------------------------


def feed_bookings(*, user: User, since: datetime) -> list[Booking]:
    now = timezone.now()
    return list(
        Booking.objects.filter(Q(learner=user) | Q(mentor__user=user))
        .filter(status__in=FEED_BOOKING_STATUSES, ends_at__gte=since)
        .exclude(status=Booking.Status.HELD, hold_expires_at__lt=now)
        .select_related("mentor__user", "learner")
        .order_by("starts_at", "pk")
    )


def feed_group_sessions(*, user: User, since: datetime) -> list[GroupSession]:
    enrolled = Enrollment.objects.filter(learner=user, status=Enrollment.Status.ENROLLED).values(
        "group_session_id"
    )
    return list(
        GroupSession.objects.filter(Q(mentor__user=user) | Q(pk__in=enrolled))
        .filter(status__in=FEED_GROUP_STATUSES, ends_at__gte=since)
        .select_related("mentor__user")
        .order_by("starts_at", "pk")
    )


def calendar_feed_ics(*, user: User) -> bytes:
    """The person's sessions (1:1 as learner or mentor, and group sessions) from 30 days ago on.

    Three queries whatever the number of sessions: bookings, group sessions, the primary domain.
    """
    since = timezone.now() - timedelta(days=FEED_PAST_DAYS)
    stamp = timezone.now()
    link_base = site_url("")
    events = [
        _booking_event(b, stamp=stamp, link_base=link_base) for b in feed_bookings(user=user, since=since)
    ]
    events += [
        _group_event(g, stamp=stamp, link_base=link_base) for g in feed_group_sessions(user=user, since=since)
    ]
    events.sort(key=lambda event: event.decoded("dtstart"))
    return _calendar(events, name=f"{connection.tenant.name} sessions")


def calendar_feed_of(*, user: User) -> CalendarFeed | None:
    return CalendarFeed.objects.filter(user=user).first()


def calendar_feed_by_token(*, token: str) -> CalendarFeed | None:
    """The feed with this token in the current institution, if its owner is still active.

    The token is found through its unique index (no string comparison in Python, so nothing
    to time); anything not shaped like a token is not looked up at all.
    """
    if not _TOKEN_SHAPE.fullmatch(token or ""):
        return None
    return CalendarFeed.objects.select_related("user").filter(token=token, user__is_active=True).first()


def calendar_feed_reset(*, user: User) -> CalendarFeed:
    """A new private token for the user (created if they had none); the old URL stops working."""
    feed, _ = CalendarFeed.objects.update_or_create(user=user, defaults={"token": new_feed_token()})
    return feed


def calendar_feed_revoke(*, user: User) -> None:
    CalendarFeed.objects.filter(user=user).delete()


def calendar_feed_urls(*, feed: CalendarFeed | None) -> dict[str, str | None]:
    """The feed's address for calendar apps: `url` (the site's scheme) and `webcal_url`."""
    if feed is None:
        return {"url": None, "webcal_url": None}
    url = site_url(reverse("mentoring:calendar_feed_ics", args=[feed.token]))
    return {"url": url, "webcal_url": "webcal://" + url.split("://", 1)[1]}
