"""Files attached to a booking: what may be uploaded, by whom, and who may see them."""

import codecs
import posixpath
import unicodedata
import warnings
import zipfile
from typing import IO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from PIL import Image, UnidentifiedImageError

from shared.core.errors import ApplicationError
from shared.platform_billing.limits import require_storage
from tenant_apps.accounts.models import User

from .models import Booking, Material

MATERIALS_PER_BOOKING = 20
NAME_MAX_LENGTH = 200
# Bookings that are over before they happened: nothing to share any more.
CLOSED_STATUSES = frozenset({Booking.Status.DECLINED, Booking.Status.EXPIRED, Booking.Status.CANCELLED})

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
TEXT = "text/plain; charset=utf-8"
MARKDOWN = "text/markdown; charset=utf-8"
CSV = "text/csv; charset=utf-8"

# Sniffed type → the file name endings that go with it (the first is added when the name has
# none of them, so that "run.bat" holding text is downloaded as "run.bat.txt").
EXTENSIONS: dict[str, tuple[str, ...]] = {
    PDF: (".pdf",),
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    TEXT: (".txt", ".text"),
    MARKDOWN: (".md", ".markdown"),
    CSV: (".csv",),
    DOCX: (".docx",),
    XLSX: (".xlsx",),
    PPTX: (".pptx",),
}

# The main part's content type in [Content_Types].xml decides which Office document a zip is.
# Macro-enabled documents (docm, xlsm, pptm) declare different types and are refused.
OOXML_MAIN_PARTS: dict[bytes, str] = {
    b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": DOCX,
    b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": XLSX,
    b"application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": PPTX,
}
CONTENT_TYPES_MAX_BYTES = 1024 * 1024

# Image signatures → (Pillow format, content type).
IMAGE_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG", "image/png"),
    (b"\xff\xd8\xff", "JPEG", "image/jpeg"),
    (b"GIF87a", "GIF", "image/gif"),
    (b"GIF89a", "GIF", "image/gif"),
)

ALLOWED_DESCRIPTION = (
    "Please upload a PDF, an image (PNG, JPEG, GIF or WebP), a text, Markdown or CSV file, "
    "or a Word, Excel or PowerPoint document."
)
READ_CHUNK = 64 * 1024


def material_max_bytes() -> int:
    return getattr(settings, "MATERIAL_MAX_BYTES", 20 * 1024 * 1024)


def _refuse(message: str, *, code: str = "invalid_file", status: int = 400) -> ApplicationError:
    return ApplicationError(message, code=code, status=status, fields={"file": [message]})


# --- What a file is: from its bytes, never from its name ------------------------------------


def _sniff_image(upload: IO[bytes], pillow_format: str) -> None:
    upload.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(upload, formats=[pillow_format]) as image:
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _refuse("The image has too many pixels. Please upload a smaller picture.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, TypeError):
        raise _refuse(
            "This image is damaged or not what its first bytes claim. " + ALLOWED_DESCRIPTION
        ) from None


def _sniff_office(upload: IO[bytes]) -> str:
    upload.seek(0)
    try:
        with zipfile.ZipFile(upload) as archive:
            try:
                info = archive.getinfo("[Content_Types].xml")
            except KeyError:
                info = None
            names = archive.namelist()
            if info is None or info.file_size > CONTENT_TYPES_MAX_BYTES:
                raise _refuse("Zip archives are not allowed. " + ALLOWED_DESCRIPTION)
            if any(name.lower().endswith("vbaproject.bin") for name in names):
                raise _refuse("Office documents with macros are not allowed. Please save it without macros.")
            content_types = archive.read(info)[: CONTENT_TYPES_MAX_BYTES + 1]
    except ApplicationError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError):
        raise _refuse("This file looks like an archive but cannot be read. " + ALLOWED_DESCRIPTION) from None
    for marker, content_type in OOXML_MAIN_PARTS.items():
        if marker in content_types:
            return content_type
    raise _refuse(
        "Only Word (.docx), Excel (.xlsx) and PowerPoint (.pptx) documents are allowed as Office files."
    )


def _is_utf8_text(upload: IO[bytes]) -> bool:
    upload.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := upload.read(READ_CHUNK):
            if b"\x00" in chunk:
                return False
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def sniff_content_type(upload: IO[bytes], *, name: str = "") -> str:
    """The content type of an allowed file, judged from its bytes; ApplicationError otherwise.

    `name` only picks between the text flavours (plain, Markdown, CSV) once the bytes are known
    to be UTF-8 text.
    """
    upload.seek(0)
    head = upload.read(16)
    if not head:
        raise _refuse("The file is empty.")
    if head.startswith((b"MZ", b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"#!")):
        raise _refuse("Programs and scripts cannot be shared as materials. " + ALLOWED_DESCRIPTION)
    if head.startswith(b"%PDF-"):
        return PDF
    for signature, pillow_format, content_type in IMAGE_SIGNATURES:
        if head.startswith(signature):
            _sniff_image(upload, pillow_format)
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        _sniff_image(upload, "WEBP")
        return "image/webp"
    if head.startswith(b"PK\x03\x04"):
        return _sniff_office(upload)
    if _is_utf8_text(upload):
        extension = posixpath.splitext(name.lower())[1]
        if extension in EXTENSIONS[MARKDOWN]:
            return MARKDOWN
        if extension in EXTENSIONS[CSV]:
            return CSV
        return TEXT
    raise _refuse("This type of file is not allowed. " + ALLOWED_DESCRIPTION)


