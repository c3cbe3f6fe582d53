"""Live rooms: who may join and when, attendance, chat, ICE servers. Sync code: consumers call it
through `tenants.websocket.in_tenant`, inside the institution's schema."""

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from shared.core.errors import ApplicationError
from shared.core.websocket import CLOSE_UNAVAILABLE as _CLOSE_UNAVAILABLE
from tenant_apps.accounts.models import User

from .models import Attendance, Booking, ChatMessage, Enrollment, GroupSession, LiveRoomSettings

# Close codes the room page explains (4000–4999 are the application's).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_EARLY = 4425
CLOSE_ENDED = 4410
CLOSE_THROTTLED = 4429
# Redis (the channel layer and the room registry) is unreachable: retry with backoff.
CLOSE_UNAVAILABLE = _CLOSE_UNAVAILABLE
LIVE_UNAVAILABLE_MESSAGE = "Live features are unavailable at the moment. Reconnecting by itself…"

CHAT_MAX_CHARS = 2000
CHAT_HISTORY = 50
MAX_PARTICIPANTS = 6


class RoomRefused(ApplicationError):
    """Joining is refused; `close_code` tells the page why."""

    def __init__(self, message: str, *, close_code: int, code: str) -> None:
        super().__init__(message, code=code, status=403)
        self.close_code = close_code


@dataclass
class Room:
    kind: str  # "booking" or "group"
    room_id: int
    group: str  # channel-layer group: <schema>.<kind>.<id>
    title: str
    starts_at: datetime
    ends_at: datetime
    opens_at: datetime
    closes_at: datetime
    mentor_id: int
    participants: dict[int, str] = field(default_factory=dict)  # user id → name

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "id": self.room_id,
            "title": self.title,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "closes_at": self.closes_at.isoformat(),
            "mentor_id": self.mentor_id,
        }


def room_group(kind: str, room_id: int) -> str:
    """Group names carry the schema: the same id in two institutions is two rooms."""
    return f"{connection.schema_name}.{kind}.{room_id}"


def _window(starts_at: datetime, ends_at: datetime) -> tuple[datetime, datetime]:
    return (
        starts_at - timedelta(minutes=settings.LIVE_ROOM_OPENS_MINUTES_BEFORE),
        ends_at + timedelta(minutes=settings.LIVE_ROOM_CLOSES_MINUTES_AFTER),
    )


def _booking_room(room_id: int, user: User) -> Room | None:
    booking = Booking.objects.select_related("mentor__user", "learner").filter(pk=room_id).first()
    if booking is None or not booking.is_participant(user):
        return None
    if booking.status not in (Booking.Status.CONFIRMED, Booking.Status.COMPLETED):
        raise RoomRefused(
            f"This session is {booking.get_status_display().lower()}: its room is not open.",
            close_code=CLOSE_FORBIDDEN,
            code="not_confirmed",
        )
    opens_at, closes_at = _window(booking.starts_at, booking.ends_at)
    mentor = booking.mentor.user
    return Room(
        kind="booking",
        room_id=booking.pk,
        group=room_group("booking", booking.pk),
        title=f"{booking.learner.full_name} with {mentor.full_name}",
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        opens_at=opens_at,
        closes_at=closes_at,
        mentor_id=mentor.pk,
        participants={mentor.pk: mentor.full_name, booking.learner_id: booking.learner.full_name},
    )


def _group_room(room_id: int, user: User) -> Room | None:
    session = GroupSession.objects.select_related("mentor__user").filter(pk=room_id).first()
    if session is None:
        return None
    enrolled = {
        e.learner_id: e.learner.full_name
        for e in Enrollment.objects.filter(
            group_session=session, status=Enrollment.Status.ENROLLED
        ).select_related("learner")
    }
    mentor = session.mentor.user
    if user.pk != mentor.pk and user.pk not in enrolled:
        return None
    if session.status == GroupSession.Status.CANCELLED:
        raise RoomRefused("This group session was cancelled.", close_code=CLOSE_ENDED, code="cancelled")
    opens_at, closes_at = _window(session.starts_at, session.ends_at)
    # Everyone enrolled may come; the room itself admits MAX_PARTICIPANTS at a time.
    return Room(
        kind="group",
        room_id=session.pk,
        group=room_group("group", session.pk),
        title=session.title,
        starts_at=session.starts_at,
        ends_at=session.ends_at,
        opens_at=opens_at,
        closes_at=closes_at,
        mentor_id=mentor.pk,
        participants={mentor.pk: mentor.full_name, **enrolled},
    )


