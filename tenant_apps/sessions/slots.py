"""Selectors: the bookable slots of a mentor, computed from their hours, rules and bookings.

How slots are computed, and why (DST, buffers, limits): docs/availability.md.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models import BigIntegerField, F, Func
from django.utils import timezone

from shared.core.errors import ApplicationError

from .models import AvailabilityOverride, Booking, GroupSession, MentorProfile, WeeklyAvailability

# Slot starts are on :00 and :30 of the mentor's local clock.
SLOT_STEP_MINUTES = 30
_STEP_SECONDS = SLOT_STEP_MINUTES * 60
# Chunk of days next_free_slot looks at first (most mentors have a free slot within a week).
_FIRST_LOOK_DAYS = 7


@dataclass(frozen=True, slots=True)
class Slot:
    starts_at: datetime  # aware, UTC
    ends_at: datetime  # aware, UTC

    @property
    def minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)


# --- Local wall-clock times → instants ------------------------------------------------------------


def _gap_end(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant a DST gap ends: the first instant in (before, after] with the later offset (UTC)."""
    target = after.astimezone(zone).utcoffset()
    low, high = before, after  # low has the old offset, high the new one
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) if high.microsecond else high


def local_instant(day: date, wall: time, zone: ZoneInfo, *, later: bool = False) -> datetime:
    """The UTC instant at which the wall clock of `zone` shows `wall` on `day`.

    - A wall time that happens twice (the repeated hour when clocks go back) gives its first
      instant, or its second with `later=True` (used for the end of a window, so a window
      covers every instant at which the wall clock is inside it).
    - A wall time that never happens (the skipped hour when clocks go forward) gives the
      instant the clocks jump: a window starting or ending inside the gap starts or ends when
      the gap ends, and a window entirely inside the gap is empty.
    """
    first = datetime.combine(day, wall, tzinfo=zone)
    second = first.replace(fold=1)
    first_utc = first.astimezone(UTC)
    second_utc = second.astimezone(UTC)
    if first_utc == second_utc:
        return first_utc
    if first_utc < second_utc:  # ambiguous: the wall time happens twice
        return second_utc if later else first_utc
    # Nonexistent: fold=1 reads it with the new offset (an instant before the jump),
    # fold=0 with the old one (after the jump); the jump lies between the two.
    return _gap_end(zone, second_utc, first_utc)


class _Epoch(Func):
    """Whole seconds since 1970 of a timestamp (or of a range's bound: `bound="lower"`/`"upper"`).

    Integers cross the wire and load far faster than timestamps and ranges (the text loaders of
    psycopg's range type dominated the time with a few hundred bookings).
    """

    output_field = BigIntegerField()

    def __init__(self, field: str, *, bound: str = "") -> None:
        inner = f"{bound}(%(expressions)s)" if bound else "%(expressions)s"
        super().__init__(F(field), template=f"EXTRACT(EPOCH FROM {inner})::bigint")


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --- The computation -----------------------------------------------------------------------------


def _check_minutes(mentor: MentorProfile, minutes: int) -> None:
    if minutes not in (mentor.session_lengths or []):
        offered = ", ".join(str(length) for length in sorted(mentor.session_lengths or []))
        message = (
            f"This mentor offers sessions of {offered} minutes, not {minutes}."
            if offered
            else "This mentor offers no session lengths yet."
        )
        raise ApplicationError(message, code="invalid_length", status=400, fields={"minutes": [message]})


def _aware_utc(moment: datetime, name: str) -> datetime:
    if timezone.is_naive(moment):
        raise ApplicationError(
            f"“{name}” must include a time zone offset.",
            code="invalid",
            fields={name: ["Give a time zone offset."]},
        )
    return moment.astimezone(UTC)


@dataclass
class _Candidates:
    """Slot starts inside the mentor's hours and rules, and what blocks each one, if anything."""

    starts: list[int]  # epoch seconds, ascending
    overlapping: list[bool]  # its blocked range overlaps a booking or a group session
    day_full: list[bool]  # its local date already has max_sessions_per_day sessions


def _windows(
    days: list[date],
    weekly: dict[int, list[tuple[time, time]]],
    overrides: dict[date, list[tuple[str, time | None, time | None]]],
    zone: ZoneInfo,
) -> list[tuple[date, int, int]]:
    """(local date, start, end) of each window, in epoch seconds, merged where they touch."""
    windows: list[tuple[date, int, int]] = []
    for day in days:
        day_overrides = overrides.get(day, ())
        ranges = (
            [] if any(kind == "off" for kind, _, _ in day_overrides) else list(weekly.get(day.weekday(), ()))
        )
        ranges.extend((start, end) for kind, start, end in day_overrides if kind == "extra")
        spans = sorted(
            (_epoch(local_instant(day, start, zone)), _epoch(local_instant(day, end, zone, later=True)))
            for start, end in ranges
        )
        merged: list[list[int]] = []
        for start, end in spans:
            if end <= start:
                continue  # a window entirely inside a DST gap
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        windows.extend((day, start, end) for start, end in merged)
    return windows