def sanitize_name(name: str, *, content_type: str | None = None) -> str:
    """A name safe to show and to offer as a download name: the last path part, no control or
    formatting characters (such as right-to-left overrides), at most 200 characters, and ending
    in an extension that matches the file's real type."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        char
        for char in name
        if unicodedata.category(char) not in {"Cc", "Cf", "Zl", "Zp"} and char not in "/\\"
    )
    name = " ".join(name.split()).strip(" .")
    if not name:
        name = "file"
    if content_type in EXTENSIONS:
        allowed = EXTENSIONS[content_type]
        if not name.lower().endswith(allowed):
            name = f"{name}{allowed[0]}"
    if len(name) > NAME_MAX_LENGTH:
        stem, extension = posixpath.splitext(name)
        extension = extension[:20]
        name = stem[: NAME_MAX_LENGTH - len(extension)] + extension
    return name


# --- Who may do what ---------------------------------------------------------------------------


def materials_can_upload(booking: Booking, user: User) -> bool:
    """Whether to offer the upload form (the 20-file limit is checked when a file arrives)."""
    return booking.is_participant(user) and booking.status not in CLOSED_STATUSES


def materials_for(*, booking: Booking, user: User) -> list[Material]:
    """The booking's files, oldest first, for its participants (anyone else gets none)."""
    if not booking.is_participant(user):
        return []
    return list(booking.materials.select_related("uploaded_by").order_by("created_at", "pk"))


def material_for(*, booking_id: int, material_id: int, user: User) -> Material | None:
    """One file, if `user` takes part in its booking; None otherwise (so callers answer 404)."""
    material = (
        Material.objects.select_related("booking__mentor", "uploaded_by")
        .filter(pk=material_id, booking_id=booking_id)
        .first()
    )
    if material is None or not material.booking.is_participant(user):
        return None
    return material


# --- Changes -----------------------------------------------------------------------------------


@transaction.atomic
def material_upload(*, booking: Booking, user: User, upload: UploadedFile) -> Material:
    """Store an upload on the booking, after checking who sends it, its size, count and type."""
    if not booking.is_participant(user):
        raise ApplicationError(
            "Only the learner and the mentor of this session can share files.",
            code="not_participant",
            status=403,
        )
    limit = material_max_bytes()
    if upload.size is None or upload.size > limit:
        raise _refuse(
            f"The file is too large. Files can be at most {limit // (1024 * 1024)} MB.", code="too_large"
        )
    # The lock makes two uploads at once count each other.
    locked = Booking.objects.select_for_update().get(pk=booking.pk)
    require_storage(adding_bytes=upload.size)
    if locked.status in CLOSED_STATUSES:
        raise ApplicationError(
            f"Files cannot be added to a {locked.get_status_display().lower()} session.",
            code="session_closed",
            status=400,
        )
    if Material.objects.filter(booking=locked).count() >= MATERIALS_PER_BOOKING:
        raise _refuse(
            f"A session can have at most {MATERIALS_PER_BOOKING} files. Delete one to add another.",
            code="too_many_files",
        )

    content_type = sniff_content_type(upload, name=upload.name or "")
    original_name = sanitize_name(upload.name or "", content_type=content_type)
    upload.seek(0)
    # The stored name comes from `material_path` (a random one); this only keeps validation happy.
    upload.name = "upload"
    material = Material(
        booking=locked,
        uploaded_by=user,
        file=upload,
        original_name=original_name,
        content_type=content_type,
        size=upload.size,
    )
    material.full_clean()
    try:
        material.save()
    except Exception:
        # The file is written before the row: do not leave it behind when the row fails.
        if material.file.name and material.file.name != "upload":
            material.file.storage.delete(material.file.name)
        raise
    return material


@transaction.atomic
def material_delete(*, material: Material, user: User) -> None:
    """Remove a file; only its uploader may. The file on disk goes once the deletion commits."""
    if material.uploaded_by_id != user.pk:
        raise ApplicationError(
            "Only the person who uploaded a file can delete it.", code="not_uploader", status=403
        )
    storage, name = material.file.storage, material.file.name
    material.delete()
    transaction.on_commit(lambda: storage.delete(name))
