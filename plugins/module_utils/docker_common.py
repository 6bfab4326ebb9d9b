# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every hubfleet.jupyterhub module shares to talk to Docker.

* ``docker_argument_spec()`` — the connection options (documented by the
  ``hubfleet.jupyterhub.docker`` doc fragment), with the usual ``DOCKER_*``
  environment fallbacks.
* ``connect(module)`` — a low-level ``docker.APIClient`` or a clean ``fail_json``.
* ``DOCKER_ERRORS`` / ``docker_error_message()`` — catch Docker failures once in
  ``main()`` and turn them into a readable message.
* ``option_differences()`` / ``label_differences()`` / ``format_differences()`` /
  ``make_diff()`` — compare what the user asked for with what exists.

The ``docker`` import is guarded so ``ansible-doc`` and sanity imports work on a
controller without the Docker SDK.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

DOCKER_IMPORT_ERROR = None
try:
    import docker
    import docker.errors
    import docker.tls
    from requests.exceptions import RequestException
except ImportError:
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

    class _DockerUnavailable(Exception):
        """Stands in for Docker's exceptions when the SDK is missing; never raised."""

    DOCKER_ERRORS = (_DockerUnavailable,)
else:
    HAS_DOCKER = True
    DOCKER_ERRORS = (docker.errors.DockerException, RequestException)

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 60
DEFAULT_API_VERSION = "auto"


def docker_argument_spec():
    """The connection options every module accepts; merge into its own argument_spec."""
    return dict(
        docker_host=dict(
            type="str", default=DEFAULT_DOCKER_HOST, aliases=["docker_url"],
            fallback=(env_fallback, ["DOCKER_HOST"]),
        ),
        tls=dict(type="bool", default=False, fallback=(env_fallback, ["DOCKER_TLS"])),
        validate_certs=dict(
            type="bool", default=False, aliases=["tls_verify"],
            fallback=(env_fallback, ["DOCKER_TLS_VERIFY"]),
        ),
        ca_path=dict(type="path", aliases=["ca_cert", "tls_ca_cert"]),
        client_cert=dict(type="path", aliases=["tls_client_cert", "cert_path"]),
        client_key=dict(type="path", aliases=["tls_client_key", "key_path"]),
        timeout=dict(type="int", default=DEFAULT_TIMEOUT, fallback=(env_fallback, ["DOCKER_TIMEOUT"])),
        api_version=dict(
            type="str", default=DEFAULT_API_VERSION, aliases=["docker_api_version"],
            fallback=(env_fallback, ["DOCKER_API_VERSION"]),
        ),
    )


def _cert_file(explicit, name):
    """An explicit TLS file, else ``$DOCKER_CERT_PATH/<name>`` when that file exists."""
    if explicit:
        return explicit
    cert_dir = os.environ.get("DOCKER_CERT_PATH")
    if cert_dir and os.path.isfile(os.path.join(cert_dir, name)):
        return os.path.join(cert_dir, name)
    return None


def tls_settings(params):
    """The TLS files and flags for ``params``; a dict of plain values (unit-testable).

    Returns ``None`` when TLS is off (neither ``tls`` nor ``validate_certs``).
    """
    if not (params.get("tls") or params.get("validate_certs")):
        return None
    return dict(
        ca_cert=_cert_file(params.get("ca_path"), "ca.pem"),
        client_cert=_cert_file(params.get("client_cert"), "cert.pem"),
        client_key=_cert_file(params.get("client_key"), "key.pem"),
        verify=bool(params.get("validate_certs")),
    )


def tls_problem(settings):
    """A message naming the TLS parameter that cannot work, or ``None``."""
    if settings is None:
        return None
    if bool(settings["client_cert"]) != bool(settings["client_key"]):
        return "client_cert and client_key must be given together (or both found in DOCKER_CERT_PATH)."
    if settings["verify"] and not settings["ca_cert"]:
        return "validate_certs needs ca_path (or ca.pem in DOCKER_CERT_PATH) to verify the daemon's certificate."
    for option, key in (("ca_path", "ca_cert"), ("client_cert", "client_cert"), ("client_key", "client_key")):
        if settings[key] and not os.path.isfile(settings[key]):
            return "%s: file %s does not exist." % (option, settings[key])
    return None


def connect(module):
    """A ``docker.APIClient`` for the module's connection options, or ``fail_json``.

    Fails with ``missing_required_lib('docker')`` when the SDK is missing, with a
    message naming the option when the TLS options cannot work, and with a readable
    message when the daemon does not answer.
    """
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)
    params = module.params
    settings = tls_settings(params)
    problem = tls_problem(settings)
    if problem:
        module.fail_json(msg=problem)
    tls_config = None
    if settings is not None:
        client_cert = (settings["client_cert"], settings["client_key"]) if settings["client_cert"] else None
        tls_config = docker.tls.TLSConfig(
            client_cert=client_cert,
            ca_cert=settings["ca_cert"] if settings["verify"] else None,
            verify=settings["verify"],
        )
    try:
        client = docker.APIClient(
            base_url=params["docker_host"],
            version=params["api_version"],
            timeout=params["timeout"],
            tls=tls_config,
        )
        client.ping()
    except DOCKER_ERRORS as exc:
        module.fail_json(
            msg="Cannot talk to the Docker daemon at %s (docker_host): %s"
            % (params["docker_host"], docker_error_message(exc)),
        )
    return client


def docker_error_message(exc):
    """One readable line for a Docker SDK or transport exception."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        if isinstance(explanation, bytes):
            explanation = explanation.decode("utf-8", "replace")
        status = getattr(exc, "status_code", None)
        return "%s (HTTP %s)" % (explanation, status) if status else str(explanation)
    return str(exc) or exc.__class__.__name__


def option_differences(desired, actual):
    """Options the user set that differ from the actual object.

    ``desired`` maps option names to wanted values; ``None`` means "not set, keep
    whatever exists". Returns ``{option: {"wanted": ..., "actual": ...}}``.
    """
    differences = {}
    for option in sorted(desired):
        wanted = desired[option]
        if wanted is None:
            continue
        have = actual.get(option)
        if isinstance(wanted, dict):
            have = have or {}
            if not all(have.get(key) == value for key, value in wanted.items()):
                differences[option] = {"wanted": wanted, "actual": have}
        elif wanted != have:
            differences[option] = {"wanted": wanted, "actual": have}
    return differences


def label_differences(wanted, actual):
    """Wanted labels missing or different on the object (extra labels are fine).

    Returns ``{"labels.<key>": {"wanted": value, "actual": value-or-None}}``.
    """
    actual = actual or {}
    return dict(
        ("labels.%s" % key, {"wanted": value, "actual": actual.get(key)})
        for key, value in sorted((wanted or {}).items())
        if actual.get(key) != value
    )


def format_differences(differences):
    """``option: wanted X, actual Y; ...`` for error messages."""
    return "; ".join(
        "%s: wanted %r, actual %r" % (option, change["wanted"], change["actual"])
        for option, change in sorted(differences.items())
    )


def make_diff(before, after, before_header=None, after_header=None):
    """Ansible's ``diff`` result: ``{"before": ..., "after": ...}`` with optional headers."""
    diff = {"before": before, "after": after}
    if before_header:
        diff["before_header"] = before_header
    if after_header:
        diff["after_header"] = after_header
    return diff


def stringify_options(options):
    """Driver options as Docker stores them: strings (booleans as ``true``/``false``)."""
    if options is None:
        return None
    return dict(
        (str(key), ("true" if value else "false") if isinstance(value, bool) else str(value))
        for key, value in options.items()
    )
