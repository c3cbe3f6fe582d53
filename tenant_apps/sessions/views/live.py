"""The live-room pages: a session's (or a group session's) room in the browser, for its participants."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache

from shared.core.errors import ApplicationError

from .. import bookings as booking_services
from .. import groups as group_services
from ..live import CLOSE_NOT_FOUND, CLOSE_TOO_EARLY, MAX_PARTICIPANTS, RoomRefused, room_join
from ..models import Enrollment

WEBSOCKET_PATHS = {"booking": "/ws/sessions/{id}/", "group": "/ws/groups/{id}/"}


def _session_of(request: HttpRequest, kind: str, room_id: int):
    """The booking or group session, if `request.user` takes part in it; 404 otherwise.

    Checked before `room_join` so that someone who does not take part learns nothing (not even
    that a session exists or was cancelled) from this page.
    """
    try:
        if kind == "booking":
            return booking_services.booking_get(user=request.user, booking_id=room_id)
        session = group_services.group_session_get(group_session_id=room_id)
    except ApplicationError:
        raise Http404("No such session.") from None
    is_mentor = session.mentor.user_id == request.user.pk
    enrolled = session.enrollments.filter(learner=request.user, status=Enrollment.Status.ENROLLED).exists()
    if not (is_mentor or enrolled):
        raise Http404("No such session.")
    return session


def _back_url(kind: str, room_id: int) -> str:
    name = "mentoring:booking_detail" if kind == "booking" else "mentoring:group_detail"
    return reverse(name, args=[room_id])


def _room_page(request: HttpRequest, *, kind: str, room_id: int) -> HttpResponse:
    session = _session_of(request, kind, room_id)
    back_url = _back_url(kind, room_id)
    try:
        room = room_join(user=request.user, kind=kind, room_id=room_id)
    except RoomRefused as refused:
        if refused.close_code == CLOSE_NOT_FOUND:
            raise Http404("No such session.") from None
        opens_at = session.starts_at - timedelta(minutes=settings.LIVE_ROOM_OPENS_MINUTES_BEFORE)
        context = {
            "refused": refused,
            "too_early": refused.close_code == CLOSE_TOO_EARLY,
            "opens_at": opens_at,
            "session": session,
            "back_url": back_url,
            "now": timezone.now(),
        }
        return render(request, "mentoring/live_room.html", context)
    user = request.user
    config = {
        "websocket_path": WEBSOCKET_PATHS[kind].format(id=room.room_id),
        "room": room.as_dict(),
        "you": {"user_id": user.pk, "name": user.full_name, "is_mentor": user.pk == room.mentor_id},
        "timezone": user.timezone,
        "back_url": back_url,
        "login_url": f"{reverse('accounts:login')}?{urlencode({'next': request.path})}",
        "ice_servers_url": reverse("api-ice-servers"),
        "icons_url": static("vendor/feather-icons/feather-sprite.svg"),
        "max_participants": MAX_PARTICIPANTS,
        "opens_minutes_before": settings.LIVE_ROOM_OPENS_MINUTES_BEFORE,
    }
    context = {"room": room, "config": config, "back_url": back_url, "is_mentor": config["you"]["is_mentor"]}
    return render(request, "mentoring/live_room.html", context)


@never_cache
@login_required
def live_room(request: HttpRequest, booking_id: int) -> HttpResponse:
    return _room_page(request, kind="booking", room_id=booking_id)


@never_cache
@login_required
def group_live_room(request: HttpRequest, group_id: int) -> HttpResponse:
    return _room_page(request, kind="group", room_id=group_id)


urlpatterns = [
    path("sessions/<int:booking_id>/live/", live_room, name="live_room"),
    path("groups/<int:group_id>/live/", group_live_room, name="group_live_room"),
]
