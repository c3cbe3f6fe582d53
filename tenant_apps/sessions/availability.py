"""Services: a mentor's calendar rules, weekly hours and date overrides.

Every change recomputes the mentor's next free slot (read by the directory).
"""

from __future__ import annotations

import datetime as dt
from datetime import time
from itertools import pairwise
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from shared.core.errors import ApplicationError
from tenant_apps.accounts.models import User

from .models import AvailabilityOverride, MentorProfile, WeeklyAvailability
from .search import mentor_search_refresh
from .slots import mentor_next_free_slot_refresh

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_RANGES_PER_DAY = 12
# What a new profile offers until the mentor changes it.
DEFAULT_SESSION_LENGTHS = [30, 60]
RULE_FIELDS = (
    "buffer_before_minutes",
    "buffer_after_minutes",
    "minimum_notice_minutes",
    "booking_horizon_days",
    "max_sessions_per_day",
    "requires_approval",
)


def _invalid(
    fields: dict[str, list[str]], message: str = "Some of the values are not valid."
) -> ApplicationError:
    return ApplicationError(message, code="validation_error", status=400, fields=fields)


def _refresh(mentor: MentorProfile) -> None:
    mentor.next_free_slot_at = mentor_next_free_slot_refresh(mentor_id=mentor.pk)
    mentor.next_free_slot_checked_at = timezone.now()


def _hhmm(value: time) -> str:
    return value.strftime("%H:%M")


# --- The profile ---------------------------------------------------------------------------------


def mentor_profile_ensure(*, user: User) -> MentorProfile:
    """The approved mentor's profile, created with the defaults on first use."""
    if not (user.is_authenticated and user.is_mentor and user.is_active):
        raise ApplicationError(
            "Only approved mentors have availability. Apply to mentor, or ask an administrator.",
            code="permission_denied",
            status=403,
        )
    with transaction.atomic():
        profile, created = MentorProfile.objects.select_related("user").get_or_create(
            user=user, defaults={"session_lengths": list(DEFAULT_SESSION_LENGTHS)}
        )
        if created:
            mentor_search_refresh(mentor_id=profile.pk)
            _refresh(profile)
    return profile


# --- Calendar rules ------------------------------------------------------------------------------


def _apply_rules(mentor: MentorProfile, values: dict) -> dict[str, list[str]]:
    """Set the rules on `mentor` (unsaved) and return the per-field errors, if any."""
    errors: dict[str, list[str]] = {}
    for name, value in values.items():
        if value is None:
            errors[name] = ["Give a whole number."]
        setattr(mentor, name, value)
    try:
        mentor.full_clean(exclude=["user", *errors])
    except ValidationError as error:
        errors.update({name: list(messages) for name, messages in error.message_dict.items()})
    return errors


def _rules(**values) -> dict:
    values["requires_approval"] = bool(values["requires_approval"])
    return values


@transaction.atomic
def mentor_calendar_update(
    *,
    mentor: MentorProfile,
    buffer_before_minutes: int,
    buffer_after_minutes: int,
    minimum_notice_minutes: int,
    booking_horizon_days: int,
    max_sessions_per_day: int,
    requires_approval: bool,
) -> MentorProfile:
    """Change the rules of the mentor's calendar (buffers, notice, horizon, daily limit, approval)."""
    values = _rules(
        buffer_before_minutes=buffer_before_minutes,
        buffer_after_minutes=buffer_after_minutes,
        minimum_notice_minutes=minimum_notice_minutes,
        booking_horizon_days=booking_horizon_days,
        max_sessions_per_day=max_sessions_per_day,
        requires_approval=requires_approval,
    )
    errors = _apply_rules(mentor, values)
    if errors:
        mentor.refresh_from_db(fields=list(RULE_FIELDS))
        raise _invalid(errors)
    mentor.save(update_fields=[*RULE_FIELDS, "updated_at"])
    _refresh(mentor)
    return mentor


# --- Weekly hours --------------------------------------------------------------------------------


def _hours_errors(hours: list[tuple[int, time, time]]) -> list[str]:
    errors: list[str] = []
    by_day: dict[int, list[tuple[time, time]]] = {}
    for row in hours:
        weekday, start, end = row
        if not isinstance(weekday, int) or isinstance(weekday, bool) or not 0 <= weekday <= 6:
            errors.append(f"“{weekday}” is not a weekday: use 0 (Monday) to 6 (Sunday).")
            continue
        name = WEEKDAY_NAMES[weekday]
        if not isinstance(start, time) or not isinstance(end, time):
            errors.append(f"{name}: give both a start and an end time.")
            continue
        if start.tzinfo or end.tzinfo:
            errors.append(f"{name}: give local times without a time zone (they are in your time zone).")
            continue
        if end <= start:
            errors.append(f"{name}: the end ({_hhmm(end)}) must be after the start ({_hhmm(start)}).")
            continue
        by_day.setdefault(weekday, []).append((start, end))
    for weekday, ranges in sorted(by_day.items()):
        name = WEEKDAY_NAMES[weekday]
        if len(ranges) > MAX_RANGES_PER_DAY:
            errors.append(f"{name}: at most {MAX_RANGES_PER_DAY} time ranges a day.")
            continue
        ranges.sort()
        for (start, end), (next_start, next_end) in pairwise(ranges):
            if next_start < end:
                errors.append(
                    f"{name}: {_hhmm(start)}–{_hhmm(end)} overlaps {_hhmm(next_start)}–{_hhmm(next_end)}."
                )
    return errors


