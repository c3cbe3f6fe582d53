"""Run a command with the embedded Postgres/Redis available.

    python scripts/with_services.py <command> [args...]

Starts whatever ``scripts/services.py`` needs to start (nothing when
``DATABASE_URL`` and ``REDIS_URL`` are set), runs the command with
``DATABASE_URL``/``REDIS_URL`` added to its environment, stops the services and
exits with the command's exit code.

Ctrl-C reaches the command directly from the terminal (this script waits for
it to finish); SIGTERM/SIGHUP sent to this script are forwarded to it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

try:
    from scripts.services import embedded_services
except ImportError:  # run as `python scripts/with_services.py`: scripts/ is on sys.path
    from services import embedded_services

GRACE_SECONDS = 10


def _exit_code(returncode: int) -> int:
    # A child killed by a signal reports -N; shells report 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def run(command: list[str]) -> int:
    child: subprocess.Popen | None = None
    forwarded_at: float | None = None

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal forwarded_at
        if child is None:
            raise SystemExit(128 + signum)  # still starting services: abort
        if signum == signal.SIGINT:
            return  # the terminal delivers Ctrl-C to the child itself
        if child.poll() is None:
            child.send_signal(signum)
            forwarded_at = forwarded_at or time.monotonic()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    with embedded_services() as extra_env:
        try:
            child = subprocess.Popen(command, env={**os.environ, **extra_env})
        except OSError as exc:
            print(f"with_services: cannot run {command[0]!r}: {exc}", file=sys.stderr)
            return 127
        try:
            while True:
                try:
                    returncode = child.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if forwarded_at and time.monotonic() - forwarded_at > GRACE_SECONDS:
                    print(
                        "with_services: command did not stop; killing it",
                        file=sys.stderr,
                    )
                    child.kill()
        finally:
            if child.poll() is None:  # only reached on an unexpected exception
                child.kill()
                child.wait()
    return _exit_code(returncode)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return run(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
