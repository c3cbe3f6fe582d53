"""Redis stops while the site runs: pages and the API keep serving from Postgres, a booking made
meanwhile answers normally (its jobs wait in the outbox and leave once Redis is back), the sockets
say live features are unavailable, and they work again when Redis returns."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from shared.core.testing import HostClient, drop_institution, sign_in, signup_for
from tenants.services import institution_provision
from tests.conftest import RunningServer, _database_url

from .conftest import PrivateRedis, app_env, http_request, start_daphne, stop_process

pytestmark = pytest.mark.failures

FRAME_TIMEOUT = 10.0


@pytest.fixture
def scene(test_database, django_db_blocker) -> Iterator[dict]:
    """A committed institution: a mentor and a learner, each with a session cookie, the learner
    with an API token, and their confirmed booking whose live room is open. Dropped afterwards."""
    from rest_framework.authtoken.models import Token

    from shared.core.models import OutboxTask
    from tenant_apps.sessions.tests.factories import make_booking, make_learner, make_mentor

    with django_db_blocker.unblock():
        institution = institution_provision(
            signup=signup_for(f"redis-down-{secrets.token_hex(3)}")
        ).institution
        try:
            mentor = make_mentor(institution, email="mira@mentor.example", full_name="Mira Mentor")
            learner = make_learner(institution, email="leo@learner.example", full_name="Leo Learner")
            with tenant_context(institution):
                booking = make_booking(mentor, learner, timezone.now() + timedelta(minutes=5), minutes=30)
                token = Token.objects.create(user=learner).key
            host = f"{institution.slug}.{settings.PLATFORM_DOMAIN}"
            cookies = {}
            for role, email in (("mentor", mentor.user.email), ("learner", learner.email)):
                client = HostClient(host)
                sign_in(client, email)
                cookies[role] = client.cookies[settings.SESSION_COOKIE_NAME].value
            connection.set_schema_to_public()
            yield {
                "schema": institution.schema_name,
                "host": host,
                "mentor_id": mentor.pk,
                "mentor_user_id": mentor.user.pk,
                "booking_id": booking.pk,
                "cookies": cookies,
                "token": token,
            }
        finally:
            connection.close()
            connection.set_schema_to_public()
            OutboxTask.objects.filter(schema_name=institution.schema_name).delete()
            drop_institution(institution)
            connection.set_schema_to_public()


async def open_socket(server: RunningServer, host: str, path: str, session_key: str) -> ClientConnection:
    """A browser-like WebSocket: Host and Origin of the institution's site, its session cookie."""
    return await connect(
        f"ws://{host}:{server.port}{path}",
        host="127.0.0.1",
        port=server.port,
        origin=f"http://{host}:{server.port}",
        additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session_key}"},
        proxy=None,
        open_timeout=FRAME_TIMEOUT,
    )


async def next_frame(ws: ClientConnection, kind: str) -> dict:
    """The next frame of type `kind` (others skipped), within FRAME_TIMEOUT."""
    async with asyncio.timeout(FRAME_TIMEOUT):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == kind:
                return frame


async def refused(ws: ClientConnection) -> tuple[dict, int]:
    """The error frame a socket gets before the server closes it, and the close code."""
    frame = await next_frame(ws, "error")
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(FRAME_TIMEOUT):
            while True:
                await ws.recv()
    return frame, ws.close_code


