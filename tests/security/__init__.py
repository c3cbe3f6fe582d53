"""Hostile input: API fuzzing against the OpenAPI schema, hostile uploads, hostile WebSocket frames."""
