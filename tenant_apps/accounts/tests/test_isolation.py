"""Institution A's people are invisible from B: ORM, pages, API, cookies, tokens and files."""

import io

from django.db import connection
from django_tenants.utils import tenant_context
from PIL import Image
from rest_framework.authtoken.models import Token

from shared.core.testing import HostClient, host_of, sign_in
from tenant_apps.accounts.models import User


def test_rows_of_a_are_invisible_in_b_through_the_orm(institution_a, institution_b, user_factory):
    user_factory(institution_a, email="only-in-a@example.org")
    with tenant_context(institution_b):
        assert not User.objects.filter(email="only-in-a@example.org").exists()
    with tenant_context(institution_a):
        assert User.objects.filter(email="only-in-a@example.org").exists()


def test_the_same_primary_key_in_both_schemas_never_mixes(institution_a, institution_b, user_factory):
    with tenant_context(institution_a):
        next_a = User.objects.order_by("-pk").values_list("pk", flat=True).first() + 1
    with tenant_context(institution_b):
        next_b = User.objects.order_by("-pk").values_list("pk", flat=True).first() + 1
    pk = max(next_a, next_b)
    person_a = user_factory(institution_a, pk=pk, email="same-id@a.example", full_name="Person of A")
    person_b = user_factory(institution_b, pk=pk, email="same-id@b.example", full_name="Person of B")
    assert person_a.pk == person_b.pk
    with tenant_context(institution_a):
        assert User.objects.get(pk=pk).full_name == "Person of A"
    with tenant_context(institution_b):
        assert User.objects.get(pk=pk).full_name == "Person of B"


def test_pages_of_b_do_not_show_people_of_a(institution_a, institution_b, user_factory):
    user_factory(institution_a, email="alice@a.example", full_name="Alice of A")
    client_b = HostClient(host_of(institution_b))
    sign_in(client_b, f"admin@{institution_b.slug}.example")
    page = client_b.get("/accounts/members/").content.decode()
    assert "Alice of A" not in page
    client_a = HostClient(host_of(institution_a))
    sign_in(client_a, f"admin@{institution_a.slug}.example")
    assert "Alice of A" in client_a.get("/accounts/members/").content.decode()


def test_the_api_of_b_does_not_show_people_of_a(institution_a, institution_b, user_factory):
    alice = user_factory(institution_a, email="alice@a.example", full_name="Alice of A")
    client_b = HostClient(host_of(institution_b))
    sign_in(client_b, f"admin@{institution_b.slug}.example")
    listing = client_b.get("/api/v1/members/").json()
    assert "alice@a.example" not in {m["email"] for m in listing["results"]}
    detail = client_b.get(f"/api/v1/members/{alice.pk}/")
    assert detail.status_code == 404 or detail.json()["email"] != "alice@a.example"


def test_a_session_cookie_of_a_gets_nothing_on_b(institution_a, institution_b):
    client = HostClient(host_of(institution_a))
    sign_in(client, f"admin@{institution_a.slug}.example")
    assert client.get("/api/v1/me/").status_code == 200
    # The same cookie jar, sent to B's host (as if the cookie were stolen or mis-scoped).
    client.host = host_of(institution_b)
    client.defaults["HTTP_HOST"] = client.host
    assert client.get("/api/v1/me/").status_code == 401
    members = client.get("/accounts/members/")
    assert members.status_code == 302
    assert "/accounts/login/" in members["Location"]


def test_an_api_token_of_a_gets_nothing_on_b(institution_a, institution_b):
    with tenant_context(institution_a):
        admin_a = User.objects.get(email=f"admin@{institution_a.slug}.example")
        token = Token.objects.create(user=admin_a)
    headers = {"HTTP_AUTHORIZATION": f"Token {token.key}"}
    assert HostClient(host_of(institution_a)).get("/api/v1/me/", **headers).status_code == 200
    response = HostClient(host_of(institution_b)).get("/api/v1/me/", **headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_session_cookies_are_host_only(institution_a):
    client = HostClient(host_of(institution_a))
    sign_in(client, f"admin@{institution_a.slug}.example")
    cookie = client.cookies["sessionid"]
    assert cookie["domain"] == ""
    assert cookie["httponly"]


def test_media_of_a_cannot_be_fetched_on_b(institution_a, institution_b):
    client_a = HostClient(host_of(institution_a))
    sign_in(client_a, f"admin@{institution_a.slug}.example")
    picture = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(picture, "PNG")
    picture.name = "me.png"
    picture.seek(0)
    client_a.post(
        "/accounts/profile/",
        {"full_name": "Ada Admin", "timezone": "UTC", "avatar": picture},
    )
    with tenant_context(institution_a):
        url = User.objects.get(email=f"admin@{institution_a.slug}.example").avatar_url
    assert url.startswith(f"/media/{institution_a.schema_name}/avatars/")
    assert client_a.get(url).status_code == 200
    assert HostClient(host_of(institution_b)).get(url).status_code == 404
    traversal = url.replace(f"/media/{institution_a.schema_name}/", f"/media/{institution_b.schema_name}/../")
    assert HostClient(host_of(institution_b)).get(traversal).status_code == 404
    connection.set_schema_to_public()
