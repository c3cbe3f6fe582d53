"""ASGI entry point: HTTP and WebSockets in one application."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.core import checks  # noqa: E402
from django.core.management.base import SystemCheckError  # noqa: E402

# Like `manage.py runserver`: refuse to serve with a serious configuration error (e.g. the payment
# sandbox in production, billing.E001).
_serious = [message for message in checks.run_checks() if message.is_serious()]
if _serious:
    raise SystemCheckError("\n".join(str(message) for message in _serious))
if settings.ASGI_GC_THRESHOLD:
    gc.set_threshold(*settings.ASGI_GC_THRESHOLD)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402
from tenants.websocket import websocket_stack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_stack(URLRouter(websocket_urlpatterns)),
    }
)
