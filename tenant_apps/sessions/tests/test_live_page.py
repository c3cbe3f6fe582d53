"""The live-room page (who gets the room, who gets a friendly "not open" page, who gets a 404), the
ICE-servers endpoint with its TURN credentials, the join buttons and the admin of the ICE settings."""

import base64
import hashlib
import hmac
import json
import re
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from shared.core.testing import HostClient, host_of, make_user, sign_in

from ..live import MAX_PARTICIPANTS
from ..models import Booking, Enrollment, GroupSession, LiveRoomSettings
from .factories import make_booking, make_learner, make_mentor

CONFIG_BLOCK = re.compile(r'<script id="live-room-config" type="application/json">(.*?)</script>', re.S)


@pytest.fixture
def scene(institution_a):
    """Mentor Mo and learner Lee of A, with a confirmed session starting in two minutes."""
    mentor = make_mentor(institution_a, email="mo@a.example", full_name="Mo Mentor")
    learner = make_learner(institution_a, email="lee@a.example", full_name="Lee Learner")
    make_learner(institution_a, email="olive@a.example", full_name="Olive Outsider")
    with tenant_context(institution_a):
        booking = make_booking(mentor, learner, timezone.now() + timedelta(minutes=2))
    return {"institution": institution_a, "mentor": mentor, "learner": learner, "booking": booking}


def client_for(institution, email: str) -> HostClient:
    client = HostClient(host_of(institution))
    sign_in(client, email)
    return client


def room_config(response) -> dict:
    match = CONFIG_BLOCK.search(response.content.decode())
    assert match, "the room page carries its configuration as a json_script block"
    return json.loads(match.group(1))


# --- The page -------------------------------------------------------------------------------


def test_both_participants_get_the_room(scene):
    booking = scene["booking"]
    for email, is_mentor in (("lee@a.example", False), ("mo@a.example", True)):
        response = client_for(scene["institution"], email).get(f"/sessions/{booking.pk}/live/")
        assert response.status_code == 200
        html = response.content.decode()
        assert 'id="live-room"' in html and 'data-state="connecting"' in html
        assert "/static/js/live-room.js" in html
        assert ("End for everyone" in html) is is_mentor
        config = room_config(response)
        assert config["websocket_path"] == f"/ws/sessions/{booking.pk}/"
        assert config["room"]["kind"] == "booking" and config["room"]["id"] == booking.pk
        assert config["room"]["mentor_id"] == scene["mentor"].user_id
        assert config["you"]["is_mentor"] is is_mentor
        assert config["ice_servers_url"] == "/api/v1/live/ice-servers/"
        assert "no-cache" in response["Cache-Control"]


