"""WebSocket tenancy: origin check → institution from the Host header → sign-in in its schema.

Django's connection is per thread and shared by every consumer that runs sync code, so
setting a tenant from async code does nothing useful: every database call of a WebSocket
goes through `in_tenant`, which runs it in the sync thread inside the institution's schema.
"""

import contextlib
from collections.abc import Callable
from http.cookies import SimpleCookie
from importlib import import_module
from typing import Any, TypeVar
from urllib.parse import urlsplit

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
from django.contrib.auth.models import AnonymousUser
from django.core.cache import caches
from django.utils.crypto import constant_time_compare
from django_tenants.utils import tenant_context

from .directory import directory, normalize_host
from .models import Institution

T = TypeVar("T")


def _header(scope: dict, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


async def _refuse(send: Callable) -> None:
    # Before the handshake is accepted, a close becomes an HTTP 403 to the client.
    await send({"type": "websocket.close", "code": 4403})


class SameOriginValidator(BaseMiddleware):
    """Only pages of the same site may open its sockets (the Origin's host must be the Host)."""

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            origin = _header(scope, b"origin")
            host = _header(scope, b"host").lower()
            if not origin or urlsplit(origin).netloc.lower() != host:
                return await _refuse(send)
        return await self.inner(scope, receive, send)


def _forget_caches() -> None:
    """Drop this context's Django cache clients (the Redis connection pool stays shared).

    Django keeps cache clients per async context, and every socket is a context of its own: without
    this, each open socket holds its own django-redis client for as long as it lives (about 10 KiB
    at 1,000 sockets; docs/live.md#memory).
    """
    for alias in caches.settings:
        with contextlib.suppress(AttributeError):
            del caches[alias]


def resolve_institution(host: str) -> Institution | None:
    """The same directory as HTTP requests (no query once the host has been seen)."""
    try:
        return directory.lookup(normalize_host(host))
    finally:
        _forget_caches()


class InstitutionWebsocketMiddleware(BaseMiddleware):
    """`scope["tenant"]` from the Host header; an unknown host (or the platform's) is refused."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        institution = await database_sync_to_async(resolve_institution)(_header(scope, b"host"))
        if institution is None or institution.is_public:
            return await _refuse(send)
        # The scope is this connection's own: set on it rather than copy it (a copy per middleware
        # would stay alive, with the middleware's frame, for as long as the socket is open).
        scope["tenant"] = institution
        return await self.inner(scope, receive, send)


def _user_for_session(institution: Institution, session_key: str):
    """Django's get_user(), for a session key, inside the institution's schema."""
    try:
        return _session_user(institution, session_key)
    finally:
        _forget_caches()


def _session_user(institution: Institution, session_key: str):
    engine = import_module(settings.SESSION_ENGINE)
    with tenant_context(institution):
        session = engine.SessionStore(session_key)
        try:
            user_id = session[SESSION_KEY]
            backend_path = session[BACKEND_SESSION_KEY]
        except KeyError:
            return AnonymousUser()
        if backend_path not in settings.AUTHENTICATION_BACKENDS:
            return AnonymousUser()
        user = load_backend(backend_path).get_user(user_id)
        if user is None:
            return AnonymousUser()
        # Like django.contrib.auth.get_user: a changed password ends the session.
        stored_hash = session.get(HASH_SESSION_KEY, "")
        if not constant_time_compare(stored_hash, user.get_session_auth_hash()):
            return AnonymousUser()
        return user


class InstitutionAuthMiddleware(BaseMiddleware):
    """`scope["user"]` from the session cookie, looked up in the institution's own schema.

    A session of institution A does not exist in B's schema: on B's sockets that cookie is
    anonymous.
    """

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        cookies = SimpleCookie()
        try:
            cookies.load(_header(scope, b"cookie"))
        except Exception:  # a malformed Cookie header is no session at all
            cookies = SimpleCookie()
        morsel = cookies.get(settings.SESSION_COOKIE_NAME)
        user = AnonymousUser()
        if morsel is not None and morsel.value:
            user = await database_sync_to_async(_user_for_session)(scope["tenant"], morsel.value)
        scope["user"] = user
        return await self.inner(scope, receive, send)


def websocket_stack(inner):
    return SameOriginValidator(InstitutionWebsocketMiddleware(InstitutionAuthMiddleware(inner)))


async def in_tenant(scope: dict, function: Callable[..., T], /, **kwargs: Any) -> T:
    """Run `function(**kwargs)` in the sync thread, inside the socket's institution schema."""

    def call() -> T:
        try:
            with tenant_context(scope["tenant"]):
                return function(**kwargs)
        finally:
            _forget_caches()

    return await database_sync_to_async(call)()


class DirectDispatchMixin:
    """For consumers whose every database call goes through `in_tenant`.

    Channels' `AsyncConsumer.dispatch` hops to the sync thread before every frame and every layer
    message to close stale database connections; `database_sync_to_async` (which `in_tenant` uses)
    already does that around each call, so here the hop is skipped. At 1,000 live-room sockets the
    hop was most of the relay's p99 (docs/live.md#latency).
    """

    async def dispatch(self, message: dict) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
