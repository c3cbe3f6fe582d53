"""Institution sign-up on the platform site is limited per client address."""

import pytest
from django.db import connection
from django.test import override_settings
from django_tenants.utils import schema_exists

from shared.core.testing import PASSWORD, HostClient
from tenant_apps.accounts import throttling
from tenants.models import Institution

pytestmark = pytest.mark.usefixtures("clean_throttles")


def form_data(subdomain: str) -> dict:
    return {
        "name": f"{subdomain.title()} Academy",
        "subdomain": subdomain,
        "country": "GB",
        "currency": "GBP",
        "timezone": "Europe/London",
        "admin_full_name": "Sam Signup",
        "admin_email": f"sam@{subdomain}.example",
        "admin_password": PASSWORD,
    }


@override_settings(PLATFORM_SIGNUP_LIMIT_ADDRESS=1)
def test_one_address_may_register_n_institutions_an_hour(db):
    client = HostClient("localhost", REMOTE_ADDR="198.51.100.200")
    assert client.post("/signup/", form_data("throttle-one")).status_code == 302
    refused = client.post("/signup/", form_data("throttle-two"))
    assert refused.status_code == 429
    page = refused.content.decode()
    assert "Too many institutions were registered from your network in the last hour." in page
    assert "Please try again in 60 minutes." in page
    assert not Institution.objects.filter(slug="throttle-two").exists()
    assert not schema_exists("throttle_two")
    # Another address registers.
    other = HostClient("localhost", REMOTE_ADDR="198.51.100.201")
    assert other.post("/signup/", form_data("throttle-three")).status_code == 302


@override_settings(PLATFORM_SIGNUP_LIMIT_ADDRESS=2)
def test_a_form_with_errors_shows_them_rather_than_the_limit(db):
    assert connection.schema_name == "public"
    for _ in range(2):
        throttling.signup_recorded(address="198.51.100.202")
    client = HostClient("localhost", REMOTE_ADDR="198.51.100.202")
    # A form with errors shows its errors, not the limit.
    invalid = client.post("/signup/", {**form_data("throttle-four"), "admin_email": "not-an-email"})
    assert invalid.status_code == 400 and "Too many institutions" not in invalid.content.decode()
    assert client.post("/signup/", form_data("throttle-four")).status_code == 429
