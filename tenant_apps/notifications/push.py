"""Pushing events to a person's open pages through the notifications socket."""

import logging
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction

logger = logging.getLogger(__name__)


def user_group(user_id: int, *, schema_name: str | None = None) -> str:
    """`<schema>.user.<id>`: the group every open page of one person listens to."""
    return f"{schema_name or connection.schema_name}.user.{user_id}"


def push_to_users(*, user_ids: Iterable[int], event: str, payload: dict) -> None:
    """Send `{"type": event, ...payload}` to every open page of these people, after commit."""
    groups = [user_group(user_id) for user_id in set(user_ids)]
    message = {"type": "notification.push", "event": event, "payload": payload}

    def send() -> None:
        layer = get_channel_layer()
        try:
            for group in groups:
                async_to_sync(layer.group_send)(group, message)
        except Exception as error:
            # Best effort: the change is committed and the pages ask again when their socket
            # reconnects. A channel layer that is down (Redis) must not fail the request.
            logger.warning("push of %s not sent (channel layer unavailable): %s", event, error)

    transaction.on_commit(send)
