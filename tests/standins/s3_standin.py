"""A local S3 for tests, reached by boto3 (through django-storages) and by plain HTTP clients.

Two servers, both on 127.0.0.1:

- moto in server mode (`ThreadedMotoServer`, from the package index) in a background thread: a
  stateful S3 that stores objects and refuses anonymous reads of private ones, but does not check
  signatures.
- a front server in another thread, which is the endpoint the application talks to. Like S3, it
  checks every signed request before passing it on to moto: AWS Signature Version 4 computed
  again from the request with the secret key, whether in the Authorization header (boto3's API
  calls) or in the query string (presigned URLs, which also expire). A request without a signature
  goes on to moto as an anonymous one. Refusals are S3's: 403 with an XML error document whose
  Code is SignatureDoesNotMatch, InvalidAccessKeyId or AccessDenied ("Request has expired").

Loaded as a pytest plugin; the session-scoped `s3_standin` fixture starts both and makes one
private bucket. `storages_setting()` is the STORAGES value that puts the default storage there.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

HOST = "127.0.0.1"
REGION = "eu-west-1"
BUCKET = "peerlearn-test-media"
ACCESS_KEY = "AKIASTANDIN000000001"
SECRET_KEY = "standin-secret-key-0000000000000000000000"
MAX_PRESIGNED_SECONDS = 7 * 24 * 3600

# Werkzeug (moto's server) logs every request at INFO.
logging.getLogger("werkzeug").setLevel(logging.WARNING)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def _canonical_query(raw_query: str, *, without: str = "") -> str:
    pairs = []
    for pair in raw_query.split("&") if raw_query else []:
        key, _, value = pair.partition("=")
        key, value = quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")
        if key != without:
            pairs.append((key, value))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


class SignatureError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def verify_sigv4(method: str, raw_path: str, headers: Any, *, now: datetime | None = None) -> bool:
    """Whether the request is signed (False: anonymous); raises SignatureError if wrongly so."""
    path, _, raw_query = raw_path.partition("?")
    query = {unquote(k): unquote(v) for k, _, v in (p.partition("=") for p in raw_query.split("&") if p)}
    authorization = headers.get("Authorization", "")
    if "X-Amz-Signature" in query:
        if query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            raise SignatureError("AuthorizationQueryParametersError", "Only AWS4-HMAC-SHA256 is supported.")
        credential, signed_headers = query["X-Amz-Credential"], query["X-Amz-SignedHeaders"]
        signature, amz_date = query["X-Amz-Signature"], query["X-Amz-Date"]
        expires = int(query.get("X-Amz-Expires", "0"))
        if not 0 < expires <= MAX_PRESIGNED_SECONDS:
            raise SignatureError("AuthorizationQueryParametersError", "X-Amz-Expires is out of range.")
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if (now or datetime.now(UTC)) > signed_at + timedelta(seconds=expires):
            raise SignatureError("AccessDenied", "Request has expired")
        payload_hash = "UNSIGNED-PAYLOAD"
        canonical_query = _canonical_query(raw_query, without="X-Amz-Signature")
    elif authorization.startswith("AWS4-HMAC-SHA256 "):
        parts = dict(
            item.strip().partition("=")[::2] for item in authorization[len("AWS4-HMAC-SHA256 ") :].split(",")
        )
        credential, signed_headers, signature = (
            parts["Credential"],
            parts["SignedHeaders"],
            parts["Signature"],
        )
        amz_date = headers.get("X-Amz-Date", "")
        payload_hash = headers.get("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")
        canonical_query = _canonical_query(raw_query)
    elif authorization:
        raise SignatureError("InvalidRequest", "Only AWS Signature Version 4 is supported.")
    else:
        return False

    access_key, date, region, service, _terminator = credential.split("/")
    if access_key != ACCESS_KEY:
        raise SignatureError("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist.")
    canonical_headers = "".join(
        f"{name}:{' '.join((headers.get(name) or '').split())}\n" for name in signed_headers.split(";")
    )
    canonical_request = "\n".join(
        [method, path, canonical_query, canonical_headers, signed_headers, payload_hash]
    )
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            f"{date}/{region}/{service}/aws4_request",
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    expected = hmac.new(
        _signing_key(SECRET_KEY, date, region, service), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise SignatureError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    return True


class _FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FrontServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _refuse(self, error: SignatureError) -> None:
        # Recorded before answering: a test reads `refused` as soon as its request returns.
        self.server.standin.refused.append(error.code)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{error.code}</Code><Message>{error.message}</Message></Error>"
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            now = datetime.now(UTC) + self.server.standin.clock_ahead
            verify_sigv4(self.command, self.path, self.headers, now=now)
        except SignatureError as error:
            self._refuse(error)
            return
        upstream = http.client.HTTPConnection(HOST, self.server.standin.moto_port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in {"connection"}}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in {
                    "connection",
                    "transfer-encoding",
                    "content-length",
                    "server",
                    "date",
                }:
                    self.send_header(name, value)
            declared = response.getheader("Content-Length")
            self.send_header(
                "Content-Length", declared if self.command == "HEAD" and declared else str(len(payload))
            )
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        finally:
            upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class _FrontServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, standin: S3Standin) -> None:
        super().__init__((HOST, 0), _FrontHandler)
        self.standin = standin


@dataclass
class S3Standin:
    moto_port: int
    port: int = 0
    bucket: str = BUCKET
    region: str = REGION
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    # The error codes of the requests the front refused, oldest first.
    refused: list[str] = field(default_factory=list)
    # How far ahead of the real clock the front checks expiry (tests move time instead of waiting).
    clock_ahead: timedelta = timedelta(0)

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def client(self):
        """A boto3 S3 client with the stand-in's credentials, through the checking front."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def storage_options(self, **overrides: Any) -> dict[str, Any]:
        options = {
            "bucket_name": self.bucket,
            "region_name": self.region,
            "endpoint_url": self.endpoint_url,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "addressing_style": "path",
            "signature_version": "s3v4",
            "querystring_expire": 300,
        }
        options.update(overrides)
        return options

    def storages_setting(self, **overrides: Any) -> dict[str, dict]:
        """STORAGES with the default storage in the stand-in's bucket (static files unchanged)."""
        from django.conf import settings

        return {
            **settings.STORAGES,
            "default": {
                "BACKEND": "shared.core.storage.TenantS3Storage",
                "OPTIONS": self.storage_options(**overrides),
            },
        }

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    def empty(self, prefix: str) -> None:
        client = self.client()
        for key in self.keys(prefix):
            client.delete_object(Bucket=self.bucket, Key=key)


@pytest.fixture(scope="session")
def s3_standin() -> Iterator[S3Standin]:
    moto = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    moto.start()
    standin = S3Standin(moto_port=moto.get_host_and_port()[1])
    front = _FrontServer(standin)
    standin.port = front.server_address[1]
    thread = threading.Thread(target=front.serve_forever, name="s3-standin-front", daemon=True)
    thread.start()
    try:
        standin.client().create_bucket(
            Bucket=standin.bucket, CreateBucketConfiguration={"LocationConstraint": standin.region}
        )
        yield standin
    finally:
        front.shutdown()
        front.server_close()
        moto.stop()
