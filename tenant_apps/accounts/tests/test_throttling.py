"""Abuse limits on an institution's site: sign-in lockouts (page, admin site, API token, sign-in
links), their admin unlock, API rate limits, sign-up, reset and confirmation-email limits, the client
address behind trusted proxies, and failing open when Redis is down."""

import itertools
import logging

import pytest
from django.conf import settings
from django.core import mail
from django.test import RequestFactory, override_settings
from django_tenants.utils import tenant_context

from shared.core import throttling as core_throttling
from shared.core.testing import PASSWORD, HostClient, host_of, make_user, sign_in
from shared.core.throttling import client_address
from tenant_apps.accounts.models import User

pytestmark = pytest.mark.usefixtures("clean_throttles")

_addresses = (f"198.51.100.{n}" for n in itertools.count(10))


def client_from(institution, address: str | None = None, **extra) -> HostClient:
    return HostClient(host_of(institution), REMOTE_ADDR=address or next(_addresses), **extra)


def attempt(client: HostClient, email: str, password: str = "not-the-password"):
    return client.post("/accounts/login/", {"username": email, "password": password})


def signed_in(client: HostClient) -> bool:
    return client.get("/api/v1/me/").status_code == 200


def rates(**overrides) -> dict:
    rates = {"user": "1000/day", "anon": "1000/day", "institution": "1000/day", **overrides}
    return {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}


# --- Sign-in lockouts -----------------------------------------------------------------------------


@override_settings(LOGIN_FAILURE_LIMIT_ACCOUNT=3, LOGIN_LOCKOUT_SECONDS=900)
def test_the_account_is_locked_after_n_failures_with_a_clear_message_and_retry_after(institution_a):
    make_user(institution_a, email="lock@example.org")
    client = client_from(institution_a)
    for _ in range(2):
        response = attempt(client, "lock@example.org")
        assert response.status_code == 200
        assert "That email and password do not match an account here." in response.content.decode()
    third = attempt(client, "lock@example.org")
    assert third.status_code == 429
    assert 890 <= int(third["Retry-After"]) <= 900
    page = third.content.decode()
    assert "Too many failed sign-ins for this account" in page
    assert "Try again in 15 minutes (at " in page and "ask an administrator to unlock it" in page

    # Locked: even the right password is refused, before it is checked.
    right = attempt(client, "lock@example.org", PASSWORD)
    assert right.status_code == 429 and not signed_in(client)
    # From anywhere: the lock is on the account.
    elsewhere = client_from(institution_a)
    assert attempt(elsewhere, "Lock@Example.org ", PASSWORD).status_code == 429
    # Another account from the same address is not affected.
    make_user(institution_a, email="other@example.org")
    assert attempt(client, "other@example.org", PASSWORD).status_code == 302


