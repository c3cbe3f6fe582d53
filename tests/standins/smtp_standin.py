"""A local SMTP server for tests, reached by Django's real SMTP backend.

An aiosmtpd server on a free port of 127.0.0.1, in a background thread, that accepts every message
and keeps it, parsed (`email.message.EmailMessage`, modern policy), with its envelope. A message is
kept before the server answers 250 to its DATA, so it is there as soon as the sender returns.

Test controls: `port`, `messages`, `envelopes`, `clear()`. Loaded as a pytest plugin, it provides
the session-scoped `smtp_standin` fixture; point the backend at it with
EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1",
EMAIL_PORT=smtp_standin.port.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

HOST = "127.0.0.1"

# aiosmtpd logs every SMTP command at INFO.
logging.getLogger("mail.log").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Envelope:
    """Who the SMTP conversation said the message was from and to (MAIL FROM, RCPT TO)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]


class _Handler:
    def __init__(self, standin: SmtpStandin) -> None:
        self.standin = standin

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        self.standin._keep(
            message_from_bytes(content, policy=policy.default),
            Envelope(mail_from=envelope.mail_from or "", rcpt_tos=tuple(envelope.rcpt_tos)),
        )
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """Binds port 0 (the system picks a free one) and reads back the port it got."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpStandin:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        self._envelopes: list[Envelope] = []
        self._controller = _Controller(_Handler(self), hostname=HOST, port=0)

    @property
    def port(self) -> int:
        return self._controller.port

    @property
    def messages(self) -> list[EmailMessage]:
        """The messages received so far, oldest first (a copy of the list)."""
        with self._lock:
            return list(self._messages)

    @property
    def envelopes(self) -> list[Envelope]:
        """The envelope of each message in `messages`, in the same order."""
        with self._lock:
            return list(self._envelopes)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._envelopes.clear()

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def _keep(self, message: EmailMessage, envelope: Envelope) -> None:
        with self._lock:
            self._messages.append(message)
            self._envelopes.append(envelope)


@pytest.fixture(scope="session")
def smtp_standin() -> Iterator[SmtpStandin]:
    standin = SmtpStandin()
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()
