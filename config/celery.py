"""The Celery application: tasks run inside the schema of the institution that sent them."""

import os

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = CeleryApp("peerlearn")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
