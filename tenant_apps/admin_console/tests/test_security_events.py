"""Security events in the institution's audit log: sign-ins and their failures, sign-outs, lockouts
and unlocks, passwords, API tokens, role and settings changes, exports and key rotation, each with
its actor and client address, only in its own institution, and the audit page's category filter."""

import itertools
import re

import pytest
from cryptography.fernet import Fernet
from django.core import mail
from django.core.management import call_command
from django.test import override_settings
from django_tenants.utils import tenant_context

from shared.core import fields
from shared.core.testing import PASSWORD, HostClient, host_of, make_user, sign_in
from tenant_apps.accounts import services as accounts
from tenant_apps.accounts.models import User
from tenant_apps.admin_console.models import AuditEntry

pytestmark = pytest.mark.usefixtures("clean_throttles")

_addresses = (f"192.0.2.{n}" for n in itertools.count(20))


def client_from(institution, address: str | None = None, **extra) -> HostClient:
    return HostClient(host_of(institution), REMOTE_ADDR=address or next(_addresses), **extra)


def entries(institution, action: str, **filters) -> list[AuditEntry]:
    with tenant_context(institution):
        return list(AuditEntry.objects.filter(action=action, **filters).order_by("pk"))


def admin_of(institution, address: str | None = None) -> HostClient:
    client = client_from(institution, address)
    sign_in(client, f"admin@{institution.slug}.example")
    return client


def test_sign_in_and_sign_out_are_recorded_with_the_person_and_address(institution_a, institution_b):
    person = make_user(institution_a, email="pat@example.org", full_name="Pat Person")
    client = client_from(institution_a, "192.0.2.5")
    sign_in(client, "pat@example.org")
    client.post("/accounts/logout/")
    [signed_in] = entries(institution_a, "auth.signed_in", target="pat@example.org")
    assert signed_in.actor_id == person.pk and signed_in.actor_label == "Pat Person <pat@example.org>"
    assert signed_in.address == "192.0.2.5" and signed_in.changes == {"via": [None, "password"]}
    [signed_out] = entries(institution_a, "auth.signed_out", target="pat@example.org")
    assert signed_out.actor_id == person.pk and signed_out.address == "192.0.2.5"
    assert not entries(institution_b, "auth.signed_in", target="pat@example.org")


def test_failed_sign_ins_are_recorded_and_unknown_emails_create_nothing(institution_a):
    make_user(institution_a, email="known@example.org")
    client = client_from(institution_a, "192.0.2.6")
    client.post("/accounts/login/", {"username": "known@example.org", "password": "wrong"})
    client.post("/accounts/login/", {"username": "Ghost@Example.org", "password": "wrong"})
    [known] = entries(institution_a, "auth.signin_failed", target="known@example.org")
    assert known.actor is None and known.actor_label == "Anonymous visitor"
    assert known.address == "192.0.2.6" and known.changes == {"via": [None, "password"]}
    [ghost] = entries(institution_a, "auth.signin_failed", target="ghost@example.org")
    assert ghost.address == "192.0.2.6"
    with tenant_context(institution_a):
        assert not User.objects.filter(email__iexact="ghost@example.org").exists()
    # The password is never recorded.
    assert "wrong" not in str(known.changes) + str(ghost.changes)


@override_settings(LOGIN_FAILURE_LIMIT_ACCOUNT=2)
def test_lockout_and_unlock_are_recorded(institution_a):
    make_user(institution_a, email="locks@example.org")
    client = client_from(institution_a, "192.0.2.7")
    for _ in range(2):
        client.post("/accounts/login/", {"username": "locks@example.org", "password": "wrong"})
    [locked] = entries(institution_a, "auth.locked_out", target="locks@example.org")
    assert locked.address == "192.0.2.7" and locked.changes["locked"] == [None, "account"]
    # Attempts while locked out are refused before the password is checked and write nothing.
    for _ in range(3):
        client.post("/accounts/login/", {"username": "locks@example.org", "password": "wrong"})
    assert len(entries(institution_a, "auth.signin_failed", target="locks@example.org")) == 2

    admin = admin_of(institution_a, "192.0.2.8")
    admin.post("/manage/members/unlock/", {"kind": "account", "subject": "locks@example.org"})
    [unlocked] = entries(institution_a, "auth.unlocked", target="locks@example.org")
    assert unlocked.actor.email == f"admin@{institution_a.slug}.example"
    assert unlocked.address == "192.0.2.8" and unlocked.changes == {"locked": ["account", None]}


