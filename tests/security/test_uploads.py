"""Hostile uploads at every place that takes a file: avatars (API and profile page), the institution's
logo and favicon, session materials (API and page), the members CSV import, and custom CSS.

- image bombs: pictures whose header declares billions of pixels, or a text chunk that inflates
  to megabytes, are a message about the picture, never a 500 and never decoded;
- polyglots: files that are a real image or PDF and HTML with script too are re-encoded (images
  shown on the site) or only ever downloaded: their own type, `nosniff`, `attachment`, a sandbox;
- SVG with script: refused as an image, kept as plain text as a material, and never served from
  the institution's origin as image/svg+xml;
- path-traversal and trick file names: stored under a generated name inside the institution's
  own media folder, whatever the name said;
- oversized bodies: 413 (or a form error) that says what the limit is, never a 500, and nginx's
  limit in deploy/ is the application's.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from django.conf import settings
from django_tenants.utils import schema_context, tenant_context
from PIL import Image
from rest_framework.authtoken.models import Token

from shared.core.testing import HostClient, host_of, make_user, sign_in
from tenant_apps.accounts.models import User
from tenant_apps.admin_console import branding as branding_services
from tenant_apps.admin_console import members as member_services
from tenant_apps.admin_console.models import MemberImport
from tenant_apps.sessions.models import Material
from tenant_apps.sessions.tests.factories import make_booking, make_learner, make_mentor, next_weekday_at
from tenants.css_sanitizer import MAX_CSS_BYTES
from tenants.models import Institution

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = b"<script>alert(document.cookie)</script>"


# --- Hostile files ---------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_declaring(width: int, height: int, *, extra_chunks: bytes = b"") -> bytes:
    """A well-formed PNG whose header declares width × height pixels, but whose data is a few bytes
    (what a decompression bomb looks like to the code that opens it)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + extra_chunks
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def png_with_text_bomb() -> bytes:
    """A 1×1 PNG with a compressed text chunk that inflates to 64 MB."""
    inflated = zlib.compress(b"\x00" * (64 * 1024 * 1024), 9)
    return png_declaring(1, 1, extra_chunks=_png_chunk(b"zTXt", b"Comment\x00\x00" + inflated))


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose logical screen and one frame claim width × height pixels."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + frame + b"\x3b"


def image(fmt: str = "PNG", size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "teal").save(out, fmt)
    return out.getvalue()


def gif_html_polyglot() -> bytes:
    """A real GIF that is also an HTML page with a script after its trailer."""
    return image("GIF") + b"<html><body>" + SCRIPT + b"</body></html>"


def pdf_html_polyglot() -> bytes:
    return b"%PDF-1.4\n<html><body>" + SCRIPT + b"</body></html>\n%%EOF\n"


SVG_WITH_SCRIPT = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" '
    b'onload="alert(1)"><script>alert(document.domain)</script><rect width="10" height="10"/></svg>'
)

BOMBS = {
    "png-50000x50000": png_declaring(50_000, 50_000),
    "png-12000x12000": png_declaring(12_000, 12_000),  # over Pillow's warning limit, under its error limit
    "gif-65535x65535": gif_declaring(65_535, 65_535),
    "png-text-chunk-64mb": png_with_text_bomb(),
}

TRAVERSAL_NAMES = [
    "../../../../etc/passwd",
    "..\\..\\..\\windows\\win.ini",
    "/etc/passwd",
    "C:\\Windows\\System32\\evil.png",
    "a\x00b.png",
    "notes\r\nContent-Type: text/html.png",
    "x" * 300 + ".png",
    "x" * 1000 + ".png",  # past the 1 KiB a part's headers may have: the body is refused
    "photo\u202egnp.exe",  # right-to-left override: shows as "photoexe.png"
    "..\uff0f..\uff0fetc\uff0fpasswd",  # fullwidth solidus
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "....//....//etc/passwd",
]