def _merge(intervals: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sorted, disjoint [start, end) intervals as two lists (starts, ends) for bisecting."""
    starts: list[int] = []
    ends: list[int] = []
    for start, end in sorted(intervals):
        if ends and start <= ends[-1]:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


def _align_up(seconds: int, zone: ZoneInfo) -> int:
    """The first instant at or after `seconds` at which the local clock shows :00 or :30."""
    local = _from_epoch(seconds).astimezone(zone)
    past = (local.minute % SLOT_STEP_MINUTES) * 60 + local.second
    return seconds if past == 0 else seconds + _STEP_SECONDS - past


def _candidates(
    *, mentor: MentorProfile, minutes: int, lower: datetime, upper: datetime, now: datetime
) -> _Candidates:
    """Slot starts s with lower ≤ s ≤ upper (both already clamped to notice and horizon)."""
    zone = ZoneInfo(mentor.user.timezone)
    found = _Candidates([], [], [])
    if upper < lower:
        return found
    first_day = lower.astimezone(zone).date()
    last_day = upper.astimezone(zone).date()
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    day_start = local_instant(first_day, time(0), zone)
    day_end = local_instant(last_day + timedelta(days=1), time(0), zone)
    before = timedelta(minutes=mentor.buffer_before_minutes)
    after = timedelta(minutes=mentor.buffer_after_minutes)

    # Four queries whatever the number of rows.
    weekly: dict[int, list[tuple[time, time]]] = {}
    # (Unordered: windows and busy times are sorted here.)
    for weekday, start, end in (
        WeeklyAvailability.objects.filter(mentor=mentor)
        .order_by()
        .values_list("weekday", "start_time", "end_time")
    ):
        weekly.setdefault(weekday, []).append((start, end))
    overrides: dict[date, list[tuple[str, time | None, time | None]]] = {}
    for day, kind, start, end in (
        AvailabilityOverride.objects.filter(mentor=mentor, date__gte=first_day, date__lte=last_day)
        .order_by()
        .values_list("date", "kind", "start_time", "end_time")
    ):
        overrides.setdefault(day, []).append((kind, start, end))
    # Every booking whose blocked range could touch a candidate's (this also covers every booking
    # starting on one of these days). The same status list as the exclusion constraint's, so its
    # GiST index can serve the query. Expired holds are free time.
    bookings = (
        Booking.objects.filter(
            mentor=mentor,
            status__in=list(Booking.LIVE_STATUSES),
            blocked__overlap=DateTimeTZRange(day_start - before, day_end + after),
        )
        .exclude(status=Booking.Status.HELD, hold_expires_at__lte=now)
        .order_by()
        .values_list(_Epoch("starts_at"), _Epoch("blocked", bound="lower"), _Epoch("blocked", bound="upper"))
    )
    groups = (
        GroupSession.objects.filter(
            mentor=mentor,
            status=GroupSession.Status.SCHEDULED,
            starts_at__lt=day_end + after + before,
            ends_at__gt=day_start - before - after,
        )
        .order_by()
        .values_list(_Epoch("starts_at"), _Epoch("ends_at"))
    )

    before_s, after_s = int(before.total_seconds()), int(after.total_seconds())
    busy: list[tuple[int, int]] = []
    session_starts: list[int] = []
    for starts_at, blocked_start, blocked_end in bookings:
        busy.append((blocked_start, blocked_end))
        session_starts.append(starts_at)
    for starts_at, ends_at in groups:
        busy.append((starts_at - before_s, ends_at + after_s))
        session_starts.append(starts_at)
    busy_starts, busy_ends = _merge(busy)
    per_day = Counter(_from_epoch(starts_at).astimezone(zone).date() for starts_at in session_starts)
    full_days = {day for day, count in per_day.items() if count >= mentor.max_sessions_per_day}

    length = minutes * 60
    lower_s, upper_s = _epoch(lower), _epoch(upper)
    if lower.microsecond:
        lower_s += 1  # a start must not be earlier than `lower`
    for day, window_start, window_end in _windows(days, weekly, overrides, zone):
        # Within a window the offset is constant unless the clocks change inside it; only then
        # must each start be re-aligned to the local :00/:30.
        steady = (
            _from_epoch(window_start).astimezone(zone).utcoffset()
            == _from_epoch(window_end).astimezone(zone).utcoffset()
        )
        start = _align_up(max(window_start, lower_s), zone)
        last_start = min(window_end - length, upper_s)
        day_full = day in full_days
        while start <= last_start:
            blocked_start, blocked_end = start - before_s, start + length + after_s
            index = bisect_right(busy_ends, blocked_start)  # first busy interval ending after it
            found.starts.append(start)
            found.overlapping.append(index < len(busy_starts) and busy_starts[index] < blocked_end)
            found.day_full.append(day_full)
            start += _STEP_SECONDS
            if not steady:
                start = _align_up(start, zone)
    return found


def _bounds(mentor: MentorProfile, now: datetime) -> tuple[datetime, datetime]:
    """The earliest and latest start the mentor's notice and horizon allow."""
    earliest = now + timedelta(minutes=mentor.minimum_notice_minutes)
    latest = now + timedelta(days=mentor.booking_horizon_days)
    return earliest, latest


def mentor_slots(
    *,
    mentor: MentorProfile,
    minutes: int,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
) -> list[Slot]:
    """Free slots of `minutes` starting in [start, end), clamped to [now + notice, now + horizon]."""
    _check_minutes(mentor, minutes)
    now = _aware_utc(now or timezone.now(), "now")
    earliest, latest = _bounds(mentor, now)
    lower = max(_aware_utc(start, "start"), earliest) if start else earliest
    upper = latest
    if end is not None:
        end = _aware_utc(end, "end")
        # `end` is exclusive: the last start is the last second before it.
        upper = min(upper, end - timedelta(microseconds=1))
    found = _candidates(mentor=mentor, minutes=minutes, lower=lower, upper=upper, now=now)
    length = minutes * 60
    return [
        Slot(_from_epoch(start), _from_epoch(start + length))
        for start, overlapping, day_full in zip(found.starts, found.overlapping, found.day_full, strict=True)
        if not overlapping and not day_full
    ]


def _unavailable(message: str, *, status: int) -> ApplicationError:
    return ApplicationError(message, code="slot_unavailable", status=status, fields={"starts_at": [message]})


def slot_for(
    *, mentor: MentorProfile, starts_at: datetime, minutes: int, now: datetime | None = None
) -> Slot:
    """The slot starting at `starts_at`, if the mentor offers it and it is free.

    Raises ApplicationError(code="slot_unavailable"): status 409 when the time is offered but
    taken (a booking, a group session or the day's limit), 400 when it is not offered at all.
    """
    _check_minutes(mentor, minutes)
    now = _aware_utc(now or timezone.now(), "now")
    starts_at = _aware_utc(starts_at, "starts_at")
    earliest, latest = _bounds(mentor, now)
    if starts_at < earliest:
        notice = _duration(mentor.minimum_notice_minutes)
        if starts_at < now:
            raise _unavailable("That time has already passed.", status=400)
        raise _unavailable(f"This mentor needs at least {notice} notice. Choose a later time.", status=400)
    if starts_at > latest:
        raise _unavailable(
            f"This mentor takes bookings up to {mentor.booking_horizon_days} days ahead. "
            "Choose an earlier date.",
            status=400,
        )
    found = _candidates(mentor=mentor, minutes=minutes, lower=starts_at, upper=starts_at, now=now)
    target = _epoch(starts_at)
    for start, overlapping, day_full in zip(found.starts, found.overlapping, found.day_full, strict=True):
        if start != target:
            continue
        if overlapping:
            raise _unavailable(
                "Sorry, that time has just been taken. Please choose another slot.", status=409
            )
        if day_full:
            raise _unavailable(
                "Sorry, this mentor's day is fully booked now. Please choose another day.", status=409
            )
        return Slot(starts_at, starts_at + timedelta(minutes=minutes))
    raise _unavailable(
        f"The mentor does not offer a {minutes}-minute session at that time. Choose one of the listed slots.",
        status=400,
    )


def _duration(minutes: int) -> str:
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return f"{days} day{'s' if days != 1 else ''}"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minutes"


def next_free_slot(*, mentor: MentorProfile, now: datetime | None = None) -> datetime | None:
    """The start of the mentor's earliest free slot of any length they offer, or None.

    The shortest length has every start a longer one has, so it alone is computed: the first
    week, then (only if that week is full) the rest of the horizon.
    """
    if not mentor.session_lengths:
        return None
    now = _aware_utc(now or timezone.now(), "now")
    minutes = min(mentor.session_lengths)
    earliest, latest = _bounds(mentor, now)
    split = earliest + timedelta(days=_FIRST_LOOK_DAYS)
    for start, end in ((earliest, split), (split, None)):
        if start > latest:
            break
        slots = mentor_slots(mentor=mentor, minutes=minutes, start=start, end=end, now=now)
        if slots:
            return slots[0].starts_at
    return None


def mentor_next_free_slot_refresh(*, mentor_id: int, now: datetime | None = None) -> datetime | None:
    """Recompute and store the mentor's next free slot (read by the directory); returns it."""
    mentor = MentorProfile.objects.select_related("user").filter(pk=mentor_id).first()
    if mentor is None:
        return None
    now = _aware_utc(now or timezone.now(), "now")
    next_at = next_free_slot(mentor=mentor, now=now)
    MentorProfile.objects.filter(pk=mentor_id).update(
        next_free_slot_at=next_at, next_free_slot_checked_at=now
    )
    return next_at