@override_settings(FAILED_SIGNIN_AUDIT_LIMIT=3)
def test_failed_sign_ins_cannot_grow_the_log_without_bound(institution_a):
    for n in range(6):  # a spray from six addresses: each under its own limit
        client_from(institution_a).post(
            "/accounts/login/", {"username": f"s{n}@example.org", "password": "x"}
        )
    assert len(entries(institution_a, "auth.signin_failed")) == 3


def test_api_token_sign_in_creation_and_revocation_are_recorded(institution_a):
    person = make_user(institution_a, email="api-events@example.org")
    client = client_from(institution_a, "192.0.2.9")
    body = {"email": "api-events@example.org", "password": PASSWORD}
    token = client.post("/api/v1/auth/token/", body, content_type="application/json").json()["token"]
    client.post("/api/v1/auth/token/", body, content_type="application/json")
    wrong = client.post("/api/v1/auth/token/", {**body, "password": "nope"}, content_type="application/json")
    assert wrong.status_code == 400
    [created] = entries(institution_a, "auth.token_created")
    assert created.actor_id == person.pk and created.address == "192.0.2.9"
    signins = entries(institution_a, "auth.signed_in", target="api-events@example.org")
    assert [entry.changes for entry in signins] == [
        {"via": [None, "API token"], "token": [None, "new"]},
        {"via": [None, "API token"], "token": [None, "existing"]},
    ]
    [failed] = entries(institution_a, "auth.signin_failed", target="api-events@example.org")
    assert failed.changes == {"via": [None, "API token"]} and failed.address == "192.0.2.9"

    revoked = client_from(institution_a, "192.0.2.10").delete(
        "/api/v1/auth/token/", HTTP_AUTHORIZATION=f"Token {token}"
    )
    assert revoked.status_code == 204
    [entry] = entries(institution_a, "auth.token_revoked")
    assert entry.actor_id == person.pk and entry.address == "192.0.2.10"
    gone = HostClient(host_of(institution_a)).get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}")
    assert gone.status_code == 401


def test_a_password_reset_is_recorded_and_revokes_api_tokens(institution_a):
    person = make_user(institution_a, email="reset-events@example.org")
    client = client_from(institution_a, "192.0.2.11")
    token = client.post(
        "/api/v1/auth/token/",
        {"email": person.email, "password": PASSWORD},
        content_type="application/json",
    ).json()["token"]
    client.post("/accounts/password/reset/", {"email": person.email})
    path = re.search(r"https?://[^/\s]+(/accounts/password/reset/\S+/)", mail.outbox[-1].body).group(1)
    form_url = client.get(path, follow=True).redirect_chain[-1][0]
    new = {"new_password1": "fresh-long-password-7", "new_password2": "fresh-long-password-7"}
    assert client.post(form_url, new).status_code == 302
    [changed] = entries(institution_a, "auth.password_changed", target=person.email)
    assert changed.actor_id == person.pk and changed.address == "192.0.2.11"
    assert changed.changes == {"via": [None, "reset link"], "api_token": ["active", "revoked"]}
    me = HostClient(host_of(institution_a)).get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}")
    assert me.status_code == 401


