"""The Celery application: tasks run inside the schema of the institution that sent them."""

import os

from celery import uuid
from celery.signals import beat_init
from tenant_schemas_celery.app import CeleryApp
from tenant_schemas_celery.task import headers_with_schema

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")


class PeerLearnCelery(CeleryApp):
    """Sending a task never fails because the broker is down: the task waits in Postgres (the
    outbox, shared/core/outbox.py) and is sent when the broker is back."""

    # Beat turns this off: a periodic tick the broker refused is replaced by the next one.
    outbox_enabled = True

    def send_task(self, name, args=None, kwargs=None, **options):
        if not options.pop("outbox", self.outbox_enabled):
            return super().send_task(name, args=args, kwargs=kwargs, **options)
        from shared.core import outbox

        if outbox.broker_state.known_down():
            error = "the broker refused a message moments ago"
        else:
            try:
                return super().send_task(name, args=args, kwargs=kwargs, **options)
            except outbox.BROKER_ERRORS as refused:
                outbox.broker_state.failed()
                error = str(refused)
        task_id = options.get("task_id") or uuid()
        options["headers"] = headers_with_schema(options.get("headers") or {})
        outbox.outbox_store(
            name=name, args=args, kwargs=kwargs, options=options, task_id=task_id, error=error
        )
        return self.AsyncResult(task_id)


app = PeerLearnCelery("peerlearn")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@beat_init.connect
def _beat_sends_directly(sender=None, **kwargs) -> None:
    app.outbox_enabled = False
