"""`make run`'s own path: the embedded Postgres (pgserver) and Redis migrate and seed the demo.

CI runs the suite against system services; this test keeps the embedded path honest (the
embedded Postgres, for one, ships no contrib extensions).
"""

import logging
import subprocess
import sys
from pathlib import Path

from scripts.services import embedded_services

REPO_ROOT = Path(__file__).resolve().parent.parent


def manage(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_embedded_services_migrate_and_seed_the_demo(tmp_path, monkeypatch):
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    with embedded_services(tmp_path / "data", log=lambda line: None) as urls:
        assert set(urls) == {"DATABASE_URL", "REDIS_URL"}
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "config.settings.dev",
            "MEDIA_ROOT": str(tmp_path / "media"),
            **urls,
        }
        migrated = manage(env, "migrate_schemas", "--noinput", "-v", "0")
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        seeded = manage(env, "seed_demo")
        assert seeded.returncode == 0, seeded.stderr[-3000:]
        again = manage(env, "seed_demo")  # idempotent
        assert again.returncode == 0, again.stderr[-3000:]
    # pgserver logs from an exit hook, after pytest has closed the streams it captured.
    logging.getLogger("pgserver").setLevel(logging.CRITICAL)