@override_settings(LOGIN_FAILURE_LIMIT_ACCOUNT=3)
def test_a_successful_sign_in_resets_the_accounts_count(institution_a):
    make_user(institution_a, email="reset@example.org")
    client = client_from(institution_a)
    attempt(client, "reset@example.org")
    attempt(client, "reset@example.org")
    assert attempt(client, "reset@example.org", PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    attempt(client, "reset@example.org")
    assert attempt(client, "reset@example.org").status_code == 200  # 2 of 3 again, not 4
    assert attempt(client, "reset@example.org").status_code == 429


@override_settings(LOGIN_FAILURE_LIMIT_ADDRESS=4)
def test_an_address_guessing_many_accounts_is_locked_out(institution_a):
    make_user(institution_a, email="victim@example.org")
    sprayer = client_from(institution_a, "203.0.113.66")
    for n in range(3):
        assert attempt(sprayer, f"guess{n}@example.org").status_code == 200
    fourth = attempt(sprayer, "guess3@example.org")
    assert fourth.status_code == 429
    assert "Too many failed sign-ins from your network" in fourth.content.decode()
    assert attempt(sprayer, "victim@example.org", PASSWORD).status_code == 429
    # The person, from their own address, signs in.
    assert attempt(client_from(institution_a), "victim@example.org", PASSWORD).status_code == 302


@override_settings(LOGIN_FAILURE_LIMIT_ACCOUNT=2)
def test_the_api_token_endpoint_answers_429_with_retry_after_and_a_json_error(institution_a):
    make_user(institution_a, email="api@example.org")
    client = client_from(institution_a)

    def token(password: str):
        return client.post(
            "/api/v1/auth/token/",
            {"email": "api@example.org", "password": password},
            content_type="application/json",
        )

    assert token("wrong").status_code == 400
    locked = token("wrong")
    assert locked.status_code == 429
    assert 0 < int(locked["Retry-After"]) <= settings.LOGIN_LOCKOUT_SECONDS
    error = locked.json()["error"]
    assert error["code"] == "locked_out"
    assert error["message"].startswith("Too many failed sign-ins for this account")
    assert token(PASSWORD).status_code == 429
    # The page and the API share the lockout.
    assert attempt(client_from(institution_a), "api@example.org", PASSWORD).status_code == 429


@override_settings(LOGIN_FAILURE_LIMIT_ACCOUNT=2)
def test_the_admin_site_sign_in_is_locked_out_too(institution_a):
    make_user(institution_a, email="staff@example.org", role=User.Role.ADMIN, is_staff=True)
    client = client_from(institution_a)
    form = {"username": "staff@example.org", "password": "wrong", "next": "/admin/"}
    client.post("/admin/login/", form)
    locked = client.post("/admin/login/", form).content.decode()
    assert "Too many failed sign-ins for this account" in locked
    assert "Too many failed" in client.post("/admin/login/", {**form, "password": PASSWORD}).content.decode()
    assert attempt(client_from(institution_a), "staff@example.org", PASSWORD).status_code == 429


@override_settings(LOGIN_FAILURE_LIMIT_ADDRESS=3)
def test_bad_sign_in_links_count_against_the_address(institution_a):
    client = client_from(institution_a)
    for n in range(3):
        client.get(f"/accounts/link/not-a-token-{n}/")
    refused = client.get("/accounts/link/another/", follow=True).content.decode()
    assert "Too many failed sign-ins from your network" in refused


@override_settings(LOGIN_FAILURE_LIMIT_ACCOUNT=2)
def test_a_lockout_in_one_institution_is_nothing_in_another(institution_a, institution_b):
    make_user(institution_a, email="both@example.org")
    make_user(institution_b, email="both@example.org")
    address = next(_addresses)
    client_a = client_from(institution_a, address)
    attempt(client_a, "both@example.org")
    assert attempt(client_a, "both@example.org").status_code == 429
    # Same email, same address, other institution: signs in.
    assert attempt(client_from(institution_b, address), "both@example.org", PASSWORD).status_code == 302


# --- Admin unlock ---------------------------------------------------------------------------------


def admin_of(institution) -> HostClient:
    client = HostClient(host_of(institution))
    sign_in(client, f"admin@{institution.slug}.example")
    return client


@override_settings(LOGIN_FAILURE_LIMIT_ACCOUNT=2, LOGIN_FAILURE_LIMIT_ADDRESS=3)
def test_admins_see_lockouts_on_the_members_page_and_unlock_them(institution_a, institution_b):
    make_user(institution_a, email="locked@example.org", full_name="Lou Locked")
    make_user(institution_b, email="locked@example.org")
    client = client_from(institution_a, "203.0.113.77")
    attempt(client, "locked@example.org")
    attempt(client, "locked@example.org")
    attempt(client, "nobody@example.org")  # the address's third failure locks it too

    # B's admin sees nothing of A's lockouts and cannot lift them.
    admin_b = admin_of(institution_b)
    page_b = admin_b.get("/manage/members/").content.decode()
    assert 'data-testid="locked-' not in page_b and 'badge-yellow">Locked out' not in page_b
    refused = admin_b.post(
        "/manage/members/unlock/", {"kind": "account", "subject": "locked@example.org"}, follow=True
    )
    assert "locked@example.org is not locked out." in refused.content.decode()
    assert attempt(client_from(institution_a), "locked@example.org", PASSWORD).status_code == 429

    admin_a = admin_of(institution_a)
    page = admin_a.get("/manage/members/").content.decode()
    assert 'data-testid="locked-account"' in page and "Lou Locked" in page
    assert 'data-testid="locked-address"' in page and "203.0.113.77" in page
    assert '<span class="badge badge-yellow">Locked out</span>' in page
    done = admin_a.post(
        "/manage/members/unlock/", {"kind": "account", "subject": "locked@example.org"}, follow=True
    )
    assert "locked@example.org can sign in again." in done.content.decode()
    assert attempt(client_from(institution_a), "locked@example.org", PASSWORD).status_code == 302
    admin_a.post("/manage/members/unlock/", {"kind": "address", "subject": "203.0.113.77"})
    assert 'data-testid="locked-' not in admin_a.get("/manage/members/").content.decode()
    assert attempt(client, "locked@example.org", PASSWORD).status_code == 302

    # Only admins may unlock.
    learner = make_user(institution_a, email="learner-unlock@example.org")
    learner_client = HostClient(host_of(institution_a))
    sign_in(learner_client, learner.email)
    assert (
        learner_client.post("/manage/members/unlock/", {"kind": "account", "subject": "x@y.z"}).status_code
        == 403
    )


@override_settings(LOGIN_FAILURE_LIMIT_ACCOUNT=2)
def test_a_password_reset_lifts_the_accounts_lockout(institution_a):
    make_user(institution_a, email="forgot@example.org")
    client = client_from(institution_a)
    attempt(client, "forgot@example.org")
    assert attempt(client, "forgot@example.org").status_code == 429
    client.post("/accounts/password/reset/", {"email": "forgot@example.org"})
    link = next(line for line in mail.outbox[-1].body.splitlines() if "/accounts/password/reset/" in line)
    path = link.split("localhost", 1)[1].strip()
    form_page = client.get(path, follow=True)
    new = {"new_password1": "a-new-long-password-9", "new_password2": "a-new-long-password-9"}
    assert client.post(form_page.redirect_chain[-1][0], new).status_code == 302
    assert attempt(client, "forgot@example.org", "a-new-long-password-9").status_code == 302


# --- API rate limits ------------------------------------------------------------------------------


def api_client(institution, email: str) -> HostClient:
    make_user(institution, email=email)
    client = client_from(institution)
    token = client.post(
        "/api/v1/auth/token/", {"email": email, "password": PASSWORD}, content_type="application/json"
    ).json()["token"]
    return client_from(institution, HTTP_AUTHORIZATION=f"Token {token}")


def test_the_api_limits_each_user(institution_a):
    first = api_client(institution_a, "rate-one@example.org")
    second = api_client(institution_a, "rate-two@example.org")
    with override_settings(REST_FRAMEWORK=rates(user="3/day")):
        assert [first.get("/api/v1/me/").status_code for _ in range(3)] == [200, 200, 200]
        refused = first.get("/api/v1/me/")
        assert refused.status_code == 429
        assert int(refused["Retry-After"]) > 0
        error = refused.json()["error"]
        assert error["code"] == "rate_limited"
        assert error["message"].startswith("Too many requests: one account may make 3 a day. Try again in ")
        assert second.get("/api/v1/me/").status_code == 200


def test_the_api_limits_each_institution_as_a_whole(institution_a, institution_b):
    people = [api_client(institution_a, f"crowd{n}@example.org") for n in range(3)]
    outsider = api_client(institution_b, "crowd-b@example.org")
    with override_settings(REST_FRAMEWORK=rates(institution="4/day")):
        statuses = [person.get("/api/v1/me/").status_code for person in people + people[:1]]
        assert statuses == [200, 200, 200, 200]
        refused = people[1].get("/api/v1/me/")
        assert refused.status_code == 429
        assert "this institution's site may make 4 a day" in refused.json()["error"]["message"]
        assert outsider.get("/api/v1/me/").status_code == 200


def test_anonymous_api_requests_are_limited_per_address(institution_a):
    with override_settings(REST_FRAMEWORK=rates(anon="2/day")):
        client = client_from(institution_a)
        body = {"email": "anon@example.org", "password": "x"}
        for _ in range(2):
            assert (
                client.post("/api/v1/auth/token/", body, content_type="application/json").status_code == 400
            )
        refused = client.post("/api/v1/auth/token/", body, content_type="application/json")
        assert refused.status_code == 429
        assert "one address without signing in may make 2 a day" in refused.json()["error"]["message"]
        other = client_from(institution_a)
        assert other.post("/api/v1/auth/token/", body, content_type="application/json").status_code == 400


# --- Sign-up, password reset, confirmation emails ---------------------------------------------------


def signup(client: HostClient, n: int):
    return client.post(
        "/accounts/signup/",
        {"full_name": "New Person", "email": f"new{n}@example.org", "password": PASSWORD, "timezone": "UTC"},
    )


@override_settings(SIGNUP_LIMIT_ADDRESS=2)
def test_sign_ups_are_limited_per_address_and_institution(institution_a, institution_b):
    address = next(_addresses)
    client = client_from(institution_a, address)
    for n in range(2):
        assert signup(client, n).status_code == 302
        client.post("/accounts/logout/")
    refused = signup(client, 2)
    assert refused.status_code == 429
    assert "Too many accounts were created from your network in the last hour." in refused.content.decode()
    with tenant_context(institution_a):
        assert not User.objects.filter(email="new2@example.org").exists()
    assert signup(client_from(institution_a), 3).status_code == 302
    assert signup(client_from(institution_b, address), 4).status_code == 302


@override_settings(PASSWORD_RESET_LIMIT_ACCOUNT=2, PASSWORD_RESET_LIMIT_ADDRESS=3)
def test_password_reset_emails_are_limited(institution_a):
    make_user(institution_a, email="resets@example.org")
    client = client_from(institution_a)
    sent = len(mail.outbox)
    for _ in range(2):
        assert client.post("/accounts/password/reset/", {"email": "resets@example.org"}).status_code == 302
    refused = client.post("/accounts/password/reset/", {"email": "resets@example.org"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Too many password reset requests." in refused.content.decode()
    assert len(mail.outbox) == sent + 2
    # The address's own limit: a third request for another email is its last.
    assert client.post("/accounts/password/reset/", {"email": "x@example.org"}).status_code == 429


@override_settings(EMAIL_VERIFICATION_RESEND_LIMIT=1)
def test_confirmation_emails_are_limited_per_person(institution_a):
    make_user(institution_a, email="unconfirmed@example.org")
    client = client_from(institution_a)
    sign_in(client, "unconfirmed@example.org")
    sent = len(mail.outbox)
    client.post("/accounts/verify-resend/")
    again = client.post("/accounts/verify-resend/", follow=True).content.decode()
    assert "We already sent several confirmation links." in again
    assert len(mail.outbox) == sent + 1


# --- The client's address -------------------------------------------------------------------------


def address_of(remote: str, forwarded: str | None = None) -> str:
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return client_address(RequestFactory().get("/", REMOTE_ADDR=remote, **extra))


def test_forwarded_for_is_believed_only_from_trusted_proxies():
    with override_settings(TRUSTED_PROXIES=[]):
        assert address_of("10.1.2.3", "192.0.2.9") == "10.1.2.3"
    with override_settings(TRUSTED_PROXIES=["10.0.0.0/8", "2001:db8::1"]):
        # nginx appends the address it saw; what the client wrote before it is ignored.
        assert address_of("10.1.2.3", "6.6.6.6, 192.0.2.9") == "192.0.2.9"
        # Through two trusted proxies.
        assert address_of("10.1.2.3", "192.0.2.9, 10.9.9.9") == "192.0.2.9"
        assert address_of("2001:db8::1", "192.0.2.10") == "192.0.2.10"
        assert address_of("::ffff:10.1.2.3", "192.0.2.11") == "192.0.2.11"
        # Nonsense in the header, or no header: the proxy's own address.
        assert address_of("10.1.2.3", "not-an-address") == "10.1.2.3"
        assert address_of("10.1.2.3") == "10.1.2.3"
        # A client that is not a trusted proxy cannot choose its address.
        assert address_of("192.0.2.50", "10.1.2.3") == "192.0.2.50"


@override_settings(TRUSTED_PROXIES=["127.0.0.0/8"], LOGIN_FAILURE_LIMIT_ADDRESS=2)
def test_lockouts_follow_the_forwarded_address_behind_a_trusted_proxy(institution_a):
    make_user(institution_a, email="proxied@example.org")
    attacker = client_from(institution_a, "127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.200")
    attempt(attacker, "a@example.org")
    assert attempt(attacker, "b@example.org").status_code == 429
    # Spoofing another address in front of the proxy's does not help.
    spoofer = client_from(institution_a, "127.0.0.1", HTTP_X_FORWARDED_FOR="1.1.1.1, 192.0.2.200")
    assert attempt(spoofer, "proxied@example.org", PASSWORD).status_code == 429
    # Another client behind the same proxy signs in.
    person = client_from(institution_a, "127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.201")
    assert attempt(person, "proxied@example.org", PASSWORD).status_code == 302


# --- Redis down -----------------------------------------------------------------------------------


def test_sign_in_and_the_api_fail_open_when_redis_is_down(institution_a, caplog, monkeypatch):
    make_user(institution_a, email="open@example.org")
    monkeypatch.setattr(core_throttling, "_last_warning", 0.0)
    closed = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    with (
        override_settings(CACHES=closed, LOGIN_FAILURE_LIMIT_ACCOUNT=1, REST_FRAMEWORK=rates(user="1/day")),
        caplog.at_level(logging.WARNING, logger="peerlearn.throttling"),
    ):
        client = client_from(institution_a)
        for _ in range(3):  # nothing is counted, so nothing locks
            assert attempt(client, "open@example.org").status_code == 200
        assert attempt(client, "open@example.org", PASSWORD).status_code == 302
        assert [client.get("/api/v1/me/").status_code for _ in range(3)] == [200, 200, 200]
    assert "Abuse limits are not enforced: Redis is unavailable" in caplog.text


def test_the_system_checks_refuse_bad_proxies_and_warn_without_any_in_production():
    from tenant_apps.accounts.checks import trusted_proxies

    with override_settings(TRUSTED_PROXIES=["10.0.0.0/8", "nonsense"]):
        assert [message.id for message in trusted_proxies(None)] == ["accounts.E001"]
    with override_settings(PRODUCTION=True, TRUSTED_PROXIES=[]):
        assert [message.id for message in trusted_proxies(None)] == ["accounts.W001"]
    with override_settings(PRODUCTION=True, TRUSTED_PROXIES=["10.0.0.0/8"]):
        assert trusted_proxies(None) == []
