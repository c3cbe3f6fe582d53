"""The notification centre: a person's list, marking read, opening, the bell's count, preferences,
the institution's defaults and the delivery log; who may see what, in which institution."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from shared.core.testing import HostClient, host_of, make_user, sign_in
from tenant_apps.accounts.models import User
from tenants.models import Institution

from .. import services
from ..models import Channel, Delivery, Event, InstitutionDefault, Notification, Preference
from ..services import Message

# --- Scenes --------------------------------------------------------------------------------------------


def client_for(institution: Institution, user: User) -> HostClient:
    client = HostClient(host_of(institution))
    sign_in(client, user.email)
    return client


def admin_of(institution: Institution) -> User:
    with tenant_context(institution):
        return User.objects.get(role=User.Role.ADMIN)


def tell(
    institution: Institution, user: User, title: str, *, event=Event.BOOKING_CONFIRMED, url=""
) -> Notification:
    """A notification made the way the rest of the site makes them."""
    with tenant_context(institution):
        (made,) = services.notify(
            event=event, recipients=[user], message=Message(title=title, body="", url=url)
        )
        return made


def pile(institution: Institution, user: User, count: int, *, prefix: str = "Old news") -> None:
    """Many notifications at once (older than anything made after)."""
    with tenant_context(institution):
        Notification.objects.bulk_create(
            Notification(recipient=user, event=Event.PAYMENT_RECEIVED, title=f"{prefix} {i}")
            for i in range(count)
        )


def text(response) -> str:
    return response.content.decode()


def ids_on(page: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-testid="notification-(\d+)"', page)]


@pytest.fixture
def learner(institution_a) -> User:
    return make_user(institution_a, email="lee@a.example", full_name="Lee Learner")


@pytest.fixture
def other(institution_a) -> User:
    return make_user(institution_a, email="oli@a.example", full_name="Oli Other")


@pytest.fixture
def learner_client(institution_a, learner) -> HostClient:
    return client_for(institution_a, learner)


@pytest.fixture
def admin_client(institution_a) -> HostClient:
    return client_for(institution_a, admin_of(institution_a))


# --- The list ------------------------------------------------------------------------------------------


def test_the_list_shows_my_notifications_newest_first_with_the_unread_marked(
    institution_a, learner, other, learner_client
):
    first = tell(institution_a, learner, "Your session with Mo is confirmed", url="/sessions/")
    second = tell(institution_a, learner, "Payment received: GBP 25.00")
    tell(institution_a, other, "Somebody else's news")
    with tenant_context(institution_a):
        services.mark_read(user=learner, notification_ids=[first.pk])

    response = learner_client.get("/notifications/")
    page = text(response)
    assert response.status_code == 200
    assert ids_on(page) == [second.pk, first.pk]
    assert f'data-testid="notification-{second.pk}" data-unread="true"' in page
    assert f'data-testid="notification-{first.pk}" data-unread="false"' in page
    assert "Somebody else" not in page
    assert "1 unread notification." in page
    assert f"/notifications/{first.pk}/open/" in page
    assert "just now" in page

    unread_only = text(learner_client.get("/notifications/?unread=1"))
    assert ids_on(unread_only) == [second.pk]


def test_the_list_is_paginated_and_costs_the_same_queries_however_long(
    institution_a, learner, learner_client
):
    pile(institution_a, learner, 3)
    learner_client.get("/notifications/")  # the institution's lookups are cached from here on
    with CaptureQueriesContext(connection) as three:
        page = text(learner_client.get("/notifications/"))
    assert len(ids_on(page)) == 3

    pile(institution_a, learner, 40, prefix="Later news")
    with CaptureQueriesContext(connection) as forty_three:
        page = text(learner_client.get("/notifications/"))
    assert len(ids_on(page)) == 30
    assert "Page 1 of 2" in page
    assert len(forty_three.captured_queries) == len(three.captured_queries)

    second = text(learner_client.get("/notifications/?page=2"))
    assert len(ids_on(second)) == 13
    assert not set(ids_on(second)) & set(ids_on(page))
    assert learner_client.get("/notifications/?page=nonsense").status_code == 200


def test_the_pages_need_a_signed_in_person(client_a):
    for url in (
        "/notifications/",
        "/notifications/preferences/",
        "/notifications/log/",
        "/notifications/defaults/",
    ):
        response = client_a.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
    assert client_a.post("/notifications/read/").status_code == 302
    assert client_a.get("/notifications/1/open/").status_code == 302
    response = client_a.get("/notifications/unread.json")
    assert response.status_code == 401 and response.json()["unread"] == 0


# --- Marking read, opening, the bell's count ---------------------------------------------------------


def test_marking_some_then_all_read_changes_only_my_notifications(
    institution_a, learner, other, learner_client
):
    mine = [tell(institution_a, learner, f"Mine {i}") for i in range(3)]
    theirs = tell(institution_a, other, "Theirs")

    response = learner_client.post("/notifications/read/", {"id": [mine[0].pk, theirs.pk]})
    assert response.status_code == 302 and response["Location"] == "/notifications/"
    with tenant_context(institution_a):
        assert set(Notification.objects.filter(read_at__isnull=False).values_list("pk", flat=True)) == {
            mine[0].pk
        }

    # The bell asks for JSON.
    response = learner_client.post(
        "/notifications/read/", {"id": [mine[1].pk]}, headers={"accept": "application/json"}
    )
    assert response.json() == {"unread": 1, "marked": 1}
    assert learner_client.get("/notifications/unread.json").json() == {"unread": 1, "latest": mine[2].pk}

    # None given: all of mine, and back where the form was.
    response = learner_client.post("/notifications/read/", {"next": "/notifications/?unread=1"})
    assert response["Location"] == "/notifications/?unread=1"
    assert learner_client.get("/notifications/unread.json").json()["unread"] == 0
    with tenant_context(institution_a):
        assert Notification.objects.get(pk=theirs.pk).read_at is None


def test_marking_read_refuses_odd_ids_and_never_redirects_off_the_site(
    institution_a, learner, learner_client
):
    note = tell(institution_a, learner, "Still unread")
    for bad in (["abc"], ["-1"], ["0"], [str(2**70)]):
        assert learner_client.post("/notifications/read/", {"id": bad}).status_code == 400, bad
    response = learner_client.post(
        "/notifications/read/", {"id": ["x"]}, headers={"accept": "application/json"}
    )
    assert response.status_code == 400 and "error" in response.json()
    assert learner_client.get("/notifications/read/").status_code == 405
    with tenant_context(institution_a):
        assert Notification.objects.get(pk=note.pk).read_at is None

    for unsafe in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = learner_client.post("/notifications/read/", {"id": [note.pk], "next": unsafe})
        assert response["Location"] == "/notifications/", unsafe
    response = learner_client.post(
        "/notifications/read/",
        {"id": [note.pk]},
        headers={"referer": f"http://{host_of(institution_a)}/sessions/"},
    )
    assert response["Location"] == f"http://{host_of(institution_a)}/sessions/"


def test_opening_marks_read_and_goes_to_its_page_only_for_its_recipient(
    institution_a, learner, other, learner_client
):
    note = tell(institution_a, learner, "Session moved", url="/sessions/")
    bare = tell(institution_a, learner, "Nothing to open")
    elsewhere = tell(institution_a, learner, "Odd link", url="https://evil.example/phish")
    theirs = tell(institution_a, other, "Theirs", url="/sessions/")

    response = learner_client.get(f"/notifications/{note.pk}/open/")
    assert response.status_code == 302 and response["Location"] == "/sessions/"
    assert learner_client.get(f"/notifications/{bare.pk}/open/")["Location"] == "/notifications/"
    assert learner_client.get(f"/notifications/{elsewhere.pk}/open/")["Location"] == "/notifications/"
    assert learner_client.get(f"/notifications/{note.pk}/open/")["Location"] == "/sessions/"  # again: fine

    assert learner_client.get(f"/notifications/{theirs.pk}/open/").status_code == 404
    assert learner_client.get("/notifications/999999999/open/").status_code == 404
    with tenant_context(institution_a):
        assert Notification.objects.get(pk=theirs.pk).read_at is None
        assert not Notification.objects.filter(recipient=learner, read_at__isnull=True).exists()


def test_the_bell_is_on_every_page_of_a_signed_in_person_and_nowhere_else(
    institution_a, learner_client, client_a, platform_client
):
    page = text(learner_client.get("/"))
    assert 'data-testid="notification-bell"' in page
    assert 'data-unread-url="/notifications/unread.json"' in page
    assert 'data-open-url="/notifications/0/open/"' in page
    assert "js/notifications.js" in page
    assert "<script>" not in page  # everything runs from static files (CSP)
    assert 'data-testid="notification-bell"' not in text(client_a.get("/"))
    assert 'data-testid="notification-bell"' not in text(platform_client.get("/"))


# --- Institutions ----------------------------------------------------------------------------------------


def test_another_institution_never_sees_these_notifications(institution_a, institution_b, learner):
    a_note = tell(institution_a, learner, "Alpha secret", url="/sessions/")
    b_person = make_user(institution_b, email="bea@b.example")
    b_client = client_for(institution_b, b_person)

    page = text(b_client.get("/notifications/"))
    assert "Alpha secret" not in page and ids_on(page) == []
    assert b_client.get("/notifications/unread.json").json() == {"unread": 0, "latest": 0}
    assert b_client.get(f"/notifications/{a_note.pk}/open/").status_code == 404
    b_client.post("/notifications/read/", {"id": [a_note.pk]})
    with tenant_context(institution_a):
        assert Notification.objects.get(pk=a_note.pk).read_at is None

    # A's session means nothing on B's host.
    a_client = client_for(institution_a, learner)
    a_client.defaults["HTTP_HOST"] = host_of(institution_b)
    assert a_client.get("/notifications/")["Location"].startswith("/accounts/login/")


# --- Preferences -----------------------------------------------------------------------------------------


def grid_of(page: str) -> dict[str, dict[str, str]]:
    """{event: {channel: "on" | "off" | "disabled"}} read from the rendered grid."""
    grid: dict[str, dict[str, str]] = {}
    for event, channel, rest in re.findall(r'name="(\w+):(\w+)" value="1"([^>]*)>', page):
        state = "disabled" if "disabled" in rest else ("on" if "checked" in rest else "off")
        grid.setdefault(event, {})[channel] = state
    return grid


def test_preferences_show_the_institution_default_until_the_person_chooses(
    institution_a, learner, learner_client
):
    with tenant_context(institution_a):
        InstitutionDefault.objects.create(event=Event.PAYMENT_RECEIVED, in_app=True, email=False, sms=False)

    page = text(learner_client.get("/notifications/preferences/"))
    grid = grid_of(page)
    assert set(grid) == set(Event.values)
    assert grid[Event.PAYMENT_RECEIVED] == {
        "in_app": "on",
        "email": "off",
        "sms": "disabled",
    }  # the institution's
    assert grid[Event.BOOKING_CONFIRMED] == {"in_app": "on", "email": "on", "sms": "disabled"}  # built in
    assert grid[Event.REVIEW_REQUESTED]["email"] == "off"
    assert f'data-testid="event-{Event.PAYMENT_RECEIVED}" data-default="true"' in page
    assert 'data-testid="sms-hint"' in page

    # Untick email for confirmations and tick it for review requests; the rest stays as shown.
    form = {
        f"{event}:{channel}": "1"
        for event, row in grid.items()
        for channel, state in row.items()
        if state == "on"
    }
    del form[f"{Event.BOOKING_CONFIRMED}:email"]
    form[f"{Event.REVIEW_REQUESTED}:email"] = "1"
    response = learner_client.post("/notifications/preferences/", form)
    assert response.status_code == 302 and response["Location"] == "/notifications/preferences/"

    with tenant_context(institution_a):
        rows = {p.event: p for p in Preference.objects.filter(user=learner)}
        assert set(rows) == {Event.BOOKING_CONFIRMED, Event.REVIEW_REQUESTED}  # only what differs
        assert services.channels_for(user=learner, event=Event.BOOKING_CONFIRMED) == {Channel.IN_APP}
        assert services.channels_for(user=learner, event=Event.REVIEW_REQUESTED) == {
            Channel.IN_APP,
            Channel.EMAIL,
        }
        # The others still follow the institution: its change reaches the person.
        InstitutionDefault.objects.filter(event=Event.PAYMENT_RECEIVED).update(email=True)
        assert services.channels_for(user=learner, event=Event.PAYMENT_RECEIVED) == {
            Channel.IN_APP,
            Channel.EMAIL,
        }

    page = text(learner_client.get("/notifications/preferences/"))
    assert f'data-testid="event-{Event.BOOKING_CONFIRMED}" data-default="false"' in page
    assert grid_of(page)[Event.BOOKING_CONFIRMED]["email"] == "off"

    # Back to the defaults.
    learner_client.post("/notifications/preferences/", {"action": "reset"})
    with tenant_context(institution_a):
        assert not Preference.objects.filter(user=learner).exists()


def test_without_an_opted_in_number_saving_keeps_what_sms_was(institution_a, learner, learner_client):
    with tenant_context(institution_a):
        Preference.objects.create(
            user=learner, event=Event.SESSION_STARTING, in_app=True, email=False, sms=True
        )
    # SMS boxes are disabled, so the browser posts nothing for them.
    form = {f"{event}:in_app": "1" for event in Event.values}
    learner_client.post("/notifications/preferences/", form)
    with tenant_context(institution_a):
        kept = Preference.objects.get(user=learner, event=Event.SESSION_STARTING)
        assert (kept.in_app, kept.email, kept.sms) == (True, False, True)
        one_hour = Preference.objects.get(user=learner, event=Event.REMINDER_1H)  # email unticked
        assert (one_hour.in_app, one_hour.email, one_hour.sms) == (True, False, True)  # the default's SMS


def test_with_an_opted_in_number_the_sms_boxes_are_offered(institution_a):
    person = make_user(institution_a, email="sam@a.example", phone="+447700900123", sms_opt_in=True)
    client = client_for(institution_a, person)
    page = text(client.get("/notifications/preferences/"))
    assert 'data-testid="sms-hint"' not in page
    assert grid_of(page)[Event.REMINDER_1H]["sms"] == "on"
    assert grid_of(page)[Event.BOOKING_CONFIRMED]["sms"] == "off"
    client.post("/notifications/preferences/", {f"{Event.BOOKING_CONFIRMED}:sms": "1"})
    with tenant_context(institution_a):
        assert services.channels_for(user=person, event=Event.BOOKING_CONFIRMED) == {Channel.SMS}


# --- The institution's defaults (administrators) ---------------------------------------------------------


def test_only_administrators_set_the_institutions_defaults(
    institution_a, learner, learner_client, admin_client
):
    assert learner_client.get("/notifications/defaults/").status_code == 403
    assert learner_client.post("/notifications/defaults/", {"action": "reset"}).status_code == 403
    mentor = make_user(
        institution_a, email="mo@a.example", role=User.Role.MENTOR, mentor_status=User.MentorStatus.APPROVED
    )
    assert client_for(institution_a, mentor).get("/notifications/defaults/").status_code == 403
    assert "Institution defaults" not in text(learner_client.get("/notifications/"))

    page = text(admin_client.get("/notifications/defaults/"))
    grid = grid_of(page)
    assert grid[Event.SESSION_STARTING] == {
        "in_app": "on",
        "email": "off",
        "sms": "on",
    }  # admins may choose SMS
    assert "Institution defaults" in page and "Delivery log" in page

    form = {
        f"{event}:{channel}": "1"
        for event, row in grid.items()
        for channel, state in row.items()
        if state == "on"
    }
    form[f"{Event.BOOKING_CONFIRMED}:sms"] = "1"
    response = admin_client.post("/notifications/defaults/", form)
    assert response.status_code == 302 and response["Location"] == "/notifications/defaults/"
    with tenant_context(institution_a):
        assert list(InstitutionDefault.objects.values_list("event", "in_app", "email", "sms")) == [
            (Event.BOOKING_CONFIRMED, True, True, True)
        ]
        assert services.institution_defaults()[Event.BOOKING_CONFIRMED] == {
            Channel.IN_APP,
            Channel.EMAIL,
            Channel.SMS,
        }
    assert grid_of(text(learner_client.get("/notifications/preferences/")))[Event.BOOKING_CONFIRMED] == {
        "in_app": "on",
        "email": "on",
        "sms": "disabled",
    }

    admin_client.post("/notifications/defaults/", {"action": "reset"})
    with tenant_context(institution_a):
        assert not InstitutionDefault.objects.exists()


# --- The delivery log (administrators) -------------------------------------------------------------------


def test_the_delivery_log_is_for_administrators_and_filters_by_channel_and_status(
    institution_a, institution_b, learner, learner_client, admin_client
):
    notes = [tell(institution_a, learner, f"Confirmed {i}") for i in range(3)]
    with tenant_context(institution_a):
        emails = list(Delivery.objects.filter(channel=Channel.EMAIL).order_by("pk"))
        assert len(emails) == 3
        Delivery.objects.filter(pk=emails[0].pk).update(
            status=Delivery.Status.SENT, to=learner.email, provider_id="<msg-1@peerlearn>"
        )
        Delivery.objects.filter(pk=emails[1].pk).update(
            status=Delivery.Status.FAILED, to=learner.email, error="Mailbox unavailable", attempts=2
        )
        sms = Delivery.objects.create(
            notification=notes[2],
            channel=Channel.SMS,
            status=Delivery.Status.DELIVERED,
            to="+447700900123",
            provider_id="SM0123456789abcdef0123456789abcdef",
            provider_status="delivered",
        )

    assert learner_client.get("/notifications/log/").status_code == 403

    admin_client.get("/notifications/log/")
    with CaptureQueriesContext(connection) as four:
        page = text(admin_client.get("/notifications/log/"))
    assert page.count('data-testid="delivery-') == 4
    for fragment in (
        "Lee Learner",
        "lee@a.example",
        "Session confirmed",
        "&lt;msg-1@peerlearn&gt;",
        "Mailbox unavailable",
        "+447700900123",
        "SM0123456789abcdef0123456789abcdef",
        "2 attempts",
        "Delivered",
        "Pending",
    ):
        assert fragment in page, fragment

    sms_only = text(admin_client.get("/notifications/log/?channel=sms"))
    assert re.findall(r'data-testid="delivery-(\d+)"', sms_only) == [str(sms.pk)]
    failed = text(admin_client.get("/notifications/log/?status=failed"))
    assert re.findall(r'data-testid="delivery-(\d+)"', failed) == [str(emails[1].pk)]
    assert (
        text(admin_client.get("/notifications/log/?channel=email&status=delivered")).count(
            'data-testid="delivery-'
        )
        == 0
    )
    assert text(admin_client.get("/notifications/log/?q=+4477009")).count('data-testid="delivery-') == 1
    odd = admin_client.get("/notifications/log/?channel=pigeon&status=lost&page=x")
    assert odd.status_code == 200 and text(odd).count('data-testid="delivery-') == 4

    more = [tell(institution_a, learner, f"More {i}") for i in range(60)]
    assert more
    with CaptureQueriesContext(connection) as many:
        page = text(admin_client.get("/notifications/log/"))
    assert page.count('data-testid="delivery-') == 50 and "Page 1 of 2" in page
    assert len(many.captured_queries) == len(four.captured_queries)

    # Institution B's administrator sees none of A's deliveries.
    b_admin = client_for(institution_b, admin_of(institution_b))
    assert text(b_admin.get("/notifications/log/")).count('data-testid="delivery-') == 0


def test_the_platform_site_has_no_notification_pages(platform_client):
    assert platform_client.get("/notifications/").status_code == 404
