"""Avatars: only real images, bounded, resized, EXIF stripped, under the institution's prefix."""

import io
import struct
import zlib
from pathlib import Path

from django.conf import settings
from django_tenants.utils import tenant_context
from PIL import Image

from shared.core.testing import HostClient, host_of, sign_in
from tenant_apps.accounts.models import User


def png_bytes(size: tuple[int, int] = (800, 600), color: str = "navy") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def decompression_bomb() -> bytes:
    """A tiny PNG whose header claims 100,000 × 100,000 pixels (10 GB decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * 3 * 100_000
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row))
        + chunk(b"IEND", b"")
    )


def upload(client: HostClient, content: bytes, name: str = "me.png"):
    file = io.BytesIO(content)
    file.name = name
    return client.post("/accounts/profile/", {"full_name": "Pat Person", "timezone": "UTC", "avatar": file})


def signed_in(institution, user_factory) -> tuple[HostClient, User]:
    user = user_factory(institution, email="pat@example.org")
    client = HostClient(host_of(institution))
    sign_in(client, "pat@example.org")
    return client, user


def avatar_of(institution, user: User) -> str:
    with tenant_context(institution):
        return User.objects.get(pk=user.pk).avatar.name


def test_a_real_image_is_resized_reencoded_and_stored_under_the_tenant(institution_a, user_factory):
    client, user = signed_in(institution_a, user_factory)
    exif = Image.Exif()
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPS latitude
    exif[0x010F] = "SecretCam"
    photo = io.BytesIO()
    Image.new("RGB", (1200, 900), "teal").save(photo, "JPEG", exif=exif)
    assert b"SecretCam" in photo.getvalue()

    response = upload(client, photo.getvalue(), "holiday.jpg")
    assert response.status_code == 302
    name = avatar_of(institution_a, user)
    stored = Path(settings.MEDIA_ROOT) / institution_a.schema_name / name
    assert stored.exists()
    data = stored.read_bytes()
    assert b"SecretCam" not in data
    image = Image.open(io.BytesIO(data))
    assert image.size == (settings.AVATAR_SIZE, settings.AVATAR_SIZE)
    assert not image.getexif()


def test_a_non_image_is_refused_with_a_clear_message(institution_a, user_factory):
    client, user = signed_in(institution_a, user_factory)
    response = upload(client, b"#!/bin/sh\necho pwned\n", "avatar.png")
    assert response.status_code == 400
    assert "not an image we can read" in response.content.decode()
    assert avatar_of(institution_a, user) == ""


def test_an_svg_is_refused(institution_a, user_factory):
    client, user = signed_in(institution_a, user_factory)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    response = upload(client, svg, "avatar.svg")
    assert response.status_code == 400
    assert avatar_of(institution_a, user) == ""


def test_an_oversized_file_is_refused(institution_a, user_factory, settings):
    settings.AVATAR_MAX_BYTES = 50_000
    client, user = signed_in(institution_a, user_factory)
    noisy = Image.effect_noise((600, 600), 100).convert("RGB")
    out = io.BytesIO()
    noisy.save(out, "PNG")
    assert len(out.getvalue()) > 50_000
    response = upload(client, out.getvalue())
    assert response.status_code == 400
    assert "too large" in response.content.decode()
    assert avatar_of(institution_a, user) == ""


def test_a_decompression_bomb_is_refused(institution_a, user_factory):
    client, user = signed_in(institution_a, user_factory)
    bomb = decompression_bomb()
    assert len(bomb) < 100_000
    response = upload(client, bomb, "bomb.png")
    assert response.status_code == 400
    assert "too many pixels" in response.content.decode()
    assert avatar_of(institution_a, user) == ""


def test_a_truncated_image_is_refused(institution_a, user_factory):
    client, user = signed_in(institution_a, user_factory)
    response = upload(client, png_bytes()[:200])
    assert response.status_code == 400
    assert avatar_of(institution_a, user) == ""


def test_replacing_and_removing_an_avatar(institution_a, user_factory, django_capture_on_commit_callbacks):
    client, user = signed_in(institution_a, user_factory)
    upload(client, png_bytes(color="red"))
    first = avatar_of(institution_a, user)
    with django_capture_on_commit_callbacks(execute=True):
        upload(client, png_bytes(color="blue"))
    second = avatar_of(institution_a, user)
    root = Path(settings.MEDIA_ROOT) / institution_a.schema_name
    assert second != first
    assert not (root / first).exists()
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/profile/", {"full_name": "Pat", "timezone": "UTC", "remove_avatar": "on"})
    assert avatar_of(institution_a, user) == ""
    assert not (root / second).exists()


def test_the_api_refuses_a_bad_avatar_with_the_error_shape(institution_a, user_factory):
    client, _ = signed_in(institution_a, user_factory)
    response = client.generic(
        "PATCH",
        "/api/v1/me/",
        data=_multipart({"avatar": ("x.png", b"not an image")}),
        content_type="multipart/form-data; boundary=BoUnDaRy",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "invalid_image"
    assert "avatar" in body["error"]["fields"]


def _multipart(files: dict[str, tuple[str, bytes]]) -> bytes:
    parts = []
    for field, (filename, content) in files.items():
        parts.append(
            b"--BoUnDaRy\r\n"
            + f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'.encode()
            + b"Content-Type: application/octet-stream\r\n\r\n"
            + content
            + b"\r\n"
        )
    return b"".join(parts) + b"--BoUnDaRy--\r\n"
