"""Joining an institution under its policy, mentor applications, verification, sign-in, reset."""

import re

import pytest
from django.core import mail
from django_tenants.utils import tenant_context

from shared.core.testing import PASSWORD, HostClient, host_of, sign_in
from tenant_apps.accounts.models import Invitation, User
from tenants.models import Institution


def signup_data(**overrides) -> dict:
    data = {
        "full_name": "Lee Learner",
        "email": "lee@example.org",
        "password": PASSWORD,
        "timezone": "Europe/Paris",
    }
    data.update(overrides)
    return data


def set_policy(institution: Institution, policy: str, domains: list[str] | None = None) -> None:
    institution.signup_policy = policy
    institution.signup_email_domains = domains or []
    institution.save()


def test_open_signup_makes_a_learner_and_sends_a_verification_link(
    client_a, institution_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_a.post("/accounts/signup/", signup_data())
    assert response.status_code == 302
    with tenant_context(institution_a):
        user = User.objects.get(email="lee@example.org")
        assert user.role == User.Role.LEARNER
        assert user.timezone == "Europe/Paris"
        assert not user.email_verified
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/accounts/verify/\S+/", mail.outbox[0].body).group(0)
    assert host_of(institution_a) in link
    path = link.split(host_of(institution_a), 1)[1].lstrip(":0123456789")
    assert "confirmed" in client_a.get(path, follow=True).content.decode()
    with tenant_context(institution_a):
        assert User.objects.get(email="lee@example.org").email_verified


def test_a_tampered_verification_link_is_refused(client_a):
    response = client_a.get("/accounts/verify/not-a-token/", follow=True)
    assert "not valid" in response.content.decode()


def test_invite_only_refuses_self_signup(client_a, institution_a):
    set_policy(institution_a, Institution.SignupPolicy.INVITE_ONLY)
    page = client_a.get("/accounts/signup/").content.decode()
    assert "invitation only" in page
    client_a.post("/accounts/signup/", signup_data())
    with tenant_context(institution_a):
        assert not User.objects.filter(email="lee@example.org").exists()


def test_invite_only_accepts_an_invitation(client_a, institution_a, django_capture_on_commit_callbacks):
    set_policy(institution_a, Institution.SignupPolicy.INVITE_ONLY)
    admin = HostClient(host_of(institution_a))
    sign_in(admin, f"admin@{institution_a.slug}.example")
    with django_capture_on_commit_callbacks(execute=True):
        admin.post("/accounts/members/invite/", {"email": "mo@example.org", "role": "mentor"})
    assert "invited you to join" in mail.outbox[-1].body
    with tenant_context(institution_a):
        token = Invitation.objects.get(email="mo@example.org").token
    response = client_a.post(
        f"/accounts/signup/?invitation={token}", signup_data(email="mo@example.org", invitation=token)
    )
    assert response.status_code == 302
    with tenant_context(institution_a):
        mo = User.objects.get(email="mo@example.org")
        assert mo.is_mentor and mo.email_verified
    # An invitation is used once.
    again = HostClient(host_of(institution_a)).post(
        f"/accounts/signup/?invitation={token}", signup_data(email="mo2@example.org", invitation=token)
    )
    assert again.status_code == 200
    with tenant_context(institution_a):
        assert not User.objects.filter(email="mo2@example.org").exists()


def test_email_domain_policy(client_a, institution_a):
    set_policy(institution_a, Institution.SignupPolicy.EMAIL_DOMAINS, ["northwind.edu"])
    refused = client_a.post("/accounts/signup/", signup_data(email="x@gmail.com"))
    assert refused.status_code == 200
    assert "@northwind.edu" in refused.content.decode()
    accepted = client_a.post("/accounts/signup/", signup_data(email="x@Northwind.edu"))
    assert accepted.status_code == 302
    with tenant_context(institution_a):
        assert User.objects.filter(email="x@northwind.edu").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"email": "nope"}, "Enter a valid email address"),
        ({"password": "123"}, "too short"),
        ({"timezone": "Mars/Olympus"}, "Select a valid choice"),
        ({"full_name": ""}, "This field is required"),
    ],
)
def test_signup_form_errors_are_clear(client_a, overrides, message):
    response = client_a.post("/accounts/signup/", signup_data(**overrides))
    assert response.status_code == 200
    assert message in response.content.decode()


def test_signing_up_twice_with_one_email_is_refused(client_a, user_factory, institution_a):
    user_factory(institution_a, email="lee@example.org")
    response = client_a.post("/accounts/signup/", signup_data())
    assert "already exists" in response.content.decode()


def test_same_email_may_join_two_institutions(client_a, client_b, institution_a, institution_b):
    assert client_a.post("/accounts/signup/", signup_data()).status_code == 302
    assert client_b.post("/accounts/signup/", signup_data()).status_code == 302


