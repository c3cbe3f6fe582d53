"""The schema runs on a bare PostgreSQL: `make run`'s embedded server ships no contrib extensions."""

from pathlib import Path

from django.conf import settings


def test_no_migration_needs_a_postgres_extension():
    offenders = [
        str(path.relative_to(settings.BASE_DIR))
        for path in Path(settings.BASE_DIR).glob("*/**/migrations/*.py")
        if ".venv" not in path.parts
        and ("EXTENSION" in (text := path.read_text()).upper() or "CreateExtension" in text)
    ]
    assert offenders == []
