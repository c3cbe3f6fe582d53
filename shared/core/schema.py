"""The API's OpenAPI generator: every operation also documents the error responses it can give.

drf-spectacular documents the success responses a view declares. The errors come from the one
exception handler (shared.core.api), always in the same body, and which of them an operation can
give follows from what it is: a request body or query can be invalid (400), an operation behind
sign-in can be refused (401, 403), a path with ids can name nothing (404), a body can be too large
(413, shared/core/body_limits.py) or of a type the operation does not read (415), a throttled view
can say "slow down" (429). Operations whose services
can refuse for the state of things (409) say so in their own `extend_schema`.
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions, serializers

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

ERROR_DESCRIPTIONS = {
    "400": "Not valid: `validation_error` (see `fields`), `parse_error`, or a rule the request breaks.",
    "401": "Not signed in: send `Authorization: Token <token>` or a session cookie.",
    "403": "Signed in, but not allowed to do this (role, ownership, or CSRF for a browser session).",
    "404": "Nothing with this id here, or nothing you may see.",
    "409": "Refused in the current state of things: a slot just taken, a step not allowed now, a duplicate.",
    "413": "Too large: the file or the body is over the limit.",
    "415": "The body's media type is not one this operation reads.",
    "429": "Too many requests: slow down (`Retry-After` says when to try again).",
}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, for programs: `validation_error`, `not_found`, …")
    message = serializers.CharField(help_text="One sentence a person can read.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per field; empty when the error is not about a field.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


def error_response(description: str) -> OpenApiResponse:
    """For `extend_schema(responses={409: error_response("…")})` on operations that can refuse."""
    return OpenApiResponse(response=ErrorSerializer, description=description)


class ApiAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        body = {"application/json": {"schema": self.resolve_serializer(ErrorSerializer, "response").ref}}
        responses = operation.setdefault("responses", {})
        for code in self._error_codes(operation):
            declared = responses.get(code)
            if declared is None or "content" not in declared:
                description = (declared or {}).get("description") or ERROR_DESCRIPTIONS[code]
                responses[code] = {"content": body, "description": description}
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_codes(self, operation: dict) -> list[str]:
        codes = []
        has_query = any(parameter.get("in") == "query" for parameter in operation.get("parameters", []))
        if self.method in UNSAFE_METHODS or has_query:
            codes.append("400")
        if not all(isinstance(p, permissions.AllowAny) for p in self.view.get_permissions()):
            codes += ["401", "403"]
        if "{" in self.path:
            codes.append("404")
        if "requestBody" in operation:
            codes += ["413", "415"]
        if self.view.get_throttles():
            codes.append("429")
        return codes
