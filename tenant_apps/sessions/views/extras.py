"""Mentoring pages: a session's .ics, the private calendar feed, session materials, reviews."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST, require_safe

from shared.core.errors import ApplicationError
from shared.core.storage import redirect_to_signed_url, signed_media_url

from .. import calendar as ics
from .. import materials as material_services
from .. import reviews as review_services
from ..models import Booking

ICS_CONTENT_TYPE = "text/calendar; charset=utf-8"


def participant_booking(request: HttpRequest, booking_id: int) -> Booking:
    """The booking if the signed-in person takes part in it; 404 for everyone else."""
    booking = Booking.objects.select_related("mentor__user", "learner").filter(pk=booking_id).first()
    if booking is None or not booking.is_participant(request.user):
        raise Http404("No such session.")
    return booking


def ics_response(content: bytes, *, filename: str | None = None) -> HttpResponse:
    response = HttpResponse(content, content_type=ICS_CONTENT_TYPE)
    if filename:
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def material_file_response(material) -> HttpResponse:
    """The stored file as a download that a browser will neither render nor sniff."""
    signed = signed_media_url(
        material.file.name, download_name=material.original_name, content_type=material.content_type
    )
    if signed is not None:  # media in S3: a short-lived link to this file
        return redirect_to_signed_url(signed)
    try:
        handle = material.file.open("rb")
    except (FileNotFoundError, ValueError):
        raise Http404("No such file.") from None
    response = FileResponse(
        handle, as_attachment=True, filename=material.original_name, content_type=material.content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, no-store"
    return response


def _back(booking_id: int) -> HttpResponse:
    return redirect(ics.booking_path(booking_id))


# --- Calendar ----------------------------------------------------------------------------------


@login_required
@require_safe
def booking_ics(request: HttpRequest, booking_id: int) -> HttpResponse:
    booking = participant_booking(request, booking_id)
    if booking.status != Booking.Status.CONFIRMED:
        raise Http404("No such session.")
    return ics_response(ics.booking_ics(booking=booking), filename=f"peerlearn-session-{booking.pk}.ics")


@login_required
@require_GET
def calendar_feed(request: HttpRequest) -> HttpResponse:
    feed = ics.calendar_feed_of(user=request.user)
    response = render(request, "mentoring/calendar_feed.html", {"feed": ics.calendar_feed_urls(feed=feed)})
    # The page shows a secret address: keep it out of Referer headers and shared caches.
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_POST
def calendar_feed_reset(request: HttpRequest) -> HttpResponse:
    had_one = ics.calendar_feed_of(user=request.user) is not None
    ics.calendar_feed_reset(user=request.user)
    if had_one:
        messages.success(request, "Your calendar address was reset. The old address no longer works.")
    else:
        messages.success(request, "Your private calendar address is ready. Add it to your calendar app.")
    return redirect("mentoring:calendar_feed")


@login_required
@require_POST
def calendar_feed_revoke(request: HttpRequest) -> HttpResponse:
    ics.calendar_feed_revoke(user=request.user)
    messages.success(request, "Your calendar feed is turned off. Its address no longer works.")
    return redirect("mentoring:calendar_feed")


@require_safe
def calendar_feed_ics(request: HttpRequest, token: str) -> HttpResponse:
    """What calendar apps fetch: no session, the token is the key (this institution's only)."""
    feed = ics.calendar_feed_by_token(token=token)
    if feed is None:
        raise Http404("No such calendar.")
    response = ics_response(ics.calendar_feed_ics(user=feed.user))
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex"
    return response


# --- Materials ---------------------------------------------------------------------------------


@login_required
@require_POST
def material_upload(request: HttpRequest, booking_id: int) -> HttpResponse:
    booking = participant_booking(request, booking_id)
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose a file to upload.")
        return _back(booking.pk)
    try:
        material = material_services.material_upload(booking=booking, user=request.user, upload=upload)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"“{material.original_name}” was added to the session.")
    return _back(booking.pk)


@login_required
@require_GET
def material_download(request: HttpRequest, booking_id: int, material_id: int) -> HttpResponse:
    material = material_services.material_for(
        booking_id=booking_id, material_id=material_id, user=request.user
    )
    if material is None:
        raise Http404("No such file.")
    return material_file_response(material)


@login_required
@require_POST
def material_delete(request: HttpRequest, booking_id: int, material_id: int) -> HttpResponse:
    material = material_services.material_for(
        booking_id=booking_id, material_id=material_id, user=request.user
    )
    if material is None:
        raise Http404("No such file.")
    try:
        material_services.material_delete(material=material, user=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"“{material.original_name}” was deleted.")
    return _back(booking_id)


# --- Reviews -----------------------------------------------------------------------------------


class ReviewForm(forms.Form):
    rating = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in range(1, 6)],
        coerce=int,
        error_messages={
            "required": "Choose a rating from 1 to 5 stars.",
            "invalid_choice": "Choose a rating from 1 to 5 stars.",
        },
    )
    comment = forms.CharField(required=False, max_length=review_services.COMMENT_MAX_LENGTH)


class ReplyForm(forms.Form):
    reply = forms.CharField(
        max_length=review_services.COMMENT_MAX_LENGTH, error_messages={"required": "Write a reply first."}
    )


def _form_error_messages(request: HttpRequest, form: forms.Form) -> None:
    for errors in form.errors.values():
        for error in errors:
            messages.error(request, error)


@login_required
@require_POST
def review_create(request: HttpRequest, booking_id: int) -> HttpResponse:
    booking = participant_booking(request, booking_id)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        _form_error_messages(request, form)
        return _back(booking.pk)
    try:
        review_services.review_create(
            booking=booking,
            learner=request.user,
            rating=form.cleaned_data["rating"],
            comment=form.cleaned_data["comment"],
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Thank you for your review!")
    return _back(booking.pk)


@login_required
@require_POST
def review_reply(request: HttpRequest, booking_id: int) -> HttpResponse:
    booking = participant_booking(request, booking_id)
    review = review_services.review_of(booking)
    if review is None:
        messages.error(request, "This session has not been reviewed yet.")
        return _back(booking.pk)
    form = ReplyForm(request.POST)
    if not form.is_valid():
        _form_error_messages(request, form)
        return _back(booking.pk)
    try:
        review_services.review_reply(
            review=review, mentor_user=request.user, reply=form.cleaned_data["reply"]
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Your reply was saved.")
    return _back(booking.pk)


urlpatterns = [
    path("sessions/<int:booking_id>/calendar.ics", booking_ics, name="booking_ics"),
    path("calendar/", calendar_feed, name="calendar_feed"),
    path("calendar/reset/", calendar_feed_reset, name="calendar_feed_reset"),
    path("calendar/revoke/", calendar_feed_revoke, name="calendar_feed_revoke"),
    path("calendar/<str:token>.ics", calendar_feed_ics, name="calendar_feed_ics"),
    path("sessions/<int:booking_id>/materials/", material_upload, name="material_upload"),
    path(
        "sessions/<int:booking_id>/materials/<int:material_id>/", material_download, name="material_download"
    ),
    path(
        "sessions/<int:booking_id>/materials/<int:material_id>/delete/",
        material_delete,
        name="material_delete",
    ),
    path("sessions/<int:booking_id>/review/", review_create, name="review_create"),
    path("sessions/<int:booking_id>/review/reply/", review_reply, name="review_reply"),
]
