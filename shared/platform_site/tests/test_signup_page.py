"""The platform's institution sign-up page and its live subdomain check."""

import pytest
from django.core import mail
from django_tenants.utils import schema_exists

from shared.core.testing import PASSWORD, HostClient
from tenants.models import Institution
from tenants.tasks import admin_email_verification_send as verification


def form_data(**overrides) -> dict:
    data = {
        "name": "Kappa Academy",
        "subdomain": "kappa-academy",
        "country": "IN",
        "currency": "INR",
        "timezone": "Asia/Kolkata",
        "admin_full_name": "Kavya Rao",
        "admin_email": "kavya@kappa.example",
        "admin_password": PASSWORD,
    }
    data.update(overrides)
    return data


def test_signup_page_renders(platform_client):
    page = platform_client.get("/signup/").content.decode()
    assert 'name="subdomain"' in page
    assert 'data-url="/signup/subdomain-check/"' in page


def test_signup_provisions_and_hands_over_to_the_new_host(
    platform_client, django_capture_on_commit_callbacks, monkeypatch
):
    # A worker sends the verification email; here it runs in-process when it is sent.
    monkeypatch.setattr(verification, "delay", lambda *args: verification.apply(args))
    with django_capture_on_commit_callbacks(execute=True):
        response = platform_client.post("/signup/", form_data())
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("http://kappa-academy.localhost/accounts/link/")
    assert schema_exists("kappa_academy")
    institution = Institution.objects.get(slug="kappa-academy")
    assert (institution.country, institution.currency, institution.timezone) == ("IN", "INR", "Asia/Kolkata")

    client = HostClient("kappa-academy.localhost")
    landed = client.get(location.split("kappa-academy.localhost", 1)[1], follow=True)
    assert "Welcome, Kavya" in landed.content.decode()
    assert client.get("/api/v1/me/").json()["role"] == "admin"
    # The new admin is asked to confirm their address, with a link to the new site.
    assert mail.outbox[-1].to == ["kavya@kappa.example"]
    assert "://kappa-academy.localhost/accounts/verify/" in mail.outbox[-1].body


def test_the_handover_keeps_the_port(db):
    client = HostClient("localhost:8000")
    response = client.post("/signup/", form_data(subdomain="lambda-two"))
    assert response["Location"].startswith("http://lambda-two.localhost:8000/accounts/link/")


@pytest.mark.parametrize(
    ("subdomain", "message"),
    [
        ("www", "is reserved"),
        ("admin", "is reserved"),
        ("alpha-u", "is already taken"),
        ("no", "3 to 30 characters"),
        ("bad_name!", "3 to 30 characters"),
    ],
)
def test_unusable_subdomains_get_a_form_error(platform_client, institution_a, subdomain, message):
    response = platform_client.post("/signup/", form_data(subdomain=subdomain))
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert 'role="alert"' in page
    assert not Institution.objects.filter(name="Kappa Academy").exists()


def test_missing_fields_get_form_errors(platform_client):
    response = platform_client.post("/signup/", {"subdomain": "lonely"})
    assert response.status_code == 400
    assert response.content.decode().count("This field is required") >= 5


def test_a_weak_admin_password_gets_a_form_error(platform_client):
    response = platform_client.post("/signup/", form_data(admin_password="password"))
    assert response.status_code == 400
    assert "too common" in response.content.decode()
    assert not schema_exists("kappa_academy")


@pytest.mark.parametrize(
    ("subdomain", "available", "message"),
    [
        ("fresh-name", True, "fresh-name.localhost is available"),
        ("Fresh-Name", True, "fresh-name.localhost is available"),
        ("www", False, "reserved"),
        ("alpha-u", False, "already taken"),
        ("x", False, "3 to 30 characters"),
        ("", False, "Choose your site's address"),
    ],
)
def test_subdomain_check(platform_client, institution_a, subdomain, available, message):
    body = platform_client.get("/signup/subdomain-check/", {"subdomain": subdomain}).json()
    assert body["available"] is available
    assert message in body["message"]


def test_subdomain_check_is_not_on_institution_hosts(client_a):
    assert client_a.get("/signup/subdomain-check/?subdomain=abc").status_code == 404
