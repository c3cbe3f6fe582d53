#!/bin/sh
# The one entry point of the PeerLearn image: the first argument names the process to run.
#
#   web      gunicorn, WSGI (HTTP only), port 8000        (deploy/gunicorn.conf.py)
#   ws       daphne, ASGI (the /ws/ WebSockets), port 8001
#   worker   Celery worker
#   beat     Celery beat (exactly one in the whole deployment)
#   migrate  migrate the public schema, every institution and the provisioning template, then exit
#   manage   any manage.py command:  manage createsuperuser, manage check --deploy, ...
#
# Anything else is executed as given (e.g. `sh`).
set -eu

cd /app

case "${1:-web}" in
  web)
    if [ "$#" -gt 0 ]; then shift; fi
    exec gunicorn --config deploy/gunicorn.conf.py "$@" config.wsgi:application
    ;;
  ws)
    shift
    # --proxy-headers: the client address comes from the proxy's X-Forwarded-For.
    exec daphne --bind 0.0.0.0 --port 8001 --proxy-headers \
      --application-close-timeout 10 "$@" config.asgi:application
    ;;
  worker)
    shift
    exec celery --app config worker --loglevel "${CELERY_LOG_LEVEL:-info}" \
      --concurrency "${CELERY_CONCURRENCY:-2}" "$@"
    ;;
  beat)
    shift
    # The schedule file goes to /tmp: the root filesystem is read-only (an emptyDir / tmpfs there).
    exec celery --app config beat --loglevel "${CELERY_LOG_LEVEL:-info}" \
      --schedule /tmp/celerybeat-schedule "$@"
    ;;
  migrate)
    shift
    # The project's migrate_schemas (tenants/management/commands/): public schema, every
    # institution's schema, and the template new institutions are cloned from.
    exec python manage.py migrate_schemas --noinput "$@"
    ;;
  manage)
    shift
    exec python manage.py "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
