"""Where uploaded files are kept: on disk under MEDIA_ROOT (the default) or in S3 (MEDIA_STORAGE=s3).

base.py imports this module right after it defines STORAGES, so the names used below already
exist there. With S3, the default storage is shared.core.storage.TenantS3Storage: one private
bucket, each institution's files under its schema's prefix (docs/operations.md#media-on-s3).

    MEDIA_STORAGE=s3
    AWS_STORAGE_BUCKET_NAME=peerlearn-media
    AWS_S3_REGION_NAME=eu-west-1
    AWS_S3_ENDPOINT_URL=            # only for S3-compatible services other than AWS
    AWS_S3_ADDRESSING_STYLE=        # "path" for services that need it
    MEDIA_SIGNED_URL_SECONDS=300    # how long a signed download link works

Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY when set, otherwise from boto3's
usual chain (an instance or task role).
"""

from .base import STORAGES, env

__all__ = ["MEDIA_SIGNED_URL_SECONDS", "MEDIA_STORAGE"]

MEDIA_STORAGE = env("MEDIA_STORAGE", "local").strip().lower()
# Signed URLs of private media (session materials, avatars, logos) stop working after this long.
MEDIA_SIGNED_URL_SECONDS = int(env("MEDIA_SIGNED_URL_SECONDS", "300"))

if MEDIA_STORAGE == "s3":
    if not env("AWS_STORAGE_BUCKET_NAME"):
        raise ValueError("MEDIA_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME.")
    STORAGES["default"] = {
        "BACKEND": "shared.core.storage.TenantS3Storage",
        "OPTIONS": {
            "bucket_name": env("AWS_STORAGE_BUCKET_NAME"),
            "region_name": env("AWS_S3_REGION_NAME") or None,
            "endpoint_url": env("AWS_S3_ENDPOINT_URL") or None,
            "addressing_style": env("AWS_S3_ADDRESSING_STYLE") or None,
            "signature_version": "s3v4",
            "querystring_expire": MEDIA_SIGNED_URL_SECONDS,
        },
    }
elif MEDIA_STORAGE != "local":
    raise ValueError(f"MEDIA_STORAGE must be 'local' or 's3', not {MEDIA_STORAGE!r}")
