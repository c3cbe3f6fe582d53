"""Uploaded files in S3: one private bucket, every institution's files under its own prefix.

With MEDIA_STORAGE=s3 (config/settings/storage.py) `TenantS3Storage` is the default storage. An
object's key is `<schema>/<name>`, the layout of MEDIA_ROOT/<schema>/<name> on disk, so a file's
name in the database is the same wherever it is stored and backups move between the two.

Objects are private: no ACL is sent and the bucket blocks public access. People reach a file
through a short-lived signed URL, handed out only by a view that has checked who is asking: the
materials download view (the session's participants) and the institution's media view (the
public folders, avatars and branding). `url()` therefore keeps answering the site's own path,
/media/<schema>/<name>, as on disk: pages and emails link to the site, and the site redirects to a
freshly signed URL.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import Storage, default_storage
from django.db import connection
from django.http import HttpResponseRedirect
from django.utils.encoding import filepath_to_uri
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3Storage

DEFAULT_SIGNED_URL_SECONDS = 300


class TenantS3Storage(S3Storage):
    """S3Storage whose location is the schema of the institution being served."""

    # Like the file system storage: an upload never replaces another file of the same name.
    file_overwrite = False
    # No ACL header: objects stay private whatever the bucket's ownership settings.
    default_acl = None

    @property
    def location(self) -> str:  # type: ignore[override]
        return connection.schema_name

    def url(self, name: str, parameters=None, expire=None, http_method=None) -> str:
        """The site's path for `name` (served by tenants.views.tenant_media), as on disk."""
        return f"{settings.MEDIA_URL}{connection.schema_name}/{filepath_to_uri(name)}"

    def signed_url(
        self, name: str, *, expire: int | None = None, parameters: dict[str, str] | None = None
    ) -> str:
        """A URL at which S3 itself hands out the current institution's `name` for `expire` seconds."""
        if expire is None:
            expire = signed_url_seconds()
        return super().url(name, parameters=parameters, expire=expire)


def signed_url_seconds() -> int:
    return int(getattr(settings, "MEDIA_SIGNED_URL_SECONDS", DEFAULT_SIGNED_URL_SECONDS))


def is_s3(storage: Storage | None = None) -> bool:
    return isinstance(default_storage if storage is None else storage, TenantS3Storage)


def signed_media_url(
    name: str,
    *,
    storage: Storage | None = None,
    download_name: str = "",
    content_type: str = "",
) -> str | None:
    """A short-lived signed URL for the current institution's file `name`, or None when files are
    on disk (the caller then serves them itself).

    With `download_name` S3 answers with `Content-Disposition: attachment` under that name, and
    with `content_type` under that type, whatever was stored with the object. Call this only
    after checking that the person asking may have the file: the URL works for anyone who holds it
    until it expires.
    """
    storage = default_storage if storage is None else storage
    if not is_s3(storage):
        return None
    parameters = {"ResponseCacheControl": "private, no-store"}
    if download_name:
        parameters["ResponseContentDisposition"] = content_disposition_header(True, download_name)
    if content_type:
        parameters["ResponseContentType"] = content_type
    return storage.signed_url(name, parameters=parameters)


def redirect_to_signed_url(url: str, *, max_age: int = 0) -> HttpResponseRedirect:
    """A redirect to a signed URL; browsers keep it for `max_age` seconds at most (never shared)."""
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = f"private, max-age={max_age}" if max_age else "private, no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response
