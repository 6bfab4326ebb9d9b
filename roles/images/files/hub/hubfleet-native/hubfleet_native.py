"""NativeAuthenticator as the Hubfleet hub runs it (authenticator_class "hubfleet-native").

NativeAuthenticator 1.3.0, its newest release, still times each login with the login
handler's ``statsd``, which JupyterHub 6 removed: without a stand-in every login fails with
AttributeError. Importing this module gives its login handler a no-op one, where JupyterHub
has none. Everything else is NativeAuthenticator's own; ``c.NativeAuthenticator.*``
settings apply (traitlets gives a subclass its parent's configuration).
"""

from nativeauthenticator import NativeAuthenticator as _NativeAuthenticator
from nativeauthenticator import handlers as _handlers


class _NoStatsd:
    """Takes the timer and counter calls of a statsd client and does nothing."""

    def timer(self, _name):
        return self

    def start(self):
        return self

    def stop(self, send=True):  # pylint: disable=unused-argument
        pass

    def incr(self, *args, **kwargs):
        pass


if not hasattr(_handlers.LoginHandler, "statsd"):
    _handlers.LoginHandler.statsd = _NoStatsd()


class NativeAuthenticator(_NativeAuthenticator):  # pylint: disable=too-few-public-methods,abstract-method
    """NativeAuthenticator, loaded with the statsd stand-in above."""
