"""What every benchmark shares: the machine it ran on, its section of docs/benchmarks.md,
clean-up of the throw-away institutions it made, and Ctrl-C / SIGTERM handling."""

import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from django.db import connection
from django_tenants.utils import quote_schema_name, schema_exists

from tenants.models import Institution
from tenants.validators import schema_name_for

REPO_ROOT = Path(__file__).resolve().parent.parent
DOC = REPO_ROOT / "docs" / "benchmarks.md"
DOC_HEADER = """# Benchmarks

Figures are medians (with min, p90 and max) measured on this 2-core development machine with the
command shown in each section; compare them with one another, not with production hardware.
Each script replaces its own section when it is run again.
"""


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"


def write_section(name: str, body: str) -> None:
    """Put `body` between this benchmark's markers in docs/benchmarks.md (replacing what was there)."""
    start, end = markers(name)
    text = f"{start}\n{body.strip()}\n{end}"
    current = DOC.read_text() if DOC.exists() else DOC_HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text, current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + text + "\n"
    DOC.write_text(updated)


def machine() -> dict[str, str]:
    """CPU count and model, and the Postgres server version."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    return {"nproc": str(len(os.sched_getaffinity(0))), "cpu": cpu, "postgres": postgres}


def drop_institution(subdomain: str) -> bool:
    """Drop a throw-away institution, its domain and its schema (also after a failure)."""
    connection.close()  # an interrupted query may have left the connection unusable
    connection.set_schema_to_public()
    dropped = False
    for institution in Institution.objects.filter(slug=subdomain):
        institution.delete(force_drop=True)
        dropped = True
    schema_name = schema_name_for(subdomain)
    if schema_exists(schema_name):
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {quote_schema_name(schema_name)} CASCADE")
        dropped = True
    return dropped


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so the clean-up in `finally` blocks runs."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
