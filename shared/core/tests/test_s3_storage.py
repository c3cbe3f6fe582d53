"""Media in S3 (MEDIA_STORAGE=s3): keys under the institution's prefix, private objects, and files
handed out only through short-lived signed URLs by the views that check who is asking.

Against the local S3 stand-in over real HTTP: boto3 (through django-storages) signs its requests
and the stand-in checks every signature, as S3 does; downloads are plain urllib requests."""

import io
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django_tenants.utils import tenant_context
from PIL import Image

from shared.core.storage import TenantS3Storage, signed_media_url
from shared.core.testing import HostClient, host_of, sign_in
from tenant_apps.accounts.models import User
from tenant_apps.sessions.models import Material
from tenant_apps.sessions.tests.factories import make_booking, make_learner, make_mentor, next_weekday_at

PDF_BYTES = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def fetch(url: str) -> tuple[int, bytes, Message]:
    """GET `url` as a browser following the redirect would: no credentials, just the URL."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def s3_media(settings, s3_standin, _institutions) -> Iterator:
    """The default storage in the stand-in's bucket for one test; its objects go afterwards."""
    settings.STORAGES = s3_standin.storages_setting()
    settings.MEDIA_SIGNED_URL_SECONDS = 300
    assert isinstance(default_storage, TenantS3Storage)
    yield s3_standin
    for institution in _institutions:
        s3_standin.empty(f"{institution.schema_name}/")


def signed_in(institution, email: str) -> HostClient:
    client = HostClient(host_of(institution))
    sign_in(client, email)
    return client


@pytest.fixture
def scene(institution_a, s3_media):
    mentor = make_mentor(institution_a, email="mo@example.org")
    lee = make_learner(institution_a, email="lee@example.org")
    make_learner(institution_a, email="oz@example.org")
    with tenant_context(institution_a):
        booking = make_booking(mentor, lee, next_weekday_at(10))
    connection.set_schema_to_public()
    return {"booking": booking}


def upload_material(institution, booking, content: bytes = PDF_BYTES, name: str = "Plan für Woche 1.pdf"):
    lee = signed_in(institution, "lee@example.org")
    response = lee.post(f"/sessions/{booking.pk}/materials/", {"file": SimpleUploadedFile(name, content)})
    assert response.status_code == 302
    with tenant_context(institution):
        material = Material.objects.get(booking=booking)
    connection.set_schema_to_public()
    return material


def test_an_upload_is_a_private_object_under_the_institutions_prefix(institution_a, scene, s3_media):
    material = upload_material(institution_a, scene["booking"])
    key = f"{institution_a.schema_name}/{material.file.name}"
    assert material.file.name.startswith(f"materials/{scene['booking'].pk}/")
    assert s3_media.keys(f"{institution_a.schema_name}/") == [key]
    assert s3_media.client().get_object(Bucket=s3_media.bucket, Key=key)["Body"].read() == PDF_BYTES
    # No ACL was sent: only the bucket's owner has a grant.
    grants = s3_media.client().get_object_acl(Bucket=s3_media.bucket, Key=key)["Grants"]
    assert [grant["Grantee"].get("URI") for grant in grants] == [None]
    # S3 refuses the object to anyone without a signature.
    status, _, _ = fetch(f"{s3_media.endpoint_url}/{s3_media.bucket}/{key}")
    assert status == 403