def room_join(*, user: User, kind: str, room_id: int, now: datetime | None = None) -> Room:
    """The room `user` may enter now, or RoomRefused with the close code that says why."""
    if not user.is_authenticated:
        raise RoomRefused("Please sign in to join.", close_code=CLOSE_UNAUTHENTICATED, code="unauthenticated")
    room = _booking_room(room_id, user) if kind == "booking" else _group_room(room_id, user)
    if room is None:
        # Not a participant looks the same as no such room: ids reveal nothing.
        raise RoomRefused("There is no such session for you.", close_code=CLOSE_NOT_FOUND, code="not_found")
    now = now or timezone.now()
    if now < room.opens_at:
        raise RoomRefused(
            f"The room opens {settings.LIVE_ROOM_OPENS_MINUTES_BEFORE} minutes before the session starts.",
            close_code=CLOSE_TOO_EARLY,
            code="too_early",
        )
    if now > room.closes_at:
        raise RoomRefused(
            "This session has ended and its room is closed.", close_code=CLOSE_ENDED, code="ended"
        )
    return room


def _room_fields(room: Room) -> dict:
    return {"booking_id": room.room_id} if room.kind == "booking" else {"group_session_id": room.room_id}


def attendance_start(*, room: Room, user: User) -> int:
    return Attendance.objects.create(user=user, joined_at=timezone.now(), **_room_fields(room)).pk


def attendance_end(*, attendance_id: int) -> None:
    Attendance.objects.filter(pk=attendance_id, left_at__isnull=True).update(left_at=timezone.now())


def chat_post(*, room: Room, user: User, body: str) -> dict:
    body = (body or "").strip()
    if not body:
        raise ApplicationError("A chat message cannot be empty.", code="empty_message")
    if len(body) > CHAT_MAX_CHARS:
        raise ApplicationError(f"Chat messages are limited to {CHAT_MAX_CHARS} characters.", code="too_long")
    if _unstorable(body):
        raise ApplicationError("Chat messages cannot contain that character.", code="bad_message")
    message = ChatMessage.objects.create(author=user, body=body, **_room_fields(room))
    return chat_as_dict(message, author_name=user.full_name)


def _unstorable(text: str) -> bool:
    """Whether Postgres would refuse this text: a NUL, or a lone surrogate (not UTF-8 at all)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def chat_as_dict(message: ChatMessage, *, author_name: str) -> dict:
    return {
        "id": message.pk,
        "author_id": message.author_id,
        "author_name": author_name,
        "body": message.body,
        "at": message.created_at.isoformat(),
    }


def chat_history(*, room: Room, limit: int = CHAT_HISTORY) -> list[dict]:
    messages = (
        ChatMessage.objects.filter(**_room_fields(room))
        .select_related("author")
        .order_by("-created_at", "-pk")
    )
    return [chat_as_dict(m, author_name=m.author.full_name) for m in reversed(messages[:limit])]


# --- Attendance → completed / no-show --------------------------------------------------------


def attendance_settle(*, booking: Booking, now: datetime | None = None) -> Booking | None:
    """Once a session's room has closed, its attendance decides: both came → completed; the
    mentor came and the learner did not → no-show. Anything else stays for the mentor to mark."""
    from . import lifecycle

    now = now or timezone.now()
    _, closes_at = _window(booking.starts_at, booking.ends_at)
    if booking.status != Booking.Status.CONFIRMED or now <= closes_at:
        return None
    present = set(Attendance.objects.filter(booking=booking).values_list("user_id", flat=True))
    mentor_came = booking.mentor.user_id in present
    learner_came = booking.learner_id in present
    with transaction.atomic():
        if mentor_came and learner_came:
            return lifecycle.transition(booking=booking, event="complete", actor=None, note="Both attended.")
        if mentor_came:
            return lifecycle.transition(
                booking=booking, event="no_show", actor=None, note="The learner did not join the room."
            )
    return None


# --- ICE servers -----------------------------------------------------------------------------


def live_settings() -> LiveRoomSettings:
    return LiveRoomSettings.objects.order_by("pk").first() or LiveRoomSettings()


def turn_credentials(*, secret: str, user_id: int, ttl_seconds: int, now: float | None = None) -> dict:
    """coturn's `use-auth-secret`: username "<expiry>:<user>", password base64(HMAC-SHA1)."""
    expires = int((now or time.time()) + ttl_seconds)
    username = f"{expires}:{connection.schema_name}-{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return {"username": username, "credential": base64.b64encode(digest).decode(), "expires": expires}


def ice_servers_for(*, user: User) -> list[dict]:
    """What RTCPeerConnection needs: the institution's STUN servers, and TURN with fresh credentials."""
    config = live_settings()
    servers: list[dict] = []
    if config.stun_urls:
        servers.append({"urls": list(config.stun_urls)})
    if config.turn_urls and config.turn_secret:
        creds = turn_credentials(
            secret=config.turn_secret, user_id=user.pk, ttl_seconds=config.turn_credential_ttl_seconds
        )
        servers.append(
            {"urls": list(config.turn_urls), "username": creds["username"], "credential": creds["credential"]}
        )
    return servers