def test_mentor_application_and_approval(client_a, institution_a):
    data = signup_data(email="mia@example.org", application="Ten years in data engineering.")
    assert client_a.post("/accounts/mentor/apply/", data).status_code == 302
    with tenant_context(institution_a):
        mia = User.objects.get(email="mia@example.org")
        assert mia.mentor_status == User.MentorStatus.PENDING
        assert not mia.is_mentor

    # A learner cannot approve; the admin can.
    assert client_a.post(f"/accounts/members/{mia.pk}/mentor/", {"decision": "approve"}).status_code == 403
    admin = HostClient(host_of(institution_a))
    sign_in(admin, f"admin@{institution_a.slug}.example")
    page = admin.get("/accounts/members/").content.decode()
    assert "Ten years in data engineering." in page
    admin.post(f"/accounts/members/{mia.pk}/mentor/", {"decision": "approve"})
    with tenant_context(institution_a):
        assert User.objects.get(pk=mia.pk).is_mentor


def test_a_signed_in_learner_can_apply_to_mentor(client_a, institution_a, user_factory):
    learner = user_factory(institution_a, email="lou@example.org")
    sign_in(client_a, "lou@example.org")
    client_a.post("/accounts/mentor/apply/", {"application": "I can teach SQL."})
    with tenant_context(institution_a):
        assert User.objects.get(pk=learner.pk).mentor_status == User.MentorStatus.PENDING


def test_admin_changes_a_role(client_a, institution_a, user_factory):
    person = user_factory(institution_a, email="rae@example.org")
    sign_in(client_a, f"admin@{institution_a.slug}.example")
    client_a.post(f"/accounts/members/{person.pk}/role/", {"role": "admin"})
    with tenant_context(institution_a):
        rae = User.objects.get(pk=person.pk)
        assert rae.is_tenant_admin and rae.is_staff


def test_the_last_admin_cannot_demote_themselves(client_a, institution_a):
    sign_in(client_a, f"admin@{institution_a.slug}.example")
    with tenant_context(institution_a):
        me = User.objects.get(email=f"admin@{institution_a.slug}.example")
    response = client_a.post(f"/accounts/members/{me.pk}/role/", {"role": "learner"}, follow=True)
    assert "only administrator" in response.content.decode()
    with tenant_context(institution_a):
        assert User.objects.get(pk=me.pk).is_tenant_admin


def test_members_page_is_for_admins_only(client_a, institution_a, user_factory):
    assert client_a.get("/accounts/members/").status_code == 302
    user_factory(institution_a, email="lee@example.org")
    sign_in(client_a, "lee@example.org")
    assert client_a.get("/accounts/members/").status_code == 403


def test_tenant_admin_uses_the_django_admin_of_their_schema_only(client_a, institution_a):
    sign_in(client_a, f"admin@{institution_a.slug}.example")
    index = client_a.get("/admin/")
    assert index.status_code == 200
    page = index.content.decode()
    assert "Users" in page
    assert "Institutions" not in page and "Domains" not in page
    assert client_a.get("/admin/tenants/institution/").status_code == 404


def test_platform_staff_use_the_public_admin(platform_client, db):
    staff = User.objects.create_superuser("staff@example.org", PASSWORD, full_name="Staff")
    platform_client.force_login(staff)
    page = platform_client.get("/admin/").content.decode()
    assert "Institutions" in page


def test_login_and_logout(client_a, institution_a, user_factory):
    user_factory(institution_a, email="lee@example.org")
    bad = client_a.post("/accounts/login/", {"username": "lee@example.org", "password": "wrong"})
    assert "do not match" in bad.content.decode()
    sign_in(client_a, "Lee@Example.ORG")
    assert "Welcome" in client_a.get("/").content.decode()
    client_a.post("/accounts/logout/")
    assert client_a.get("/api/v1/me/").status_code == 401


def test_password_reset_by_email(client_a, institution_a, user_factory):
    user_factory(institution_a, email="lee@example.org")
    client_a.post("/accounts/password/reset/", {"email": "lee@example.org"})
    assert len(mail.outbox) == 1
    assert institution_a.name in mail.outbox[0].subject
    link = re.search(r"https?://\S+/accounts/password/reset/\S+/\S+/", mail.outbox[0].body).group(0)
    path = "/accounts/" + link.split("/accounts/", 1)[1]
    form_page = client_a.get(path, follow=True)
    set_password_url = form_page.redirect_chain[-1][0]
    client_a.post(
        set_password_url, {"new_password1": "brand-new-pass-77", "new_password2": "brand-new-pass-77"}
    )
    sign_in(HostClient(host_of(institution_a)), "lee@example.org", "brand-new-pass-77")


def test_password_reset_sends_nothing_for_another_institutions_address(client_b, institution_a, user_factory):
    user_factory(institution_a, email="lee@example.org")
    client_b.post("/accounts/password/reset/", {"email": "lee@example.org"})
    assert mail.outbox == []
