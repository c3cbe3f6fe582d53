"""Turning an uploaded file into a safe avatar: a real image, bounded, resized, EXIF gone."""

import io
import warnings

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, ImageOps, UnidentifiedImageError

from shared.core.errors import ApplicationError

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP"})


def _refuse(message: str) -> ApplicationError:
    return ApplicationError(message, code="invalid_image", fields={"avatar": [message]})


def avatar_from_upload(upload: UploadedFile) -> ContentFile:
    """A square JPEG of at most AVATAR_SIZE pixels, re-encoded from the upload's pixels only.

    Raises ApplicationError for anything that is not a real JPEG/PNG/GIF/WebP image, is larger
    than AVATAR_MAX_BYTES, or declares more than AVATAR_MAX_PIXELS (a decompression bomb is
    refused from its header, before its pixels are decoded).
    """
    if upload.size is not None and upload.size > settings.AVATAR_MAX_BYTES:
        limit_mb = settings.AVATAR_MAX_BYTES // (1024 * 1024)
        raise _refuse(f"The image is too large. Please upload a file under {limit_mb} MB.")

    upload.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(upload)
            if image.format not in ALLOWED_FORMATS:
                raise _refuse("Please upload a JPEG, PNG, GIF or WebP image.")
            width, height = image.size
            if width * height > settings.AVATAR_MAX_PIXELS or width < 1 or height < 1:
                raise _refuse("The image has too many pixels. Please upload a smaller picture.")
            image.verify()
            # verify() leaves the image unusable: open it again to decode the pixels.
            upload.seek(0)
            image = Image.open(upload)
            image.draft("RGB", (settings.AVATAR_SIZE * 2, settings.AVATAR_SIZE * 2))
            image = ImageOps.exif_transpose(image)
            image = image.convert("RGB")
    except ApplicationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _refuse("The image has too many pixels. Please upload a smaller picture.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise _refuse("This file is not an image we can read. Please upload a JPEG or PNG.") from None

    image = ImageOps.fit(image, (settings.AVATAR_SIZE, settings.AVATAR_SIZE), Image.LANCZOS)
    output = io.BytesIO()
    # A fresh image carries no EXIF, ICC or comment blocks from the upload.
    image.save(output, format="JPEG", quality=85, optimize=True)
    return ContentFile(output.getvalue(), name="avatar.jpg")
