"""Spawn failures the user sees: a readable message on the spawn page, no traceback."""

try:
    from jupyterhub.spawner import SpawnException
except ImportError:  # JupyterHub 5 has no SpawnException yet
    from tornado import web

    class SpawnException(web.HTTPError):
        def __init__(self, message, *, reason, log_message="", message_html="", status_code=400):
            super().__init__(status_code, "%s", log_message or message)
            self.message = message
            self.reason = reason


class SpawnError(SpawnException):
    """A spawn that cannot succeed, said in words the user and the operator understand.

    ``jupyterhub_message`` is what JupyterHub shows on the spawn page ("Spawn failed:
    <message>"); the HTTP status is 500 unless the request itself was wrong (400).
    """

    def __init__(self, message, reason="error", status_code=500):
        super().__init__(message, reason=reason, status_code=status_code)
        self.jupyterhub_message = message

    def __str__(self):
        return self.jupyterhub_message