def test_participants_are_redirected_to_a_signed_url_that_downloads_the_file(institution_a, scene, s3_media):
    booking = scene["booking"]
    material = upload_material(institution_a, booking)
    for email in ("lee@example.org", "mo@example.org"):
        response = signed_in(institution_a, email).get(f"/sessions/{booking.pk}/materials/{material.pk}/")
        assert response.status_code == 302
        assert response["Cache-Control"] == "private, no-store"
        location = response["Location"]
        assert location.startswith(f"{s3_media.endpoint_url}/{s3_media.bucket}/{institution_a.schema_name}/")
        query = parse_qs(urlsplit(location).query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert query["X-Amz-Expires"] == ["300"]

        status, body, headers = fetch(location)
        assert status == 200
        assert body == PDF_BYTES
        assert headers["Content-Type"] == "application/pdf"
        assert headers["Content-Disposition"].startswith("attachment;")
        assert "Plan%20f%C3%BCr%20Woche%201.pdf" in headers["Content-Disposition"]


def test_the_api_download_redirects_too(institution_a, scene, s3_media):
    booking = scene["booking"]
    material = upload_material(institution_a, booking, b"# Notes\n", "notes.md")
    mo = signed_in(institution_a, "mo@example.org")
    response = mo.get(f"/api/v1/bookings/{booking.pk}/materials/{material.pk}/")
    assert response.status_code == 302
    status, body, headers = fetch(response["Location"])
    assert (status, body) == (200, b"# Notes\n")
    assert headers["Content-Type"] == "text/markdown; charset=utf-8"


def test_people_without_access_get_no_url(institution_a, institution_b, scene, s3_media):
    booking = scene["booking"]
    material = upload_material(institution_a, booking)
    path = f"/sessions/{booking.pk}/materials/{material.pk}/"
    # Another learner of the institution, and somebody of another institution on their own site.
    assert signed_in(institution_a, "oz@example.org").get(path).status_code == 404
    make_learner(institution_b, email="lee@example.org")
    other_site = signed_in(institution_b, "lee@example.org")
    assert other_site.get(path).status_code == 404
    key = f"{institution_a.schema_name}/{material.file.name}"
    assert other_site.get(f"/media/{key}").status_code == 404
    assert other_site.get(f"/media/{institution_b.schema_name}/../{key}").status_code == 404
    # On its own site too, a material is never reachable through the public media path.
    assert signed_in(institution_a, "lee@example.org").get(f"/media/{key}").status_code == 404


def test_a_signed_url_works_for_its_key_only_and_not_after_it_expires(institution_a, scene, s3_media):
    booking = scene["booking"]
    material = upload_material(institution_a, booking)
    response = signed_in(institution_a, "lee@example.org").get(
        f"/sessions/{booking.pk}/materials/{material.pk}/"
    )
    location = response["Location"]
    s3_media.refused.clear()

    # Pointed at another key (another institution's prefix, another file), the signature fails.
    other = location.replace(f"/{institution_a.schema_name}/", "/beta_u/", 1)
    assert fetch(other)[0] == 403
    tampered = location.replace("X-Amz-Expires=300", "X-Amz-Expires=3000")
    assert fetch(tampered)[0] == 403
    assert s3_media.refused == ["SignatureDoesNotMatch", "SignatureDoesNotMatch"]

    with tenant_context(institution_a):
        brief = default_storage.signed_url(material.file.name, expire=1)
    connection.set_schema_to_public()
    assert fetch(brief)[0] == 200
    s3_media.clock_ahead = timedelta(seconds=2)  # the link's one second has passed
    try:
        status, body, _ = fetch(brief)
    finally:
        s3_media.clock_ahead = timedelta(0)
    assert status == 403 and b"Request has expired" in body


def test_avatars_are_served_by_a_redirect_to_a_signed_url(institution_a, s3_media):
    user = make_learner(institution_a, email="pat@example.org")
    client = signed_in(institution_a, "pat@example.org")
    avatar = io.BytesIO(png_bytes())
    avatar.name = "me.png"
    response = client.post("/accounts/profile/", {"full_name": "Pat", "timezone": "UTC", "avatar": avatar})
    assert response.status_code == 302
    with tenant_context(institution_a):
        stored = User.objects.get(pk=user.pk)
        name, url = stored.avatar.name, stored.avatar_url
    connection.set_schema_to_public()

    # Pages link to the site's own path, as with files on disk.
    assert url == f"/media/{institution_a.schema_name}/{name}"
    assert s3_media.keys(f"{institution_a.schema_name}/avatars/") == [f"{institution_a.schema_name}/{name}"]
    # Anyone may see an avatar (no sign-in), through a short-lived link.
    response = HostClient(host_of(institution_a)).get(url)
    assert response.status_code == 302
    assert response["Cache-Control"] == "private, max-age=60"
    status, body, headers = fetch(response["Location"])
    assert status == 200 and body[:3] == b"\xff\xd8\xff"  # the re-encoded JPEG
    assert headers["Content-Type"] == "image/jpeg"


def test_branding_files_are_signed_under_their_own_institution(institution_a, institution_b, s3_media):
    with tenant_context(institution_b):
        name = default_storage.save("branding/logo.png", ContentFile(png_bytes()))
        assert signed_media_url(name).startswith(f"{s3_media.endpoint_url}/{s3_media.bucket}/beta_u/")
    connection.set_schema_to_public()
    assert s3_media.keys("beta_u/") == [f"beta_u/{name}"]
    # Institution A's site does not hand out B's logo; B's does.
    assert HostClient(host_of(institution_a)).get(f"/media/beta_u/{name}").status_code == 404
    response = HostClient(host_of(institution_b)).get(f"/media/beta_u/{name}")
    assert response.status_code == 302
    assert fetch(response["Location"])[1] == png_bytes()


def test_files_on_disk_are_still_served_by_the_site(institution_a, settings):
    assert not isinstance(default_storage, TenantS3Storage)
    with tenant_context(institution_a):
        assert signed_media_url("avatars/x.jpg") is None
    connection.set_schema_to_public()