def test_a_sign_in_link_is_recorded(institution_a):
    with tenant_context(institution_a):
        person = User.objects.get(email=f"admin@{institution_a.slug}.example")
        token = accounts.login_link_create(user=person)
    client_from(institution_a, "192.0.2.12").get(f"/accounts/link/{token}/")
    [entry] = entries(institution_a, "auth.signed_in", address="192.0.2.12")
    assert entry.actor_id == person.pk and entry.changes == {"via": [None, "sign-in link"]}


def test_role_and_settings_changes_and_exports_carry_the_admins_address(institution_a):
    member = make_user(institution_a, email="promoted@example.org")
    admin = admin_of(institution_a, "192.0.2.13")
    admin.post(f"/manage/members/{member.pk}/role/", {"role": "mentor"})
    [role] = entries(institution_a, "member.role_changed", target="promoted@example.org")
    assert role.address == "192.0.2.13" and role.changes == {"role": ["learner", "mentor"]}

    admin.post(
        "/billing/settings/",
        {
            "form": "stripe",
            "stripe-public_key": "pk_test_51PublicValue",
            "stripe-secret_key": "sk_test_51VerySecretValue",
            "stripe-webhook_secret": "whsec_SecretSigningKey",
        },
    )
    [keys] = entries(institution_a, "settings.payment_keys", target="stripe")
    assert keys.address == "192.0.2.13"
    assert keys.changes["secret_key"] == [None, "replaced"]
    assert "VerySecret" not in str(keys.changes) and "SecretSigning" not in str(keys.changes)

    export = admin.get("/manage/members/export.csv")
    b"".join(export.streaming_content)
    [members] = entries(institution_a, "export.members")
    assert members.address == "192.0.2.13" and members.target.endswith(".csv")
    assert admin.get("/plan/export/").status_code == 200
    [whole] = entries(institution_a, "export.institution")
    assert whole.address == "192.0.2.13" and whole.actor.email == f"admin@{institution_a.slug}.example"


def test_key_rotation_is_recorded_in_every_institutions_log(institution_a, institution_b, settings):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), old_key]
    fields._fernet.cache_clear()
    try:
        call_command("rotate_field_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
    finally:
        settings.FIELD_ENCRYPTION_KEYS = [old_key]
        fields._fernet.cache_clear()
    for institution in (institution_a, institution_b):
        [entry] = entries(institution, "keys.rotated")
        assert entry.actor is None and entry.actor_label.startswith("PeerLearn operators")
        assert entry.address is None and "rows_reencrypted" in entry.changes


def test_the_audit_page_filters_security_events_and_shows_addresses(institution_a):
    client_from(institution_a, "192.0.2.14").post(
        "/accounts/login/", {"username": "filter@example.org", "password": "wrong"}
    )
    with tenant_context(institution_a):
        admin = User.objects.get(email=f"admin@{institution_a.slug}.example")
        accounts.invitation_create(
            actor=admin, institution=institution_a, email="invitee@example.org", role="learner"
        )
    page = admin_of(institution_a)
    security = page.get("/manage/audit/?category=security").content.decode()
    assert "auth.signin_failed" in security and "filter@example.org" in security and "192.0.2.14" in security
    assert "invitee@example.org" not in security
    assert '<option value="security" selected>Security events</option>' in security
    members = page.get("/manage/audit/?category=members").content.decode()
    assert "invitee@example.org" in members and "filter@example.org" not in members
    signins = page.get("/manage/audit/?category=signins").content.decode()
    assert "auth.signed_in</code>" in signins and "member.invited</code>" not in signins
    # An unknown category filters nothing (and is not an error).
    assert page.get("/manage/audit/?category=nonsense").status_code == 200


def test_another_institutions_admin_sees_none_of_it(institution_a, institution_b):
    client_from(institution_a).post("/accounts/login/", {"username": "only-a@example.org", "password": "x"})
    page = admin_of(institution_b).get("/manage/audit/?category=security").content.decode()
    assert "only-a@example.org" not in page
    assert not entries(institution_b, "auth.signin_failed", target="only-a@example.org")
