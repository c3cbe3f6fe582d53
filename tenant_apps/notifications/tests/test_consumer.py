"""The notifications socket over the real stack: sign-in required, and a booking's change (and
the notification it makes) reaches its two participants' open pages, and nobody's in another
institution with the same user ids."""

import secrets

from django_tenants.utils import tenant_context

from shared.core.testing import host_of
from tenant_apps.sessions import bookings as booking_services
from tenant_apps.sessions.models import Booking
from tenant_apps.sessions.tests import test_live_consumer
from tenant_apps.sessions.tests.test_live_consumer import NOW, Sockets, closed, frame, in_db, run, silent

world = test_live_consumer.world  # the fixture: committed people in institutions A and B

PATH = "/ws/notifications/"


def test_an_anonymous_visitor_is_refused(world):
    async def scenario():
        async with Sockets() as sockets:
            socket, accepted, _ = await sockets.connect(host_of(world.a), PATH)
            assert accepted
            assert (await frame(socket))["code"] == "unauthenticated"
            assert await closed(socket) == 4401

    run(scenario)


def test_a_booking_change_reaches_both_participants_and_no_one_elsewhere(world):
    # The same user ids in both institutions: only the schema tells these people apart.
    ids = 5_000_000 + secrets.randbelow(1_000_000)
    people = {}
    for institution in (world.a, world.b):
        mentor, learner = world.mentor(institution, id=ids), world.person(institution, id=ids + 1)
        people[institution.pk] = (mentor, learner)
    mentor, learner = people[world.a.pk]
    booking = world.booking(world.a, mentor, learner, starts_in=NOW, status=Booking.Status.REQUESTED)
    keys = {
        institution.pk: [world.sign_in(institution, person) for person in people[institution.pk]]
        for institution in (world.a, world.b)
    }

    def approve():
        with tenant_context(world.a):
            booking_services.booking_approve(booking=Booking.objects.get(pk=booking.pk), actor=mentor)

    async def scenario():
        async with Sockets() as sockets:
            pages = {}
            for institution in (world.a, world.b):
                pages[institution.pk] = []
                for key in keys[institution.pk]:
                    socket, accepted, _ = await sockets.connect(host_of(institution), PATH, session_key=key)
                    assert accepted and await frame(socket) == {"type": "ready"}
                    pages[institution.pk].append(socket)

            await in_db(approve)
            for socket in pages[world.a.pk]:
                frames = {}
                for _ in range(2):  # the booking's change, and the person's new notification
                    received = await frame(socket)
                    frames[received["type"]] = received
                changed, told = frames["booking.changed"], frames["notification"]
                assert (changed["booking_id"], changed["status"]) == (booking.pk, "confirmed")
                assert told["event"] == "booking_confirmed" and told["url"].endswith(
                    f"/sessions/{booking.pk}/"
                )
            assert await silent(*pages[world.a.pk], *pages[world.b.pk])

    run(scenario)
