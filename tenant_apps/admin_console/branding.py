"""The institution's look: theme, colours, font, colour scheme, logo, favicon, custom CSS.

Images are re-encoded from their pixels (nothing of the upload but the picture survives) and
stored under the institution's own media prefix (MEDIA_ROOT/<schema>/branding/). Every change is
written to the audit log in the same transaction, and the institution directory is told on commit.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django_tenants.utils import schema_context
from PIL import Image, ImageOps, UnidentifiedImageError

from shared.core.errors import ApplicationError
from shared.platform_billing.limits import require_feature
from shared.platform_billing.models import Feature
from shared.platform_billing.services import branding_footer_set
from tenants.directory import directory
from tenants.models import Institution

from .audit import audit_record, diff

LOGO_MAX_BYTES = 2 * 1024 * 1024
FAVICON_MAX_BYTES = 512 * 1024
IMAGE_MAX_PIXELS = 16_000_000
LOGO_BOX = (600, 200)
FAVICON_SIZE = 64
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP", "ICO"})
WCAG_AA = 4.5

STYLE_FIELDS = ("theme", "primary_color", "accent_color", "font", "color_scheme")


# ---------- contrast (WCAG 2.x) ----------


def relative_luminance(hex_color: str) -> float:
    channels = [int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def contrast_warnings(primary_color: str) -> list[str]:
    """What fails WCAG AA (4.5:1) with this primary colour: text on it, and it as text on white."""
    from tenants.branding import contrast_color

    warnings_: list[str] = []
    on_primary = contrast_ratio(primary_color, contrast_color(primary_color))
    if on_primary < WCAG_AA:
        warnings_.append(
            f"Text on the primary colour has a contrast of {on_primary:.1f}:1, below the 4.5:1 that "
            "WCAG AA asks for: buttons and the header will be hard to read."
        )
    on_white = contrast_ratio(primary_color, "#ffffff")
    if on_white < WCAG_AA:
        warnings_.append(
            f"The primary colour on white has a contrast of {on_white:.1f}:1, below 4.5:1: "
            "links and headings in it will be hard to read."
        )
    return warnings_


# ---------- images ----------


def _refuse(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, code="invalid_image", fields={field: [message]})


def _open_image(upload: UploadedFile, *, field: str, max_bytes: int) -> Image.Image:
    if upload.size is not None and upload.size > max_bytes:
        size = f"{max_bytes // 1024} KB" if max_bytes < 1024 * 1024 else f"{max_bytes // (1024 * 1024)} MB"
        raise _refuse(field, f"The image is too large. Please upload a file under {size}.")
    upload.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(upload)
            if image.format not in ALLOWED_FORMATS:
                raise _refuse(field, "Please upload a PNG, JPEG, GIF, WebP or ICO image.")
            width, height = image.size
            if width * height > IMAGE_MAX_PIXELS or width < 1 or height < 1:
                raise _refuse(field, "The image has too many pixels. Please upload a smaller picture.")
            image.verify()
            upload.seek(0)
            image = Image.open(upload)
            image = ImageOps.exif_transpose(image)
            image.load()
            return image.convert("RGBA")
    except ApplicationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _refuse(field, "The image has too many pixels. Please upload a smaller picture.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise _refuse(field, "This file is not an image we can read. Please upload a PNG or JPEG.") from None


def _png(image: Image.Image, name: str) -> ContentFile:
    output = io.BytesIO()
    image.save(output, format="PNG", optimize=True)
    return ContentFile(output.getvalue(), name=name)


def logo_from_upload(upload: UploadedFile) -> ContentFile:
    """A PNG (transparency kept) that fits LOGO_BOX, re-encoded from the pixels only."""
    image = _open_image(upload, field="logo", max_bytes=LOGO_MAX_BYTES)
    image.thumbnail(LOGO_BOX, Image.LANCZOS)
    return _png(image, "logo.png")


def favicon_from_upload(upload: UploadedFile) -> ContentFile:
    """A FAVICON_SIZE square PNG (the picture centred on a transparent square)."""
    image = _open_image(upload, field="favicon", max_bytes=FAVICON_MAX_BYTES)
    image = ImageOps.pad(image, (FAVICON_SIZE, FAVICON_SIZE), Image.LANCZOS, color=(0, 0, 0, 0))
    return _png(image, "favicon.png")


# ---------- saving ----------


@dataclass(frozen=True)
class BrandingChange:
    theme: str
    primary_color: str
    accent_color: str
    font: str
    color_scheme: str
    hide_powered_by: bool
    custom_css: str | None = None  # None: leave as it is (the plan has no custom CSS)
    logo: UploadedFile | None = None
    remove_logo: bool = False
    favicon: UploadedFile | None = None
    remove_favicon: bool = False


def branding_values(institution: Institution) -> dict:
    return {
        **{field: getattr(institution, field) for field in STYLE_FIELDS},
        "hide_powered_by": institution.hide_powered_by,
        "custom_css": institution.custom_css,
        "logo": institution.logo.name if institution.logo else "",
        "favicon": institution.favicon.name if institution.favicon else "",
    }


def branding_update(*, institution: Institution, actor, change: BrandingChange) -> dict[str, list]:
    """Apply `change` to the institution (public schema). Returns the audited changes.

    Raises ApplicationError when the plan lacks custom CSS or the footer switch (nothing is saved),
    or when an image is refused.
    """
    from tenants.css_sanitizer import sanitize_css

    with schema_context("public"):
        current = Institution.objects.get(pk=institution.pk)
    before = branding_values(current)

    custom_css = current.custom_css
    if change.custom_css is not None:
        custom_css = sanitize_css(change.custom_css)
        if custom_css != current.custom_css:
            require_feature(Feature.CUSTOM_CSS, institution=current)
    if change.hide_powered_by and not current.hide_powered_by:
        require_feature(Feature.REMOVE_BRANDING, institution=current)

    # Decode (and refuse) the images before anything is written.
    logo = logo_from_upload(change.logo) if change.logo is not None else None
    favicon = favicon_from_upload(change.favicon) if change.favicon is not None else None

    old_files: list[tuple[object, str]] = []
    with transaction.atomic():
        with schema_context("public"):
            current = Institution.objects.select_for_update().get(pk=institution.pk)
        for field in STYLE_FIELDS:
            setattr(current, field, getattr(change, field))
        current.custom_css = custom_css
        for field, upload, remove in (
            ("logo", logo, change.remove_logo),
            ("favicon", favicon, change.remove_favicon),
        ):
            file = getattr(current, field)
            if upload is not None or (remove and file):
                if file:
                    old_files.append((file.storage, file.name))
                if upload is not None:
                    # Files go under the request's institution's media prefix (the tenant storage).
                    file.save(upload.name, upload, save=False)
                else:
                    setattr(current, field, "")
        with schema_context("public"):
            current.save(
                update_fields=[*STYLE_FIELDS, "custom_css", "logo", "favicon"],
            )
        if change.hide_powered_by != current.hide_powered_by:
            branding_footer_set(institution=current, hide=change.hide_powered_by)
            current.hide_powered_by = change.hide_powered_by
        changes = diff(before, branding_values(current))
        if "custom_css" in changes:
            # The log says that it changed and how long it is, not the whole stylesheet.
            changes["custom_css"] = [
                f"{len(before['custom_css'])} characters",
                f"{len(custom_css)} characters",
            ]
        if changes:
            audit_record(actor=actor, action="branding.update", target=current.name, changes=changes)
        transaction.on_commit(directory.invalidate)
        for storage, name in old_files:
            transaction.on_commit(lambda storage=storage, name=name: storage.delete(name))
    return changes
