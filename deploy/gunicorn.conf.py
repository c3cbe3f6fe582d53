"""gunicorn settings of the `web` process (HTTP through WSGI, config/wsgi.py).

Sync workers: every request holds a worker for its duration, so the proxy in front (nginx, or the
ingress controller) buffers slow clients' requests and responses. WebSockets never reach gunicorn:
the proxy sends /ws/ to the `ws` process (daphne). Figures and the choice: docs/deploy.md.
"""

import os

# Inside a container or a pod; only the proxy can reach the port.
bind = "0.0.0.0:8000"
# Two processes per core is a reasonable start; WEB_CONCURRENCY sets it per deployment.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
# A request still running after this many seconds has its worker restarted (the proxy waits 60 s).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM (a rollout), requests in flight get this long to finish.
graceful_timeout = 25
keepalive = 5
# Recycle workers now and then, so a slow leak cannot grow for ever. A new worker imports the whole
# application (about a second of CPU) while the others carry its share: at 5,000 requests a busy
# worker was replaced every 15-20 s, which cost throughput and showed in the p99 (docs/performance.md).
max_requests = 50_000
max_requests_jitter = 5_000
# The heartbeat file lives in memory: the root filesystem is read-only and /tmp may be disk.
worker_tmp_dir = "/dev/shm"  # noqa: S108 (gunicorn's heartbeat file, not data)
# X-Forwarded-* come from the proxy, the only client that can reach this port.
forwarded_allow_ips = "*"
# Django logs one line per request (shared.core.middleware.RequestIdMiddleware): no access log here.
accesslog = None
errorlog = "-"
