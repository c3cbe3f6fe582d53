"""The institution API: /me, tokens, members, the schema and docs, and one error shape."""

import re

from django_tenants.utils import tenant_context

from shared.core.testing import PASSWORD, HostClient, host_of, sign_in
from tenant_apps.accounts.models import User
from tenant_apps.accounts.selectors import MEMBERS_PER_PAGE


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["message"]
    return body["error"]


def test_me_for_a_signed_in_user(client_a, institution_a, user_factory):
    user_factory(institution_a, email="lee@example.org", full_name="Lee Learner", timezone="Asia/Kolkata")
    sign_in(client_a, "lee@example.org")
    me = client_a.get("/api/v1/me/").json()
    assert me["email"] == "lee@example.org"
    assert me["role"] == "learner"
    assert me["timezone"] == "Asia/Kolkata"


def test_me_can_be_updated(client_a, institution_a, user_factory):
    user_factory(institution_a, email="lee@example.org")
    sign_in(client_a, "lee@example.org")
    response = client_a.patch(
        "/api/v1/me/", {"full_name": "Lee New", "timezone": "Asia/Tokyo"}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["full_name"] == "Lee New"
    bad = client_a.patch("/api/v1/me/", {"timezone": "Mars/Olympus"}, content_type="application/json")
    assert bad.status_code == 400
    error = error_of(bad)
    assert error["code"] == "validation_error"
    assert "timezone" in error["fields"]


def test_token_authentication(client_a, institution_a, user_factory):
    user_factory(institution_a, email="lee@example.org")
    created = client_a.post(
        "/api/v1/auth/token/",
        {"email": "lee@example.org", "password": PASSWORD},
        content_type="application/json",
    )
    assert created.status_code == 201
    token = created.json()["token"]
    me = HostClient(host_of(institution_a)).get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}")
    assert me.json()["email"] == "lee@example.org"
    wrong = client_a.post(
        "/api/v1/auth/token/",
        {"email": "lee@example.org", "password": "nope"},
        content_type="application/json",
    )
    assert wrong.status_code == 400
    assert error_of(wrong)["code"] == "invalid_credentials"


def test_every_4xx_has_the_same_body_shape(client_a, institution_a, user_factory):
    assert client_a.get("/api/v1/me/").status_code == 401
    error_of(client_a.get("/api/v1/me/"))
    user_factory(institution_a, email="lee@example.org")
    sign_in(client_a, "lee@example.org")
    forbidden = client_a.get("/api/v1/members/")
    assert forbidden.status_code == 403
    assert error_of(forbidden)["code"] == "permission_denied"
    missing = client_a.get("/api/v1/no-such-thing/")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    malformed = client_a.generic("PATCH", "/api/v1/me/", "{not json", content_type="application/json")
    assert malformed.status_code == 400
    assert error_of(malformed)["code"] == "parse_error"
    wrong_method = client_a.delete("/api/v1/me/")
    assert wrong_method.status_code == 405
    error_of(wrong_method)


def test_members_api_for_admins(client_a, institution_a, user_factory):
    person = user_factory(institution_a, email="lee@example.org", role=User.Role.MENTOR)
    sign_in(client_a, f"admin@{institution_a.slug}.example")
    listing = client_a.get("/api/v1/members/?role=mentor").json()
    assert [m["email"] for m in listing["results"]] == ["lee@example.org"]
    assert client_a.get(f"/api/v1/members/{person.pk}/").json()["email"] == "lee@example.org"
    assert client_a.get("/api/v1/members/999999/").status_code == 404
    bad = client_a.get("/api/v1/members/?role=wizard")
    assert bad.status_code == 400
    assert "role" in error_of(bad)["fields"]


def test_members_api_queries_do_not_grow_with_rows(
    client_a, institution_a, user_factory, django_assert_max_num_queries
):
    sign_in(client_a, f"admin@{institution_a.slug}.example")
    for i in range(30):
        user_factory(institution_a, email=f"m{i}@example.org")
    with django_assert_max_num_queries(6):
        assert len(client_a.get("/api/v1/members/").json()["results"]) == MEMBERS_PER_PAGE


def test_schema_and_docs_are_served_locally(client_a):
    schema = client_a.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "openapi: 3" in text
    assert "/api/v1/me/" in text
    docs = client_a.get("/api/docs/").content.decode()
    assert "swagger-ui" in docs
    external = [u for u in re.findall(r'(?:src|href)="(https?://[^"]+)"', docs)]
    assert external == []


def test_the_api_is_not_on_the_platform_host(platform_client):
    assert platform_client.get("/api/v1/me/").status_code == 404


def test_an_institution_admin_of_a_is_not_an_admin_of_b(client_b, institution_a, institution_b):
    sign_in(client_b, f"admin@{institution_b.slug}.example")
    with tenant_context(institution_b):
        assert User.objects.filter(email=f"admin@{institution_a.slug}.example").count() == 0


def test_the_openapi_schema_generates_without_warnings(db, tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