def _hours_write(mentor: MentorProfile, hours: list[tuple[int, time, time]]) -> list[WeeklyAvailability]:
    # Lock the mentor's row: two replacements at once would otherwise interleave their rows.
    MentorProfile.objects.select_for_update().filter(pk=mentor.pk).values_list("pk").first()
    WeeklyAvailability.objects.filter(mentor=mentor).delete()
    rows = [
        WeeklyAvailability(mentor=mentor, weekday=weekday, start_time=start, end_time=end)
        for weekday, start, end in sorted(hours)
    ]
    for row in rows:
        row.full_clean(exclude=["mentor"], validate_constraints=False)  # checked above, without queries
    return WeeklyAvailability.objects.bulk_create(rows)


@transaction.atomic
def weekly_hours_replace(
    *, mentor: MentorProfile, hours: list[tuple[int, time, time]]
) -> list[WeeklyAvailability]:
    """Replace all of the mentor's weekly hours with `hours` (weekday 0 = Monday, local times)."""
    errors = _hours_errors(hours)
    if errors:
        raise _invalid({"hours": errors}, errors[0])
    rows = _hours_write(mentor, hours)
    _refresh(mentor)
    return rows


@transaction.atomic
def mentor_availability_replace(
    *,
    mentor: MentorProfile,
    buffer_before_minutes: int,
    buffer_after_minutes: int,
    minimum_notice_minutes: int,
    booking_horizon_days: int,
    max_sessions_per_day: int,
    requires_approval: bool,
    hours: list[tuple[int, time, time]],
) -> MentorProfile:
    """Rules and weekly hours together, all or nothing; every error is reported at once."""
    values = _rules(
        buffer_before_minutes=buffer_before_minutes,
        buffer_after_minutes=buffer_after_minutes,
        minimum_notice_minutes=minimum_notice_minutes,
        booking_horizon_days=booking_horizon_days,
        max_sessions_per_day=max_sessions_per_day,
        requires_approval=requires_approval,
    )
    errors = _apply_rules(mentor, values)
    hour_errors = _hours_errors(hours)
    if hour_errors:
        errors["hours"] = hour_errors
    if errors:
        mentor.refresh_from_db(fields=list(RULE_FIELDS))
        raise _invalid(errors)
    mentor.save(update_fields=[*RULE_FIELDS, "updated_at"])
    _hours_write(mentor, hours)
    _refresh(mentor)
    return mentor


# --- Date overrides ------------------------------------------------------------------------------


def _mentor_today(mentor: MentorProfile) -> dt.date:
    return dt.datetime.now(ZoneInfo(mentor.user.timezone)).date()


@transaction.atomic
def availability_override_add(
    *,
    mentor: MentorProfile,
    date: dt.date,
    kind: str,
    start_time: time | None = None,
    end_time: time | None = None,
) -> AvailabilityOverride:
    """A day off, or extra hours on one date (local times in the mentor's time zone)."""
    errors: dict[str, list[str]] = {}
    if kind not in AvailabilityOverride.Kind.values:
        errors["kind"] = ["Choose “extra” (extra hours) or “off” (a day off)."]
    if not isinstance(date, dt.date) or isinstance(date, dt.datetime):
        errors["date"] = ["Give a date."]
    elif date < _mentor_today(mentor):
        errors["date"] = ["Choose today or a later date."]
    if kind == AvailabilityOverride.Kind.OFF:
        if start_time is not None or end_time is not None:
            message = "A day off covers the whole day: leave the times empty."
            errors["start_time" if start_time is not None else "end_time"] = [message]
    elif kind == AvailabilityOverride.Kind.EXTRA:
        if start_time is None:
            errors["start_time"] = ["Give the start of the extra hours."]
        if end_time is None:
            errors["end_time"] = ["Give the end of the extra hours."]
        if start_time is not None and end_time is not None and end_time <= start_time:
            errors["end_time"] = ["The end must be after the start."]
    if errors:
        raise _invalid(errors, next(iter(errors.values()))[0])

    # Lock the mentor's row so two additions for one date are checked one after the other.
    MentorProfile.objects.select_for_update().filter(pk=mentor.pk).values_list("pk").first()
    same_day = list(AvailabilityOverride.objects.filter(mentor=mentor, date=date))
    if kind == AvailabilityOverride.Kind.OFF and any(o.kind == o.Kind.OFF for o in same_day):
        raise _invalid({"date": ["This date is already a day off."]}, "This date is already a day off.")
    if kind == AvailabilityOverride.Kind.EXTRA:
        for other in same_day:
            if other.kind == other.Kind.EXTRA and other.start_time < end_time and start_time < other.end_time:
                message = (
                    f"These hours overlap the extra hours {_hhmm(other.start_time)}–{_hhmm(other.end_time)}."
                )
                raise _invalid({"start_time": [message]}, message)

    override = AvailabilityOverride(
        mentor=mentor, date=date, kind=kind, start_time=start_time, end_time=end_time
    )
    override.full_clean(exclude=["mentor"], validate_constraints=False)  # checked above
    override.save()
    _refresh(mentor)
    return override


@transaction.atomic
def availability_override_remove(*, mentor: MentorProfile, override_id: int) -> None:
    """Remove one of the mentor's date overrides; another mentor's id is simply not found."""
    deleted, _ = AvailabilityOverride.objects.filter(mentor=mentor, pk=override_id).delete()
    if not deleted:
        raise ApplicationError("That date override does not exist.", code="not_found", status=404)
    _refresh(mentor)
