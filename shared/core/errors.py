"""The application's one error type: raised by services, shown to people as it is."""


class ApplicationError(Exception):
    """A failure a user can understand and act on (HTTP 400 unless `status` says otherwise)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        status: int = 400,
        fields: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.fields = fields or {}