def multipart(
    files: dict[str, tuple[str, bytes, str]], fields: dict[str, str] | None = None
) -> tuple[bytes, str]:
    """A multipart body with file names sent exactly as given (the test client would strip them)."""
    boundary = "hostile-boundary-7MA4YWxkTrZu0gW"
    parts = []
    for name, value in (fields or {}).items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, content, content_type) in files.items():
        quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{quoted}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(head.encode("utf-8", "surrogateescape") + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# --- People and clients ----------------------------------------------------------------------


class Scene:
    def __init__(self, institution: Institution) -> None:
        self.institution = institution
        self.host = host_of(institution)
        self.mentor = make_mentor(institution, email="up-mentor@example.org")
        self.learner = make_learner(institution, email="up-learner@example.org")
        self.admin = make_user(institution, email="up-admin@example.org", role=User.Role.ADMIN)
        with tenant_context(institution):
            self.booking = make_booking(self.mentor, self.learner, next_weekday_at(11))
            token = Token.objects.create(user=self.learner).key
        self.api = HostClient(self.host, HTTP_AUTHORIZATION=f"Token {token}")

    def page_client(self, user: User) -> HostClient:
        client = HostClient(self.host)
        sign_in(client, user.email)
        return client

    def media_root(self) -> Path:
        return (Path(settings.MEDIA_ROOT) / self.institution.schema_name).resolve()

    def stored_path(self, file_field) -> Path:
        with tenant_context(self.institution):
            return Path(file_field.path).resolve()

    def materials_url(self) -> str:
        return f"/api/v1/bookings/{self.booking.pk}/materials/"

    def upload_material(self, filename: str, content: bytes, content_type: str = "application/octet-stream"):
        body, body_type = multipart({"file": (filename, content, content_type)})
        return self.api.post(self.materials_url(), body, content_type=body_type)

    def upload_avatar(self, filename: str, content: bytes, content_type: str = "image/png"):
        body, body_type = multipart({"avatar": (filename, content, content_type)})
        return self.api.generic("PATCH", "/api/v1/me/", body, content_type=body_type)


@pytest.fixture
def scene(institution_a) -> Scene:
    return Scene(institution_a)


def error_of(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), response.content[:300]
    return response.json()["error"]


BRANDING_FORM = {
    "theme": "classic",
    "primary_color": "#0b3d91",
    "accent_color": "#c9a227",
    "font": "merriweather",
    "color_scheme": "light",
    "custom_css": "",
}


def post_branding(client: HostClient, **files: tuple[str, bytes, str]):
    body, body_type = multipart(files, fields=BRANDING_FORM)
    return client.post("/manage/branding/", body, content_type=body_type)


def institution_row(institution: Institution) -> Institution:
    with schema_context("public"):
        return Institution.objects.get(pk=institution.pk)


# --- Image and decompression bombs -----------------------------------------------------------


@pytest.mark.parametrize("bomb", BOMBS.values(), ids=BOMBS.keys())
def test_image_bombs_are_a_message_about_the_picture(scene, bomb):
    avatar = scene.upload_avatar("me.png", bomb)
    assert avatar.status_code == 400
    error = error_of(avatar)
    assert error["code"] == "invalid_image" and error["fields"]["avatar"], error

    material = scene.upload_material("diagram.png", bomb, "image/png")
    assert material.status_code == 400
    assert error_of(material)["fields"]["file"], material.content
    with tenant_context(scene.institution):
        assert not Material.objects.filter(booking=scene.booking).exists()

    admin = scene.page_client(scene.admin)
    for field in ("logo", "favicon"):
        page = post_branding(admin, **{field: ("logo.png", bomb, "image/png")})
        assert page.status_code == 200, page.status_code  # the form again, with its error
        assert page.context["form"].errors[field], page.context["form"].errors
    row = institution_row(scene.institution)
    assert not row.logo and not row.favicon

    profile = scene.page_client(scene.learner)
    body, body_type = multipart(
        {"avatar": ("me.png", bomb, "image/png")}, fields={"full_name": "Lee", "timezone": "UTC"}
    )
    page = profile.post("/accounts/profile/", body, content_type=body_type)
    assert page.status_code == 400 and page.context["form"].errors["avatar"]


def test_the_declared_size_is_refused_before_the_pixels_are_decoded(scene):
    """50,000 × 50,000 RGB would be 7.5 GB decoded: the refusal must come from the header."""
    messages = error_of(scene.upload_avatar("me.png", BOMBS["png-50000x50000"]))["fields"]["avatar"]
    assert messages == ["The image has too many pixels. Please upload a smaller picture."]


def test_an_office_file_whose_manifest_inflates_without_bound_is_refused(scene):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b" " * (32 * 1024 * 1024))
        archive.writestr("word/document.xml", b"<xml/>")
    response = scene.upload_material("report.docx", out.getvalue())
    assert response.status_code == 400 and error_of(response)["fields"]["file"]


