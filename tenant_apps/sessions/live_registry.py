"""Who is in a live room, kept in Redis so that a room works across server processes.

Each connection is a peer (a random id) with a record: its user, name, channel name and media
state. Lua scripts register, refresh and forget peers atomically; peers whose process died are
pruned when nobody has seen them for a while, and the room is told they left.
"""

import asyncio
import json
import logging
import time
import types

from django.conf import settings
from redis import asyncio as aioredis

from .live import MAX_PARTICIPANTS

logger = logging.getLogger(__name__)

_redis_clients: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}


def _redis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _redis_clients.get(loop)
    if client is None:
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=64,  # waits for a free connection instead of failing under load
            timeout=5,
            socket_timeout=5,
            socket_connect_timeout=5,
            health_check_interval=30,
            decode_responses=True,
        )
        client = _redis_clients[loop] = aioredis.Redis(connection_pool=pool)
        original_close = loop.close

        def close(self) -> None:
            stale = _redis_clients.pop(loop, None)
            if stale is not None and not loop.is_running():
                try:
                    loop.run_until_complete(stale.aclose(close_connection_pool=True))
                except Exception:  # a closing loop: nothing left to tell anyone
                    logger.debug("closing the live-room Redis client failed", exc_info=True)
            self.close = original_close
            return original_close()

        loop.close = types.MethodType(close, loop)
    return client


# Both scripts first forget peers not seen for STALE seconds (their process died) and return
# their ids, so that the room can be told they left. KEYS: peers hash, seen zset, then
# JOIN: the ended marker; ARGV: peer id, record, now, stale before, ttl, max peers.
# It refuses when the room has ended or is full, else registers and returns the other peers.
_PRUNE = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
for _, id in ipairs(gone) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
"""
_REGISTER = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
"""
_JOIN_SCRIPT = (
    "if redis.call('EXISTS', KEYS[3]) == 1 then return {-1, {}, {}} end"
    + _PRUNE
    + """
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[6]) then return {0, gone, {}} end
local others = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 2, #all, 2 do table.insert(others, all[i]) end
"""
    + _REGISTER
    + "return {1, gone, others}"
)
_TOUCH_SCRIPT = _PRUNE + _REGISTER + "return gone"


class PeerRegistry:
    """The peers of one room: hash `live:<schema>.<kind>.<id>:peers` (peer id → JSON record with
    the channel name) and sorted set `…:seen` (peer id → last heartbeat). Keys carry the schema
    through the room's group name; they expire when nobody refreshes them."""

    HEARTBEAT_SECONDS = 30
    STALE_SECONDS = 90
    KEY_TTL_SECONDS = 120

    JOINED, FULL, ENDED = 1, 0, -1

    def __init__(self, group: str) -> None:
        base = f"live:{group}"
        self.peers_key, self.seen_key = f"{base}:peers", f"{base}:seen"
        self.seq_key, self.ended_key, self.starting_key = f"{base}:seq", f"{base}:ended", f"{base}:starting"

    async def next_seq(self) -> int:
        redis = _redis()
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(self.seq_key).expire(self.seq_key, self.KEY_TTL_SECONDS)
            seq, _ = await pipe.execute()
        return seq

    def _args(self, peer_id: str, record: dict) -> list:
        now = time.time()
        return [peer_id, json.dumps(record), now, now - self.STALE_SECONDS, self.KEY_TTL_SECONDS]

    async def join(self, peer_id: str, record: dict) -> tuple[int, list[dict], list[str]]:
        """(JOINED, the other peers' records, ids of dead peers just forgotten), or FULL / ENDED."""
        status, gone, others = await _redis().eval(
            _JOIN_SCRIPT,
            3,
            self.peers_key,
            self.seen_key,
            self.ended_key,
            *self._args(peer_id, record),
            MAX_PARTICIPANTS,
        )
        return int(status), [json.loads(raw) for raw in others], list(gone)

    async def touch(self, peer_id: str, record: dict) -> list[str]:
        """Refresh (or rewrite) this peer's entry; the ids of dead peers just forgotten."""
        async with _redis().pipeline(transaction=True) as pipe:
            pipe.eval(_TOUCH_SCRIPT, 2, self.peers_key, self.seen_key, *self._args(peer_id, record))
            pipe.expire(self.seq_key, self.KEY_TTL_SECONDS)
            gone, _ = await pipe.execute()
        return list(gone)

    async def leave(self, peer_id: str) -> None:
        async with _redis().pipeline(transaction=True) as pipe:
            await pipe.hdel(self.peers_key, peer_id).zrem(self.seen_key, peer_id).execute()

    async def get(self, peer_id: str) -> dict | None:
        raw = await _redis().hget(self.peers_key, peer_id)
        return json.loads(raw) if raw else None

    async def end(self, seconds: int) -> None:
        """The mentor ended the session: nobody joins again until the room would have closed."""
        await _redis().set(self.ended_key, "1", ex=max(1, seconds))

    async def first_start(self, seconds: int) -> bool:
        """True once per room: whether this is the first time the mentor came in."""
        return bool(await _redis().set(self.starting_key, "1", nx=True, ex=max(1, seconds)))
