"""Two daphne processes sharing one Redis: a live room and the notifications socket work across them.

The mentor's socket is served by process 1 and the learner's by process 2, so every frame that
reaches the other side crossed the channel layer, never one process' memory.
"""

import asyncio
import http.client
import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context
from websockets.asyncio.client import ClientConnection, connect

from shared.core.testing import PASSWORD, HostClient, drop_institution, sign_in, signup_for
from tenant_apps.sessions.models import Booking
from tenant_apps.sessions.tests.factories import make_booking, make_learner, make_mentor
from tenants.services import institution_provision

from .conftest import (
    DAPHNE,
    REPO_ROOT,
    SERVER_START_TIMEOUT,
    RunningServer,
    _answers,
    _database_url,
    _free_port,
)

FRAME_TIMEOUT = 10.0  # seconds to wait for one expected frame


def _start_daphne(name: str, env: dict, port: int, log_dir) -> RunningServer:
    log_path = log_dir / f"daphne-{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(DAPHNE), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
            cwd=REPO_ROOT,
            env={**env, "SITE_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return RunningServer(port=port, process=process, log_path=log_path)


def _stop(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def two_servers(test_database: dict, tmp_path_factory) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two daphne processes on the test database and the same Redis (the project's channel layer)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(test_database),
        "REDIS_URL": os.environ.get("REDIS_URL", settings.REDIS_URL),
        "PLATFORM_DOMAIN": "localhost",
        "SITE_SCHEME": "http",
        "PYTHONUNBUFFERED": "1",
    }
    log_dir = tmp_path_factory.mktemp("two-daphnes")
    servers = [_start_daphne(name, env, _free_port(), log_dir) for name in ("one", "two")]
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        for server in servers:
            while not _answers(server.port):
                if server.process.poll() is not None:
                    pytest.fail(
                        f"daphne exited with code {server.process.returncode}:\n{server.log()}", pytrace=False
                    )
                if time.monotonic() > deadline:
                    pytest.fail(f"daphne did not answer in time:\n{server.log()}", pytrace=False)
                time.sleep(0.1)
        yield servers[0], servers[1]
    finally:
        for server in servers:
            _stop(server)


@pytest.fixture
def live_booking(test_database, django_db_blocker) -> Iterator[dict]:
    """A committed institution with a mentor, a learner, their confirmed booking in ~5 minutes (its
    room is open) and a signed-in session for each; the institution is dropped afterwards."""
    with django_db_blocker.unblock():
        institution = institution_provision(signup=signup_for(f"live-2p-{secrets.token_hex(3)}")).institution
        try:
            mentor = make_mentor(institution, email="mira@mentor.example", full_name="Mira Mentor")
            learner = make_learner(institution, email="leo@learner.example", full_name="Leo Learner")
            with tenant_context(institution):
                booking = make_booking(mentor, learner, timezone.now() + timedelta(minutes=5), minutes=30)
            host = f"{institution.slug}.{settings.PLATFORM_DOMAIN}"
            cookies = {}
            for role, email in (("mentor", mentor.user.email), ("learner", learner.email)):
                client = HostClient(host)
                sign_in(client, email)
                cookies[role] = client.cookies[settings.SESSION_COOKIE_NAME].value
            connection.set_schema_to_public()
            yield {
                "host": host,
                "booking_id": booking.pk,
                "mentor_id": mentor.user.pk,
                "mentor_email": mentor.user.email,
                "learner_id": learner.pk,
                "cookies": cookies,
            }
        finally:
            connection.close()  # the servers' writes must not wait on a connection of ours
            connection.set_schema_to_public()
            drop_institution(institution)
            connection.set_schema_to_public()


# --- Clients ----------------------------------------------------------------------------------


async def open_socket(server: RunningServer, host: str, path: str, session_key: str) -> ClientConnection:
    """A browser-like WebSocket: Host and Origin of the institution's site, its session cookie."""
    return await connect(
        f"ws://{host}:{server.port}{path}",
        host="127.0.0.1",  # Python does not resolve *.localhost; the Host header still names it
        port=server.port,
        origin=f"http://{host}:{server.port}",
        additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={session_key}"},
        proxy=None,
        open_timeout=FRAME_TIMEOUT,
    )


async def expect_frame(
    ws: ClientConnection, kind: str, match: Callable[[dict], bool] = lambda _: True
) -> dict:
    """The next frame of type `kind` that `match`es (others are skipped), within FRAME_TIMEOUT."""
    seen = []
    try:
        async with asyncio.timeout(FRAME_TIMEOUT):
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("type") == kind and match(frame):
                    return frame
                seen.append(frame.get("type"))
    except TimeoutError:
        pytest.fail(f"no {kind!r} frame within {FRAME_TIMEOUT:.0f} s; got {seen}", pytrace=False)


def http_json(server: RunningServer, host: str, method: str, path: str, body: dict, headers=None) -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=FRAME_TIMEOUT)
    try:
        conn.request(
            method,
            path,
            body=json.dumps(body),
            headers={"Host": f"{host}:{server.port}", "Content-Type": "application/json", **(headers or {})},
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


# --- The test ---------------------------------------------------------------------------------


def test_signalling_chat_and_notifications_cross_between_two_server_processes(two_servers, live_booking):
    one, two = two_servers
    scene = live_booking
    host, booking_id = scene["host"], scene["booking_id"]
    room_path = f"/ws/sessions/{booking_id}/"

    async def scenario() -> None:
        mentor = await open_socket(one, host, room_path, scene["cookies"]["mentor"])
        learner = notifications = None
        try:
            mentor_joined = await expect_frame(mentor, "joined")
            mentor_peer = mentor_joined["peer_id"]

            learner = await open_socket(two, host, room_path, scene["cookies"]["learner"])
            learner_joined = await expect_frame(learner, "joined")
            learner_peer = learner_joined["peer_id"]
            # The learner (process 2) finds the mentor (process 1) already in the room…
            assert [(p["peer_id"], p["user_id"]) for p in learner_joined["peers"]] == [
                (mentor_peer, scene["mentor_id"])
            ]
            # …and the mentor is told the learner arrived.
            arrived = await expect_frame(mentor, "peer.joined")
            assert (arrived["peer"]["peer_id"], arrived["peer"]["user_id"]) == (
                learner_peer,
                scene["learner_id"],
            )

            # Signalling: an offer addressed to the learner's peer id crosses to process 2…
            offer_sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
            await mentor.send(json.dumps({"type": "offer", "to": learner_peer, "sdp": offer_sdp}))
            offer = await expect_frame(learner, "offer")
            assert (offer["from"], offer["sdp"]) == (mentor_peer, offer_sdp)
            # …and the answer comes back to process 1.
            answer_sdp = "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
            await learner.send(json.dumps({"type": "answer", "to": mentor_peer, "sdp": answer_sdp}))
            answer = await expect_frame(mentor, "answer")
            assert (answer["from"], answer["sdp"]) == (learner_peer, answer_sdp)

            # Chat, both ways.
            await mentor.send(json.dumps({"type": "chat", "body": "Hello from process one"}))
            line = await expect_frame(
                learner, "chat", lambda f: f["message"]["body"] == "Hello from process one"
            )
            assert line["message"]["author_id"] == scene["mentor_id"]
            await learner.send(json.dumps({"type": "chat", "body": "Hello back from process two"}))
            line = await expect_frame(
                mentor, "chat", lambda f: f["message"]["body"] == "Hello back from process two"
            )
            assert line["message"]["author_id"] == scene["learner_id"]

            # Keep-alive is answered on both processes.
            for ws in (mentor, learner):
                await ws.send(json.dumps({"type": "ping"}))
                await expect_frame(ws, "pong")

            # The learner's notifications socket (process 2) hears of a cancellation made through
            # process 1's API.
            notifications = await open_socket(two, host, "/ws/notifications/", scene["cookies"]["learner"])
            await expect_frame(notifications, "ready")
            status, body = await asyncio.to_thread(
                http_json,
                one,
                host,
                "POST",
                "/api/v1/auth/token/",
                {"email": scene["mentor_email"], "password": PASSWORD},
            )
            assert status == 201, body
            status, body = await asyncio.to_thread(
                http_json,
                one,
                host,
                "POST",
                f"/api/v1/bookings/{booking_id}/cancel/",
                {"reason": "Something came up."},
                {"Authorization": f"Token {body['token']}"},
            )
            assert status == 200, body
            assert body["status"] == Booking.Status.CANCELLED
            event = await expect_frame(
                notifications, "booking.changed", lambda f: f["booking_id"] == booking_id
            )
            assert event["status"] == Booking.Status.CANCELLED
        finally:
            for ws in (mentor, learner, notifications):
                if ws is not None:
                    await ws.close()

    asyncio.run(scenario())
    for server in (one, two):
        assert "Traceback" not in server.log(), server.log()