def test_the_page_has_no_inline_script_and_loads_nothing_from_elsewhere(scene):
    response = client_for(scene["institution"], "lee@a.example").get(f"/sessions/{scene['booking'].pk}/live/")
    html = response.content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_anonymous_people_are_sent_to_sign_in(scene):
    response = HostClient(host_of(scene["institution"])).get(f"/sessions/{scene['booking'].pk}/live/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_others_get_a_404_that_reveals_nothing(scene):
    booking = scene["booking"]
    outsider = client_for(scene["institution"], "olive@a.example")
    assert outsider.get(f"/sessions/{booking.pk}/live/").status_code == 404
    assert outsider.get("/sessions/999999/live/").status_code == 404
    with tenant_context(scene["institution"]):
        Booking.objects.filter(pk=booking.pk).update(status=Booking.Status.CANCELLED)
    # Even a cancelled session looks like no session to someone who was not in it.
    assert outsider.get(f"/sessions/{booking.pk}/live/").status_code == 404


def test_a_user_of_another_institution_never_reaches_the_room(scene, institution_b):
    """B has a user with the same e-mail and a booking with the same id: neither opens A's room."""
    booking = scene["booking"]
    mentor_b = make_mentor(institution_b, email="mo@b.example")
    learner_b = make_learner(institution_b, email="lee@a.example", full_name="Lee of B")
    client_b = client_for(institution_b, "lee@a.example")
    assert client_b.get(f"/sessions/{booking.pk}/live/").status_code == 404
    with tenant_context(institution_b):
        own = make_booking(mentor_b, learner_b, timezone.now() + timedelta(minutes=3))
    response = client_b.get(f"/sessions/{own.pk}/live/")
    assert response.status_code == 200
    assert room_config(response)["room"]["mentor_id"] == mentor_b.user_id
    # A's session cookie is worthless on B's host.
    lee_a = client_for(scene["institution"], "lee@a.example")
    lee_a.defaults["HTTP_HOST"] = host_of(institution_b)
    assert lee_a.get(f"/sessions/{own.pk}/live/").status_code == 302


def test_too_early_shows_when_the_room_opens(scene):
    with tenant_context(scene["institution"]):
        later = make_booking(scene["mentor"], scene["learner"], timezone.now() + timedelta(days=2, hours=1))
    response = client_for(scene["institution"], "lee@a.example").get(f"/sessions/{later.pk}/live/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="live-room-not-open"' in html
    assert 'id="live-room"' not in html and "live-room.js" not in html
    opens = timezone.localtime(later.starts_at - timedelta(minutes=10), timezone.get_current_timezone())
    assert "The room opens at" in html
    assert f"<strong>{opens:%H:%M}</strong>" in html  # Lee's time zone is UTC
    assert "10 minutes before the session starts" in html


def test_an_ended_or_cancelled_session_explains_itself(scene):
    with tenant_context(scene["institution"]):
        past = make_booking(scene["mentor"], scene["learner"], timezone.now() - timedelta(days=1))
        Booking.objects.filter(pk=past.pk).update(status=Booking.Status.COMPLETED)
        cancelled = make_booking(
            scene["mentor"],
            scene["learner"],
            timezone.now() + timedelta(minutes=5),
            status=Booking.Status.CANCELLED,
        )
    client = client_for(scene["institution"], "lee@a.example")
    ended = client.get(f"/sessions/{past.pk}/live/").content.decode()
    assert "This session has ended and its room is closed." in ended and 'id="live-room"' not in ended
    refused = client.get(f"/sessions/{cancelled.pk}/live/").content.decode()
    assert "This session is cancelled: its room is not open." in refused and 'id="live-room"' not in refused


def test_the_booking_page_offers_the_room_for_confirmed_sessions_only(scene):
    booking = scene["booking"]
    client = client_for(scene["institution"], "lee@a.example")
    html = client.get(f"/sessions/{booking.pk}/").content.decode()
    assert f'href="/sessions/{booking.pk}/live/"' in html and "Join the live room" in html
    with tenant_context(scene["institution"]):
        Booking.objects.filter(pk=booking.pk).update(status=Booking.Status.CANCELLED)
    assert "Join the live room" not in client.get(f"/sessions/{booking.pk}/").content.decode()


# --- Group sessions -------------------------------------------------------------------------


@pytest.fixture
def group(scene):
    institution = scene["institution"]
    waiting = make_learner(institution, email="wes@a.example", full_name="Wes Waiting")
    with tenant_context(institution):
        start = timezone.now() + timedelta(minutes=5)
        session = GroupSession.objects.create(
            mentor=scene["mentor"],
            title="Kubernetes clinic",
            starts_at=start,
            ends_at=start + timedelta(hours=1),
            capacity=1,
            currency="GBP",
        )
        Enrollment.objects.create(
            group_session=session, learner=scene["learner"], status=Enrollment.Status.ENROLLED
        )
        Enrollment.objects.create(group_session=session, learner=waiting, status=Enrollment.Status.WAITLISTED)
    return session


def test_the_group_room_is_for_its_mentor_and_enrolled_learners(scene, group):
    institution = scene["institution"]
    for email in ("lee@a.example", "mo@a.example"):
        client = client_for(institution, email)
        response = client.get(f"/groups/{group.pk}/live/")
        assert response.status_code == 200
        config = room_config(response)
        assert config["websocket_path"] == f"/ws/groups/{group.pk}/"
        assert config["room"]["title"] == "Kubernetes clinic"
        assert f'href="/groups/{group.pk}/live/"' in client.get(f"/groups/{group.pk}/").content.decode()
    for email in ("wes@a.example", "olive@a.example"):
        client = client_for(institution, email)
        assert client.get(f"/groups/{group.pk}/live/").status_code == 404
        assert "Join the live room" not in client.get(f"/groups/{group.pk}/").content.decode()


def test_a_cancelled_group_session_has_no_room(scene, group):
    with tenant_context(scene["institution"]):
        GroupSession.objects.filter(pk=group.pk).update(status=GroupSession.Status.CANCELLED)
    client = client_for(scene["institution"], "lee@a.example")
    html = client.get(f"/groups/{group.pk}/live/").content.decode()
    assert "This group session was cancelled." in html and 'id="live-room"' not in html
    assert "Join the live room" not in client.get(f"/groups/{group.pk}/").content.decode()


# --- ICE servers ----------------------------------------------------------------------------


def expected_credential(secret: str, username: str) -> str:
    """coturn's use-auth-secret, computed here without the code under test."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def test_ice_servers_need_a_signed_in_user(client_a):
    response = client_a.get("/api/v1/live/ice-servers/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_without_settings_there_are_no_ice_servers(scene):
    response = client_for(scene["institution"], "lee@a.example").get("/api/v1/live/ice-servers/")
    assert response.status_code == 200
    assert response.json() == {"ice_servers": []}


def test_turn_credentials_are_short_lived_and_signed_with_the_secret(scene):
    institution, learner = scene["institution"], scene["learner"]
    with tenant_context(institution):
        LiveRoomSettings.objects.create(
            stun_urls=["stun:stun.a.example:3478"],
            turn_urls=["turn:turn.a.example:3478?transport=udp", "turns:turn.a.example:5349"],
            turn_secret="shared-with-coturn",
            turn_credential_ttl_seconds=600,
        )
        with connection.cursor() as cursor:  # stored encrypted
            cursor.execute("SELECT turn_secret FROM mentoring_liveroomsettings")
            assert "shared-with-coturn" not in cursor.fetchone()[0]
    before = int(time.time())
    response = client_for(institution, "lee@a.example").get("/api/v1/live/ice-servers/")
    after = int(time.time())
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    stun, turn = response.json()["ice_servers"]
    assert stun == {"urls": ["stun:stun.a.example:3478"]}
    assert turn["urls"] == ["turn:turn.a.example:3478?transport=udp", "turns:turn.a.example:5349"]
    expiry, _, who = turn["username"].partition(":")
    assert who == f"{institution.schema_name}-{learner.pk}"
    assert before + 600 <= int(expiry) <= after + 600
    assert turn["credential"] == expected_credential("shared-with-coturn", turn["username"])
    assert turn["credential"] != expected_credential("another-secret", turn["username"])


def test_turn_usernames_differ_between_institutions_with_the_same_user_id(scene, institution_b):
    secret = "same-secret-everywhere"
    names = []
    for institution in (scene["institution"], institution_b):
        user = make_user(institution, email="same@example.org")
        with tenant_context(institution):
            LiveRoomSettings.objects.create(turn_urls=["turn:turn.example:3478"], turn_secret=secret)
        client = client_for(institution, "same@example.org")
        names.append((user.pk, client.get("/api/v1/live/ice-servers/").json()["ice_servers"][0]["username"]))
    (_, a_name), (_, b_name) = names
    assert a_name.split(":", 1)[1] != b_name.split(":", 1)[1]


def test_the_ice_endpoint_is_in_the_api_schema(scene):
    client = client_for(scene["institution"], "lee@a.example")
    schema = client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/live/ice-servers/"]["get"]
    assert operation["operationId"] == "live_ice_servers_retrieve"
    assert "401" in operation["responses"]


# --- Admin ----------------------------------------------------------------------------------


def test_the_tenant_admin_sets_the_ice_servers_once_and_never_sees_the_secret(client_a, institution_a):
    sign_in(client_a, f"admin@{institution_a.slug}.example")
    base = "/admin/mentoring/liveroomsettings/"
    assert client_a.get(base)["Location"] == f"{base}add/"

    form = {
        "stun_urls": "stun:stun.a.example:3478",
        "turn_urls": "turn:turn.a.example:3478,turns:turn.a.example:5349",
        "turn_secret": "top-secret-value",
        "turn_credential_ttl_seconds": "900",
    }
    bad = client_a.post(f"{base}add/", {**form, "turn_urls": "http://turn.a.example"})
    assert bad.status_code == 200 and "must start with turn: or turns:" in bad.content.decode()
    assert client_a.post(f"{base}add/", form).status_code == 302
    with tenant_context(institution_a):
        row = LiveRoomSettings.objects.get()
    assert row.turn_secret == "top-secret-value"
    assert row.turn_urls == ["turn:turn.a.example:3478", "turns:turn.a.example:5349"]

    assert client_a.get(base)["Location"] == f"{base}{row.pk}/change/"
    assert client_a.get(f"{base}add/").status_code == 403  # one row only
    page = client_a.get(f"{base}{row.pk}/change/").content.decode()
    assert re.search(r'<input type="password" name="turn_secret"', page)
    assert "top-secret-value" not in page

    # Saved without typing the secret again: it stays.
    assert (
        client_a.post(
            f"{base}{row.pk}/change/", {**form, "turn_secret": "", "turn_credential_ttl_seconds": "1200"}
        ).status_code
        == 302
    )
    with tenant_context(institution_a):
        row.refresh_from_db()
    assert row.turn_secret == "top-secret-value" and row.turn_credential_ttl_seconds == 1200


def test_every_enrolled_learner_may_open_the_group_room(scene, group):
    """The room admits MAX_PARTICIPANTS at a time (the socket says when it is full), not a fixed list."""
    institution = scene["institution"]
    with tenant_context(institution):
        GroupSession.objects.filter(pk=group.pk).update(capacity=10)
    latecomers = []
    for number in range(MAX_PARTICIPANTS):
        learner = make_learner(institution, email=f"seat{number}@a.example")
        with tenant_context(institution):
            Enrollment.objects.create(group_session=group, learner=learner, status=Enrollment.Status.ENROLLED)
        latecomers.append(learner)
    assert client_for(institution, "lee@a.example").get(f"/groups/{group.pk}/live/").status_code == 200
    response = client_for(institution, latecomers[-1].email).get(f"/groups/{group.pk}/live/")
    assert response.status_code == 200
    assert 'id="live-room"' in response.content.decode()
