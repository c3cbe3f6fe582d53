"""JSON log lines for production: one object per record, with the request's id, host's schema and path.

`RequestContextFilter` (on the handler, so records of every logger pass through it) copies what
`shared.core.middleware.RequestIdMiddleware` keeps in context variables onto the record;
`JsonFormatter` writes the record as one line of JSON. Outside a request (Celery, the WebSocket
stack, management commands) those fields are null.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
    "tenant",
    "path",
}
# Extras written under their own names, in this order (request logs: status and duration).
_KNOWN_EXTRAS = ("method", "status", "duration_ms")


class RequestContextFilter(logging.Filter):
    """Adds request_id, tenant (the schema of the request's institution) and path to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        from .middleware import current_request_var, request_id_var

        request = current_request_var.get()
        tenant = getattr(request, "tenant", None) if request is not None else None
        record.request_id = request_id_var.get()
        record.tenant = getattr(tenant, "schema_name", None)
        record.path = request.path if request is not None else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, tenant, path, then extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "tenant": getattr(record, "tenant", None),
            "path": getattr(record, "path", None),
        }
        # django.request names the status `status_code`.
        if not hasattr(record, "status") and isinstance(getattr(record, "status_code", None), int):
            entry["status"] = record.status_code
        for name in _KNOWN_EXTRAS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        for name, value in vars(record).items():
            if name in _STANDARD_ATTRIBUTES or name in entry or name == "status_code":
                continue
            if _plain(value):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _plain(value: object) -> bool:
    """Extras worth writing: numbers, strings, booleans (not a request object, say)."""
    return value is None or isinstance(value, str | int | float | bool)
