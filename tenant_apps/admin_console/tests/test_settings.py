"""The institution's settings page: saves, refuses bad input with form errors, audits, admins only."""

import pytest
from django_tenants.utils import tenant_context

from shared.core.testing import HostClient, host_of, make_user, sign_in
from tenant_apps.accounts.models import User
from tenant_apps.admin_console.models import AuditEntry
from tenant_apps.sessions.live import live_settings
from tenants.models import Institution


@pytest.fixture
def admin(institution_a):
    user = make_user(institution_a, email="set-admin@a.example", role=User.Role.ADMIN)
    client = HostClient(host_of(institution_a))
    sign_in(client, user.email)
    return client


def institution_post(**overrides) -> dict:
    data = {
        "form": "institution",
        "inst-name": "Alpha University",
        "inst-timezone": "Europe/Dublin",
        "inst-locale": "en-us",
        "inst-signup_policy": "email_domains",
        "inst-signup_email_domains": "alpha.edu, @Alumni.Alpha.edu",
    }
    return {**data, **overrides}


def test_the_admin_saves_the_institution_settings_and_they_are_audited(institution_a, admin):
    response = admin.post("/manage/settings/", institution_post(), follow=True)
    assert "Settings saved." in response.content.decode()
    saved = Institution.objects.get(pk=institution_a.pk)
    assert (saved.name, saved.timezone, saved.locale, saved.signup_policy) == (
        "Alpha University",
        "Europe/Dublin",
        "en-us",
        "email_domains",
    )
    assert saved.signup_email_domains == ["alpha.edu", "alumni.alpha.edu"]
    with tenant_context(institution_a):
        entry = AuditEntry.objects.get(action="settings.institution")
        assert entry.changes["timezone"] == [institution_a.timezone, "Europe/Dublin"]
        assert "set-admin@a.example" in entry.actor_label


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"inst-name": "  "}, "This field is required"),
        ({"inst-signup_email_domains": "not a domain"}, "is not a domain name"),
        ({"inst-signup_email_domains": ""}, "at least one domain"),
        ({"inst-timezone": "Mars/Olympus"}, "Select a valid choice"),
    ],
)
def test_bad_settings_are_form_errors_and_nothing_changes(institution_a, admin, overrides, message):
    response = admin.post("/manage/settings/", institution_post(**overrides))
    assert response.status_code == 200 and message in response.content.decode()
    assert Institution.objects.get(pk=institution_a.pk).name == institution_a.name


def test_live_room_servers_are_saved_and_the_secret_is_kept_when_left_empty(institution_a, admin):
    data = {
        "form": "live",
        "live-stun_urls": "stun:stun.alpha.edu:3478",
        "live-turn_urls": "turn:turn.alpha.edu:3478?transport=udp",
        "live-turn_secret": "s3cret-shared",
        "live-turn_credential_ttl_seconds": "1800",
    }
    assert admin.post("/manage/settings/", data).status_code == 302
    admin.post(
        "/manage/settings/", {**data, "live-turn_secret": "", "live-turn_credential_ttl_seconds": "900"}
    )
    with tenant_context(institution_a):
        rooms = live_settings()
        assert rooms.stun_urls == ["stun:stun.alpha.edu:3478"] and rooms.turn_credential_ttl_seconds == 900
        assert rooms.turn_secret == "s3cret-shared"
        assert AuditEntry.objects.filter(action="settings.live_room").count() == 2
    bad = admin.post("/manage/settings/", {**data, "live-stun_urls": "http://example.com"})
    assert bad.status_code == 200 and "is not a STUN address" in bad.content.decode()


def test_only_admins_reach_the_console(institution_a, institution_b):
    learner = make_user(institution_a, email="set-learner@a.example")
    client = HostClient(host_of(institution_a))
    sign_in(client, learner.email)
    assert client.get("/manage/").status_code == 403
    assert client.get("/manage/settings/").status_code == 403
    assert HostClient(host_of(institution_a)).get("/manage/settings/").status_code == 302  # to sign in
    admin_b = make_user(institution_b, email="set-admin@a.example", role=User.Role.ADMIN)
    client_b = HostClient(host_of(institution_b))
    sign_in(client_b, admin_b.email)
    client_b.post("/manage/settings/", institution_post(**{"inst-name": "Renamed by B"}))
    assert Institution.objects.get(pk=institution_a.pk).name == institution_a.name
