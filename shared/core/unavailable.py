"""A request the database cannot serve right now gets a 503 that says so, never a 500.

While Postgres restarts (or fails over), the queries in flight fail and new connections are refused
for a moment. Those requests are answered 503 Service Unavailable with `Retry-After`, as a small
page or the API's error body; the pool replaces its dead connections as it lends them
(`CONN_HEALTH_CHECKS`), so the next requests succeed without restarting the app.

Two places see such errors: `DatabaseUnavailableMiddleware.process_exception` for views (the
API's views included: its exception handler leaves database errors alone), and `server_error`
(shared/core/views.py), which calls `unavailable_response` for errors raised by a middleware.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from .api import error_body

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
MESSAGE = "The service is briefly unavailable. Please try again in a few seconds."


def database_unavailable(error: BaseException | None) -> bool:
    """Whether `error` says the database cannot be reached or dropped the connection."""
    return isinstance(error, OperationalError | InterfaceError)


def unavailable_response(request: HttpRequest) -> HttpResponse:
    # Rendered without the request: context processors would ask the database again.
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(error_body(code="unavailable", message=MESSAGE), status=503)
    else:
        response = HttpResponse(render_to_string("errors/503.html", {"message": MESSAGE}), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not database_unavailable(exception):
            return None
        logger.warning("database unavailable for %s %s: %s", request.method, request.path, exception)
        return unavailable_response(request)
