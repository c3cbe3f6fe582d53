"""Pages for bookings: book a slot, my sessions, the mentor dashboard, one session and its actions."""

from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, re_path, reverse
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from shared.core.errors import ApplicationError

from .. import bookings as services
from ..groups import group_sessions_upcoming
from ..lifecycle import allowed_events, cancellation_terms
from ..models import Enrollment, MentorProfile

# Past and closed sessions shown per page of "My sessions" (the upcoming ones are all shown).
PAST_PER_PAGE = 20


def _parse_start(value: str) -> datetime:
    starts_at = parse_datetime(value or "")
    if starts_at is None or starts_at.tzinfo is None:
        raise ApplicationError("Please pick a time from the list.", fields={"starts_at": ["Pick a time."]})
    return starts_at


def _parse_minutes(value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApplicationError("Please choose a session length.") from None


@login_required
@require_POST
def book(request: HttpRequest, mentor_id: int) -> HttpResponse:
    mentor = get_object_or_404(MentorProfile.objects.select_related("user"), pk=mentor_id)
    try:
        booking = services.booking_request(
            learner=request.user,
            mentor=mentor,
            starts_at=_parse_start(request.POST.get("starts_at", "")),
            minutes=_parse_minutes(request.POST.get("minutes", "")),
            topic=request.POST.get("topic", ""),
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect(reverse("mentoring:mentor_detail", args=[mentor.pk]))
    if booking.status == booking.Status.HELD:
        messages.info(request, "Your slot is held while you pay. Complete the payment before the hold ends.")
    elif booking.status == booking.Status.REQUESTED:
        messages.success(request, f"Request sent. {mentor.user.get_short_name()} will confirm it.")
    else:
        messages.success(request, "Booked! The session is in your calendar.")
    return redirect(reverse("mentoring:booking_detail", args=[booking.pk]))


@login_required
def my_sessions(request: HttpRequest) -> HttpResponse:
    sessions = services.learner_sessions(user=request.user)
    past = Paginator(sessions["past"], PAST_PER_PAGE).get_page(request.GET.get("page"))
    enrollments = (
        Enrollment.objects.filter(learner=request.user)
        .exclude(status=Enrollment.Status.CANCELLED)
        .select_related("group_session")
        .order_by("group_session__starts_at")
    )
    context = {"upcoming": sessions["upcoming"], "past": past, "enrollments": enrollments}
    return render(request, "mentoring/my_sessions.html", context)


@login_required
def mentor_dashboard(request: HttpRequest) -> HttpResponse:
    mentor = MentorProfile.objects.select_related("user").filter(user=request.user).first()
    if mentor is None or not request.user.is_mentor:
        if request.user.is_mentor:
            return redirect("mentoring:mentor_profile_edit")
        messages.info(request, "The mentor dashboard is for approved mentors.")
        return redirect("home")
    context = {
        "mentor": mentor,
        **services.mentor_sessions(mentor=mentor),
        "groups": group_sessions_upcoming().filter(mentor=mentor),
    }
    return render(request, "mentoring/dashboard.html", context)


@login_required
def booking_detail(request: HttpRequest, booking_id: int) -> HttpResponse:
    try:
        booking = services.booking_get(user=request.user, booking_id=booking_id)
    except ApplicationError:
        raise Http404("No such session.") from None
    from ..materials import materials_can_upload, materials_for
    from ..reviews import review_can_create, review_can_reply

    is_mentor = booking.mentor.user_id == request.user.pk
    context = {
        "booking": booking,
        "is_mentor": is_mentor,
        "actions": allowed_events(booking),
        "terms": cancellation_terms(booking=booking) if booking.is_live else None,
        "transitions": booking.transitions.select_related("actor"),
        "materials": materials_for(booking=booking, user=request.user),
        "can_upload": materials_can_upload(booking, request.user),
        "can_review": review_can_create(booking, request.user),
        "can_reply": review_can_reply(booking, request.user),
        "reschedule_slots": _reschedule_slots(booking),
        "payments": []
        if is_mentor
        else booking.payments.exclude(status__in=["pending", "cancelled", "failed"]),
    }
    return render(request, "mentoring/booking_detail.html", context)


def _reschedule_slots(booking) -> list:
    if "reschedule" not in allowed_events(booking):
        return []
    from ..slots import mentor_slots

    try:
        return mentor_slots(mentor=booking.mentor, minutes=booking.minutes)[:80]
    except ApplicationError:
        return []  # the mentor no longer offers this length


ACTIONS = {
    "approve": (services.booking_approve, "The session is confirmed."),
    "decline": (services.booking_decline, "The request was declined."),
    "cancel": (services.booking_cancel, "The session is cancelled."),
    "complete": (services.booking_complete, "Marked as completed."),
    "no-show": (services.booking_no_show, "Recorded as a no-show."),
}


@login_required
@require_POST
def booking_action(request: HttpRequest, booking_id: str, action: str) -> HttpResponse:
    try:
        booking = services.booking_get(user=request.user, booking_id=booking_id)
    except ApplicationError:
        raise Http404("No such session.") from None
    handler, done = ACTIONS[action]
    arguments = {"reason": request.POST.get("reason", "")} if action in ("cancel", "decline") else {}
    try:
        handler(booking=booking, actor=request.user, **arguments)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, done)
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse("mentoring:booking_detail", args=[booking.pk])
    return redirect(next_url)


@login_required
@require_POST
def booking_reschedule(request: HttpRequest, booking_id: int) -> HttpResponse:
    try:
        booking = services.booking_get(user=request.user, booking_id=booking_id)
    except ApplicationError:
        raise Http404("No such session.") from None
    try:
        new = services.booking_reschedule(
            booking=booking,
            actor=request.user,
            starts_at=_parse_start(request.POST.get("starts_at", "")),
            minutes=_parse_minutes(request.POST.get("minutes") or booking.minutes),
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect(reverse("mentoring:booking_detail", args=[booking.pk]))
    messages.success(request, "Moved. Your old time is released.")
    return redirect(reverse("mentoring:booking_detail", args=[new.pk]))


urlpatterns = [
    path("mentors/<int:mentor_id>/book/", book, name="book"),
    path("sessions/", my_sessions, name="my_sessions"),
    path("mentor/dashboard/", mentor_dashboard, name="dashboard"),
    path("sessions/<int:booking_id>/", booking_detail, name="booking_detail"),
    path("sessions/<int:booking_id>/reschedule/", booking_reschedule, name="booking_reschedule"),
    re_path(
        r"^sessions/(?P<booking_id>[0-9]+)/(?P<action>approve|decline|cancel|complete|no-show)/$",
        booking_action,
        name="booking_action",
    ),
]
