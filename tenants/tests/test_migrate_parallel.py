"""`migrate_schemas` with the multiprocessing executor goes through every schema and finishes.

(Its forked workers must not share the parent's database connections; with 200 institutions they
hung. Two institutions do not reproduce the hang, so this is a check that the executor works, and
bench/migrate_schemas.py, which runs it over 200, is what exercises the fix.)"""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import _database_url

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_parallel_executor_migrates_every_schema_and_finishes(test_database, _institutions):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(test_database),
    }
    finished = subprocess.run(
        # --all-schemas: every schema goes through the executor, not only those with pending migrations.
        [
            sys.executable,
            "manage.py",
            "migrate_schemas",
            "--executor=multiprocessing",
            "--noinput",
            "--all-schemas",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    for institution in _institutions:
        assert institution.schema_name in finished.stdout + finished.stderr