def test_the_site_serves_while_redis_is_down_and_live_features_return_with_it(
    scene, private_redis: PrivateRedis, test_database, tmp_path, django_db_blocker
):
    from shared.core.models import OutboxTask
    from tenant_apps.sessions.tests.factories import next_weekday_at

    env = app_env(database_url=_database_url(test_database), redis_url=private_redis.url())
    server = start_daphne(env, tmp_path / "daphne.log")
    host, cookies = scene["host"], scene["cookies"]
    as_learner = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookies['learner']}"}
    token = {"Authorization": f"Token {scene['token']}"}
    room = f"/ws/sessions/{scene['booking_id']}/"
    pages = [
        ("/", as_learner),
        ("/mentors/", as_learner),
        (f"/mentors/{scene['mentor_id']}/", as_learner),
        ("/sessions/", as_learner),
        (f"/sessions/{scene['booking_id']}/", as_learner),
        (f"/sessions/{scene['booking_id']}/live/", as_learner),
        ("/api/v1/mentors/", token),
        ("/api/v1/me/", token),
        ("/api/v1/bookings/", token),
    ]
    try:
        for path, headers in pages:
            response = http_request(server, host, path, headers=headers)
            assert response.status == 200, (path, response.status, response.text[:500])

        private_redis.stop()

        # Every page and API call still answers, from Postgres (sessions are stored there too).
        for path, headers in pages:
            response = http_request(server, host, path, headers=headers)
            assert response.status == 200, (path, response.status, server.log()[-3000:])
        # A booking made now is confirmed and answered; its notifications' jobs wait in Postgres.
        body = {"mentor_id": scene["mentor_id"], "starts_at": next_weekday_at(10).isoformat(), "minutes": 30}
        response = http_request(
            server,
            host,
            "/api/v1/bookings/",
            method="POST",
            body=json.dumps(body).encode(),
            headers={**token, "Content-Type": "application/json"},
        )
        assert response.status == 201, (response.status, response.text[:500], server.log()[-3000:])
        booking_id = json.loads(response.body)["id"]
        with django_db_blocker.unblock():
            waiting = list(OutboxTask.objects.filter(schema_name=scene["schema"]).values_list("name", "args"))
        assert "tenant_apps.notifications.tasks.deliver" in {name for name, _ in waiting}, waiting

        async def while_down() -> None:
            # The live room and the bell's socket say why, and close with 4503 (retry with backoff).
            ws = await open_socket(server, host, room, cookies["learner"])
            frame, code = await refused(ws)
            assert (frame["code"], code) == ("live_unavailable", 4503), frame
            assert "unavailable" in frame["message"]
            ws = await open_socket(server, host, "/ws/notifications/", cookies["learner"])
            frame, code = await refused(ws)
            assert (frame["code"], code) == ("live_unavailable", 4503), frame

        asyncio.run(while_down())

        private_redis.start()  # the same address, empty

        async def after_return() -> None:
            mentor = await open_socket(server, host, room, cookies["mentor"])
            learner = await open_socket(server, host, room, cookies["learner"])
            bell = await open_socket(server, host, "/ws/notifications/", cookies["learner"])
            try:
                await next_frame(mentor, "joined")
                joined = await next_frame(learner, "joined")
                assert [peer["user_id"] for peer in joined["peers"]] == [scene["mentor_user_id"]]
                await learner.send(json.dumps({"type": "chat", "body": "Back again"}))
                line = await next_frame(mentor, "chat")
                assert line["message"]["body"] == "Back again"
                await next_frame(bell, "ready")
            finally:
                for ws in (mentor, learner, bell):
                    await ws.close()

        asyncio.run(after_return())

        # The outbox hands its jobs to the broker once it is back (beat runs this every minute).
        from config.celery import app
        from shared.core.outbox import outbox_flush

        with django_db_blocker.unblock(), app.connection_for_write(private_redis.url()) as broker:
            assert outbox_flush(broker_connection=broker) >= len(waiting)
        with django_db_blocker.unblock():
            assert not OutboxTask.objects.filter(schema_name=scene["schema"]).exists()
        queued = [
            json.loads(raw) for raw in redis.Redis.from_url(private_redis.url()).lrange("celery", 0, -1)
        ]
        mine = [m["headers"] for m in queued if m["headers"].get("_schema_name") == scene["schema"]]
        assert sorted(h["task"] for h in mine) == sorted(name for name, _ in waiting)
        assert booking_id
    finally:
        stop_process(server.process)