# --- Polyglots -------------------------------------------------------------------------------


def test_an_image_html_polyglot_avatar_keeps_only_its_pixels(scene):
    response = scene.upload_avatar("me.gif", gif_html_polyglot(), "image/gif")
    assert response.status_code == 200, response.content
    with tenant_context(scene.institution):
        learner = User.objects.get(pk=scene.learner.pk)
        stored = learner.avatar.read()
    assert stored.startswith(b"\xff\xd8\xff") and b"<script" not in stored and b"<html" not in stored
    served = HostClient(scene.host).get(response.json()["avatar_url"])
    assert served.status_code == 200
    assert served["Content-Type"] == "image/jpeg"
    assert served["X-Content-Type-Options"] == "nosniff"


def test_a_polyglot_logo_is_reencoded(scene):
    admin = scene.page_client(scene.admin)
    response = post_branding(admin, logo=("logo.gif", gif_html_polyglot(), "image/gif"))
    assert response.status_code == 302, response.context and response.context["form"].errors
    row = institution_row(scene.institution)
    with tenant_context(scene.institution):
        stored = row.logo.read()
    assert stored.startswith(b"\x89PNG") and b"<script" not in stored


@pytest.mark.parametrize(
    ("name", "content", "content_type"),
    [
        ("chart.gif", gif_html_polyglot(), "image/gif"),
        ("slides.pdf", pdf_html_polyglot(), "application/pdf"),
        ("page.html", b"<!doctype html><html>" + SCRIPT + b"</html>", "text/plain; charset=utf-8"),
        ("fake.png", b"<html>" + SCRIPT + b"</html>", "text/plain; charset=utf-8"),
    ],
    ids=["gif+html", "pdf+html", "html", "html-named-png"],
)
def test_polyglot_materials_are_only_ever_downloaded_as_their_own_type(scene, name, content, content_type):
    response = scene.upload_material(name, content, "text/html")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["content_type"] == content_type
    download = scene.api.get(created["download_url"])
    assert download.status_code == 200
    assert download["Content-Type"] == content_type
    assert download["X-Content-Type-Options"] == "nosniff"
    assert download["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in download["Content-Security-Policy"]
    assert "html" not in download["Content-Type"]


# --- SVG with script -------------------------------------------------------------------------


def test_svg_with_script_is_refused_as_an_avatar_logo_and_favicon(scene):
    avatar = scene.upload_avatar("me.svg", SVG_WITH_SCRIPT, "image/svg+xml")
    assert avatar.status_code == 400 and error_of(avatar)["code"] == "invalid_image"
    admin = scene.page_client(scene.admin)
    for field in ("logo", "favicon"):
        page = post_branding(admin, **{field: ("logo.svg", SVG_WITH_SCRIPT, "image/svg+xml")})
        assert page.status_code == 200 and page.context["form"].errors[field]


def test_svg_with_script_is_a_plain_text_material(scene):
    response = scene.upload_material("diagram.svg", SVG_WITH_SCRIPT, "image/svg+xml")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["content_type"] == "text/plain; charset=utf-8"
    assert created["original_name"] == "diagram.svg.txt"
    download = scene.api.get(created["download_url"])
    assert download["Content-Type"] == "text/plain; charset=utf-8"
    assert download["Content-Disposition"].startswith("attachment;")


def test_no_svg_or_html_is_served_from_the_public_media_folders(scene):
    """Even a file that reached avatars/ or branding/ some other way is not served unless it is one of
    the image types the application writes there."""
    root = scene.media_root()
    for folder in ("avatars", "branding"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "evil.svg").write_bytes(SVG_WITH_SCRIPT)
        (root / folder / "evil.html").write_bytes(b"<html>" + SCRIPT)
        (root / folder / "ok.png").write_bytes(image())
    client = HostClient(scene.host)
    schema = scene.institution.schema_name
    try:
        for folder in ("avatars", "branding"):
            for name in ("evil.svg", "evil.html", "evil.svg%00.png", "evil.SVG"):
                assert client.get(f"/media/{schema}/{folder}/{name}").status_code == 404, name
            served = client.get(f"/media/{schema}/{folder}/ok.png")
            assert served.status_code == 200 and served["Content-Type"] == "image/png"
            assert served["X-Content-Type-Options"] == "nosniff"
            assert "sandbox" in served["Content-Security-Policy"]
    finally:
        for folder in ("avatars", "branding"):
            for name in ("evil.svg", "evil.html", "ok.png"):
                (root / folder / name).unlink(missing_ok=True)


# --- Path traversal and trick file names -----------------------------------------------------


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@pytest.mark.parametrize("filename", TRAVERSAL_NAMES)
def test_material_names_never_choose_where_the_file_is_stored(scene, filename):
    response = scene.upload_material(filename, b"meeting notes\n", "text/plain")
    if response.status_code == 400:
        # A name that is nothing once its path is removed ("..") sends no file at all; one whose
        # part headers are too long cannot be parsed.
        error = error_of(response)
        assert error["fields"].get("file") or error["code"] == "parse_error", error
        return
    assert response.status_code == 201, response.content
    created = response.json()
    with tenant_context(scene.institution):
        material = Material.objects.get(pk=created["id"])
    assert re.fullmatch(rf"materials/{scene.booking.pk}/[0-9a-f]{{32}}", material.file.name)
    assert _inside(scene.stored_path(material.file), scene.media_root())
    shown = created["original_name"]
    assert "/" not in shown and "\\" not in shown and len(shown) <= 200
    assert not any(ord(char) < 32 or char in "\u202e\u202d\u200e\u200f" for char in shown)
    disposition = scene.api.get(created["download_url"])["Content-Disposition"]
    assert (
        "\r" not in disposition and "\n" not in disposition and "/" not in disposition.split("filename")[-1]
    )


@pytest.mark.parametrize("filename", TRAVERSAL_NAMES[:6])
def test_avatar_and_logo_names_never_choose_where_they_are_stored(scene, filename):
    response = scene.upload_avatar(filename, image("PNG"))
    if response.status_code == 200:
        with tenant_context(scene.institution):
            avatar = User.objects.get(pk=scene.learner.pk).avatar
        assert re.fullmatch(r"avatars/[0-9a-f]{32}\.jpg", avatar.name)
        assert _inside(scene.stored_path(avatar), scene.media_root())
    else:
        assert response.status_code == 400 and error_of(response)["fields"]

    page = post_branding(scene.page_client(scene.admin), logo=(filename, image("PNG"), "image/png"))
    assert page.status_code in (200, 302)
    row = institution_row(scene.institution)
    if page.status_code == 302:
        assert re.fullmatch(r"branding/logo(_\w+)?\.png", row.logo.name), row.logo.name
        assert _inside(scene.stored_path(row.logo), scene.media_root())


def test_a_csv_import_keeps_no_path_from_its_name(scene):
    admin = scene.page_client(scene.admin)
    body, body_type = multipart(
        {
            "file": (
                "../../../etc/cron.d/members.csv",
                b"email,full_name,role\nnew@example.org,New One,learner\n",
                "text/csv",
            )
        }
    )
    response = admin.post("/manage/members/import/", body, content_type=body_type)
    assert response.status_code == 302, response.content[:500]
    with tenant_context(scene.institution):
        job = MemberImport.objects.latest("pk")
    assert job.file_name == "members.csv"


def test_media_urls_cannot_climb_out_of_the_public_folders(scene):
    client = HostClient(scene.host)
    schema = scene.institution.schema_name
    for path in (
        f"/media/{schema}/avatars/../materials/{scene.booking.pk}/x",
        f"/media/{schema}/avatars/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        f"/media/{schema}/avatars/..%2f..%2f..%2fetc%2fpasswd",
        f"/media/{schema}/avatars/....//....//etc/passwd",
        f"/media/{schema}/branding/..\\..\\..\\etc\\passwd",
        "/media/public/avatars/x.jpg",
    ):
        assert client.get(path).status_code == 404, path


# --- Oversized bodies ------------------------------------------------------------------------


def test_a_json_body_over_the_limit_is_413_before_it_is_read(scene, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    body = b'{"full_name": "' + b"x" * (64 * 1024) + b'"}'
    response = scene.api.generic("PATCH", "/api/v1/me/", body, content_type="application/json")
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "too_large" and "0.0625 MB" in error["message"]


def test_a_multipart_body_over_the_limit_is_413(scene, settings):
    settings.REQUEST_BODY_MAX_BYTES = 256 * 1024
    response = scene.upload_material("big.txt", b"a" * (300 * 1024), "text/plain")
    assert response.status_code == 413
    assert error_of(response)["message"] == "The request is too large: send at most 0.25 MB at a time."
    page = scene.page_client(scene.learner)
    body, body_type = multipart({"avatar": ("me.png", b"\x89PNG" + b"a" * (300 * 1024), "image/png")})
    response = page.post("/accounts/profile/", body, content_type=body_type)
    assert response.status_code == 413 and b"at most 0.25 MB" in response.content


def test_form_fields_over_the_memory_limit_are_413_with_a_reason(scene, settings):
    """Fields (not files) of a multipart body are held in memory: DATA_UPLOAD_MAX_MEMORY_SIZE."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    body, body_type = multipart({}, fields={"full_name": "x" * (80 * 1024)})
    response = scene.api.generic("PATCH", "/api/v1/me/", body, content_type=body_type)
    assert response.status_code == 413
    assert error_of(response)["code"] == "too_large"
    page = scene.page_client(scene.learner).post("/accounts/profile/", body, content_type=body_type)
    assert page.status_code == 413 and b"form fields are too large" in page.content


def test_too_many_fields_is_400_with_a_reason(scene):
    fields = "&".join(f"f{number}=1" for number in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 10))
    response = scene.api.generic(
        "PATCH", "/api/v1/me/", fields.encode(), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400 and error_of(response)["code"] == "too_many_fields"


def test_each_file_over_its_own_limit_is_a_clear_message(scene, settings):
    settings.AVATAR_MAX_BYTES = 10 * 1024
    settings.MATERIAL_MAX_BYTES = 10 * 1024
    big_png = image("PNG", (400, 400))  # noise-free, so pad it past the limit
    big_png += b"\x00" * (11 * 1024)
    avatar = scene.upload_avatar("me.png", big_png)
    assert avatar.status_code == 400
    assert "too large" in error_of(avatar)["fields"]["avatar"][0]
    material = scene.upload_material("notes.txt", b"a" * (11 * 1024), "text/plain")
    assert material.status_code == 400 and error_of(material)["code"] == "too_large"

    admin = scene.page_client(scene.admin)
    logo = b"\x89PNG" + b"\x00" * (branding_services.LOGO_MAX_BYTES + 1)
    page = post_branding(admin, logo=("logo.png", logo, "image/png"))
    assert page.status_code == 200 and "too large" in page.context["form"].errors["logo"][0]

    csv = b"email,full_name,role\n" + b"a@example.org,A,learner\n" * (
        member_services.MAX_IMPORT_BYTES // 24 + 10
    )
    body, body_type = multipart({"file": ("members.csv", csv, "text/csv")})
    page = admin.post("/manage/members/import/", body, content_type=body_type)
    assert page.status_code == 400 and "larger than" in page.context["form"].errors["file"][0]

    data = {**BRANDING_FORM, "custom_css": "a{color:red}" * (MAX_CSS_BYTES // 12 + 10)}
    page = admin.post("/manage/branding/", data)
    assert page.status_code == 200 and page.context["form"].errors["custom_css"]


def test_nginx_and_the_ingress_take_what_the_application_takes():
    """The proxy's body limit is the application's REQUEST_BODY_MAX_BYTES, and every per-file limit
    fits under it with room for the rest of the form."""
    nginx = (REPO_ROOT / "deploy/nginx/peerlearn.conf").read_text()
    ingress = (REPO_ROOT / "deploy/k8s/ingress.yaml").read_text()
    sizes = re.findall(r"client_max_body_size\s+(\d+)m;", nginx)
    assert sizes and {int(size) * 1024 * 1024 for size in sizes} == {settings.REQUEST_BODY_MAX_BYTES}
    proxy = re.search(r"proxy-body-size:\s*\"?(\d+)m", ingress)
    assert proxy and int(proxy.group(1)) * 1024 * 1024 == settings.REQUEST_BODY_MAX_BYTES
    from tenant_apps.sessions.materials import material_max_bytes

    largest_file = max(
        settings.AVATAR_MAX_BYTES,
        material_max_bytes(),
        branding_services.LOGO_MAX_BYTES,
        member_services.MAX_IMPORT_BYTES,
    )
    assert largest_file + 1024 * 1024 <= settings.REQUEST_BODY_MAX_BYTES
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE <= settings.REQUEST_BODY_MAX_BYTES
