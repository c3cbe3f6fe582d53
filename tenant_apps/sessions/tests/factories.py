"""Test factories for mentoring: mentors with weekly hours, learners, bookings."""

from datetime import datetime, time, timedelta

from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.core.testing import make_user
from tenant_apps.accounts.models import User
from tenants.models import Institution

from ..models import Booking, MentorProfile, WeeklyAvailability
from ..search import mentor_search_refresh

NINE_TO_FIVE = [(day, time(9), time(17)) for day in range(5)]


def make_mentor(
    institution: Institution,
    *,
    email: str | None = None,
    full_name: str = "Mo Mentor",
    timezone_name: str = "UTC",
    hours: list[tuple[int, time, time]] | None = None,
    **profile_fields,
) -> MentorProfile:
    """An approved mentor with a profile and weekly hours (Mon–Fri 09:00–17:00 by default)."""
    fields = {"email": email} if email else {}
    user = make_user(
        institution,
        full_name=full_name,
        role=User.Role.MENTOR,
        mentor_status=User.MentorStatus.APPROVED,
        timezone=timezone_name,
        **fields,
    )
    profile_fields.setdefault("session_lengths", [30, 60])
    profile_fields.setdefault("minimum_notice_minutes", 0)
    with tenant_context(institution):
        profile = MentorProfile.objects.create(user=user, **profile_fields)
        for weekday, start, end in NINE_TO_FIVE if hours is None else hours:
            WeeklyAvailability.objects.create(mentor=profile, weekday=weekday, start_time=start, end_time=end)
        mentor_search_refresh(mentor_id=profile.pk)
        # With its user loaded: callers may read it outside the institution's schema.
        return MentorProfile.objects.select_related("user").get(pk=profile.pk)


def make_learner(institution: Institution, **fields) -> User:
    fields.setdefault("full_name", "Lee Learner")
    return make_user(institution, role=User.Role.LEARNER, **fields)


def next_weekday_at(hour: int, *, weekday: int = 2, tz: str = "UTC", weeks_ahead: int = 1) -> datetime:
    """An aware datetime on a coming weekday (Wednesday by default) at `hour`:00 in `tz`."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    today = timezone.now().astimezone(zone).date()
    days = (weekday - today.weekday()) % 7 + 7 * weeks_ahead
    return datetime.combine(today + timedelta(days=days), time(hour), tzinfo=zone)


def make_booking(
    mentor: MentorProfile,
    learner: User,
    starts_at: datetime,
    *,
    minutes: int = 30,
    status: str = Booking.Status.CONFIRMED,
    **fields,
) -> Booking:
    """A booking row written directly (no rules applied): for setting up a scene."""
    from django.db.backends.postgresql.psycopg_any import DateTimeTZRange

    ends_at = starts_at + timedelta(minutes=minutes)
    blocked = DateTimeTZRange(
        starts_at - timedelta(minutes=mentor.buffer_before_minutes),
        ends_at + timedelta(minutes=mentor.buffer_after_minutes),
    )
    fields.setdefault("currency", "GBP")
    return Booking.objects.create(
        mentor=mentor,
        learner=learner,
        starts_at=starts_at,
        ends_at=ends_at,
        blocked=blocked,
        status=status,
        **fields,
    )
