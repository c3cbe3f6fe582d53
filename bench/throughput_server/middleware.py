"""Tenant resolution with a bypass, to measure what resolution costs within one server."""

import os

from django.db import connection

from tenants.middleware import InstitutionMiddleware
from tenants.models import Institution

# Requests carrying this header skip host resolution (bench/throughput.py's "bypassed" path).
BYPASS_HEADER = "X-Bench-Fixed-Institution"
_BYPASS_META = "HTTP_" + BYPASS_HEADER.upper().replace("-", "_")


class FixedInstitutionMiddleware(InstitutionMiddleware):
    """InstitutionMiddleware, except that a request with BYPASS_HEADER is served by the institution whose
    schema is $BENCH_FIXED_SCHEMA, set directly: no host parsing, no directory, no copy, no locale."""

    def __init__(self, get_response=None) -> None:
        super().__init__(get_response)
        self._fixed: Institution | None = None

    def process_request(self, request):
        if _BYPASS_META not in request.META:
            return super().process_request(request)
        if self._fixed is None:  # once per process
            connection.set_schema_to_public()
            self._fixed = Institution.objects.get(schema_name=os.environ["BENCH_FIXED_SCHEMA"])
        request.tenant = self._fixed
        connection.set_tenant(self._fixed)
        return None
