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


def _format_bytes(value):
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= size and value % size == 0:
            return "%d%s" % (value // size, unit)
    return "%d bytes" % value


# Exit codes of a process ended by a signal (128 + signal number).
_SIGNALS = {130: "SIGINT", 134: "SIGABRT", 137: "SIGKILL", 139: "SIGSEGV", 143: "SIGTERM"}


def stopped_reason(state, memory_limit=0, log_tail="", log_lines=10):
    """What the user is told about a server that stopped by itself.

    ``state`` is the ``State`` of a container inspect (``OOMKilled``, ``ExitCode``,
    ``Error``); ``memory_limit`` the server's limit in bytes (0: none); ``log_tail``
    the container's last output. Files saved on the user's volumes are never affected.
    """
    exit_code = state.get("ExitCode")
    if state.get("OOMKilled"):
        limit = " of %s" % _format_bytes(memory_limit) if memory_limit else ""
        reason = (
            "Your server ran out of memory: it used its whole limit%s and was stopped. "
            "Saved files are kept; unsaved changes and the state of running kernels are lost. "
            "Use less memory (or ask for a larger limit) and start it again." % limit
        )
    elif exit_code in _SIGNALS:
        reason = "Your server was stopped by %s (exit code %d). Saved files are kept." % (
            _SIGNALS[exit_code],
            exit_code,
        )
    elif exit_code:
        reason = "Your server stopped unexpectedly with exit code %s. Saved files are kept." % exit_code
    else:
        reason = "Your server stopped by itself. Saved files are kept."
    if state.get("Error"):
        reason += " Docker reported: %s." % state["Error"]
    lines = [line for line in (log_tail or "").splitlines() if line.strip()][-log_lines:]
    if lines:
        reason += "\nLast log lines:\n" + "\n".join(lines)
    return reason
