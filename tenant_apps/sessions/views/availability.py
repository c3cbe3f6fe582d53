"""Mentoring pages: the mentor's availability editor (weekly hours, rules, date overrides, preview)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from itertools import groupby
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone

from shared.core.errors import ApplicationError
from tenant_apps.accounts.forms import add_service_errors

from ..availability import (
    MAX_RANGES_PER_DAY,
    WEEKDAY_NAMES,
    availability_override_add,
    availability_override_remove,
    mentor_calendar_update,
    mentor_profile_ensure,
    weekly_hours_replace,
)
from ..models import AvailabilityOverride, MentorProfile, WeeklyAvailability
from ..slots import mentor_slots

PREVIEW_DAYS = 7
TIME_WIDGET = forms.TimeInput(attrs={"type": "time", "step": 60}, format="%H:%M")

# --- Forms (input parsing only; the services decide) ---------------------------------------------------


class WeeklyHoursForm(forms.Form):
    """One row of inputs per time range, grouped by weekday: d<weekday>_<n>_start / _end / _remove.

    Each weekday shows its saved ranges and one empty row for adding another; after saving,
    the page shows a new empty row. No JavaScript needed.
    """

    ROW_RE = re.compile(r"^d([0-6])_(\d{1,2})_(?:start|end|remove)$")

    def __init__(self, data=None, *, hours: list[tuple[int, time, time]] | None = None) -> None:
        super().__init__(data)
        counts = dict.fromkeys(range(7), 0)
        saved: dict[int, list[tuple[time, time]]] = {}
        for weekday, start, end in hours or []:
            saved.setdefault(weekday, []).append((start, end))
        if data is not None:
            for key in data:
                match = self.ROW_RE.match(key)
                if match:
                    weekday, index = int(match.group(1)), int(match.group(2))
                    counts[weekday] = max(counts[weekday], min(index, MAX_RANGES_PER_DAY) + 1)
            counts = {weekday: max(count, 1) for weekday, count in counts.items()}
        else:
            counts = {weekday: len(saved.get(weekday, [])) + 1 for weekday in range(7)}
        self.counts = counts
        for weekday in range(7):
            name = WEEKDAY_NAMES[weekday]
            for index in range(counts[weekday]):
                prefix = f"d{weekday}_{index}"
                existing = saved.get(weekday, [])
                start, end = existing[index] if index < len(existing) else (None, None)
                self.fields[f"{prefix}_start"] = forms.TimeField(
                    required=False, label=f"{name} range {index + 1} from", widget=TIME_WIDGET, initial=start
                )
                self.fields[f"{prefix}_end"] = forms.TimeField(
                    required=False, label=f"{name} range {index + 1} until", widget=TIME_WIDGET, initial=end
                )
                self.fields[f"{prefix}_remove"] = forms.BooleanField(required=False, label="Remove")

    def clean(self) -> dict:
        data = super().clean()
        for weekday in range(7):
            for index in range(self.counts[weekday]):
                prefix = f"d{weekday}_{index}"
                start, end = data.get(f"{prefix}_start"), data.get(f"{prefix}_end")
                if data.get(f"{prefix}_remove") or (start is None and end is None):
                    continue
                if f"{prefix}_start" in self.errors or f"{prefix}_end" in self.errors:
                    continue
                if start is None:
                    self.add_error(f"{prefix}_start", "Give the start of this range too.")
                elif end is None:
                    self.add_error(f"{prefix}_end", "Give the end of this range too.")
        return data

    def hours(self) -> list[tuple[int, time, time]]:
        chosen = []
        for weekday in range(7):
            for index in range(self.counts[weekday]):
                prefix = f"d{weekday}_{index}"
                start, end = self.cleaned_data.get(f"{prefix}_start"), self.cleaned_data.get(f"{prefix}_end")
                if start is not None and end is not None and not self.cleaned_data.get(f"{prefix}_remove"):
                    chosen.append((weekday, start, end))
        return chosen

    def days(self) -> list[dict]:
        """What the template draws: each weekday with its rows of bound fields."""
        days = []
        for weekday in range(7):
            rows = []
            for index in range(self.counts[weekday]):
                prefix = f"d{weekday}_{index}"
                start, end = self[f"{prefix}_start"], self[f"{prefix}_end"]
                is_new = index == self.counts[weekday] - 1 and not (start.value() or end.value())
                rows.append(
                    {"start": start, "end": end, "remove": self[f"{prefix}_remove"], "is_new": is_new}
                )
            days.append({"weekday": weekday, "name": WEEKDAY_NAMES[weekday], "rows": rows})
        return days


class CalendarRulesForm(forms.Form):
    buffer_before_minutes = forms.IntegerField(
        min_value=0, label="Buffer before (minutes)", help_text="Free time kept before each session."
    )
    buffer_after_minutes = forms.IntegerField(
        min_value=0, label="Buffer after (minutes)", help_text="Free time kept after each session."
    )
    minimum_notice_minutes = forms.IntegerField(
        min_value=0,
        label="Minimum notice (minutes)",
        help_text="How long before a session it can still be booked.",
    )
    booking_horizon_days = forms.IntegerField(
        min_value=1, label="Booking horizon (days)", help_text="How far ahead learners can book."
    )
    max_sessions_per_day = forms.IntegerField(
        min_value=1, label="Most sessions a day", help_text="Bookings and group sessions starting on one day."
    )
    requires_approval = forms.BooleanField(
        required=False,
        label="Approve each request",
        help_text="Requests wait for you before they are confirmed.",
    )


class OverrideForm(forms.Form):
    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    kind = forms.ChoiceField(choices=AvailabilityOverride.Kind.choices, initial=AvailabilityOverride.Kind.OFF)
    start_time = forms.TimeField(
        required=False, label="From", widget=TIME_WIDGET, help_text="Extra hours only."
    )
    end_time = forms.TimeField(
        required=False, label="Until", widget=TIME_WIDGET, help_text="Extra hours only."
    )


# --- The page --------------------------------------------------------------------------------------


def _rules_initial(mentor: MentorProfile) -> dict:
    return {
        "buffer_before_minutes": mentor.buffer_before_minutes,
        "buffer_after_minutes": mentor.buffer_after_minutes,
        "minimum_notice_minutes": mentor.minimum_notice_minutes,
        "booking_horizon_days": mentor.booking_horizon_days,
        "max_sessions_per_day": mentor.max_sessions_per_day,
        "requires_approval": mentor.requires_approval,
    }


def _preview(mentor: MentorProfile, zone: ZoneInfo) -> tuple[int | None, list[tuple[date, list[datetime]]]]:
    """The next days' free slots for the mentor's first session length, grouped by local date."""
    if not mentor.session_lengths:
        return None, []
    minutes = mentor.session_lengths[0]
    now = timezone.now()
    slots = mentor_slots(mentor=mentor, minutes=minutes, end=now + timedelta(days=PREVIEW_DAYS), now=now)
    starts = [slot.starts_at.astimezone(zone) for slot in slots]
    return minutes, [(day, list(times)) for day, times in groupby(starts, key=lambda moment: moment.date())]


def _mentor_for(request: HttpRequest) -> MentorProfile:
    try:
        return mentor_profile_ensure(user=request.user)
    except ApplicationError as error:
        raise PermissionDenied(error.message) from error


@login_required
def availability_page(request: HttpRequest) -> HttpResponse:
    mentor = _mentor_for(request)
    zone = ZoneInfo(mentor.user.timezone)
    hours = list(
        WeeklyAvailability.objects.filter(mentor=mentor).values_list("weekday", "start_time", "end_time")
    )
    action = request.POST.get("action") if request.method == "POST" else None
    hours_form = WeeklyHoursForm(request.POST if action == "hours" else None, hours=hours)
    rules_form = CalendarRulesForm(
        request.POST if action == "rules" else None, initial=_rules_initial(mentor)
    )
    override_form = OverrideForm(request.POST if action == "override_add" else None)

    if action == "hours" and hours_form.is_valid():
        try:
            weekly_hours_replace(mentor=mentor, hours=hours_form.hours())
        except ApplicationError as error:
            for message in error.fields.get("hours", [error.message]):
                hours_form.add_error(None, message)
        else:
            messages.success(request, "Your weekly hours are saved.")
            return redirect("mentoring:availability")
    elif action == "rules" and rules_form.is_valid():
        try:
            mentor_calendar_update(mentor=mentor, **rules_form.cleaned_data)
        except ApplicationError as error:
            add_service_errors(rules_form, error)
        else:
            messages.success(request, "Your calendar rules are saved.")
            return redirect("mentoring:availability")
    elif action == "override_add" and override_form.is_valid():
        try:
            availability_override_add(mentor=mentor, **override_form.cleaned_data)
        except ApplicationError as error:
            add_service_errors(override_form, error)
        else:
            messages.success(request, "The date is saved.")
            return redirect("mentoring:availability")
    elif action == "override_remove":
        try:
            availability_override_remove(mentor=mentor, override_id=int(request.POST.get("override_id", "")))
        except (ApplicationError, ValueError):
            messages.error(request, "That date override does not exist (it may already be removed).")
        else:
            messages.success(request, "The date override is removed.")
        return redirect("mentoring:availability")
    elif action is not None and action not in ("hours", "rules", "override_add"):
        messages.error(request, "Something went wrong with that form. Please try again.")
        return redirect("mentoring:availability")

    today = datetime.now(zone).date()
    preview_minutes, preview_days = _preview(mentor, zone)
    context = {
        "mentor": mentor,
        "mentor_timezone": mentor.user.timezone,
        "hours_form": hours_form,
        "rules_form": rules_form,
        "override_form": override_form,
        "overrides": AvailabilityOverride.objects.filter(mentor=mentor, date__gte=today),
        "preview_minutes": preview_minutes,
        "preview_days": preview_days,
        "preview_day_count": PREVIEW_DAYS,
        "next_free_slot": mentor.next_free_slot_at.astimezone(zone) if mentor.next_free_slot_at else None,
    }
    failed = any(form.is_bound and form.errors for form in (hours_form, rules_form, override_form))
    return render(request, "mentoring/availability.html", context, status=400 if failed else 200)


urlpatterns = [
    path("mentor/availability/", availability_page, name="availability"),
]
