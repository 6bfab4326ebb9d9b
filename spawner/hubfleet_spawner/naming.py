# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names of the Docker objects Hubfleet creates for users: one implementation.

The spawner imports this module directly; the Ansible collection reaches the same
file through the symlink ``plugins/module_utils/naming.py``. Because Ansible runs it
on target hosts, it uses only the standard library and Python 3.8 syntax.

Promises:

* ``escape`` is injective and its output is a valid part of a Docker object name
  and of a DNS label: only lowercase letters, digits, ``_`` (which always starts a
  two-digit escape) and, for over-long names, one ``-`` before a hash.
* Names rendered from templates are checked; a name Docker would refuse raises
  ``UnsafeNameError`` with a message fit for the user's spawn page.
* A host path rendered from a template never leaves the directory the template
  names before its first field: every field used in it must be one plain path
  component (no ``/``, ``.``, ``..``, NUL, control or non-ASCII characters).
"""

from __future__ import absolute_import, division, print_function

import hashlib
import posixpath
import re
import string

__metaclass__ = type

SAFE_CHARS = frozenset(string.ascii_lowercase + string.digits)
ESCAPE_CHAR = "_"
# Escaped names are capped so that prefix + user + server stays a usable DNS name.
MAX_ESCAPED_LENGTH = 48
# Container names double as DNS names on user-defined networks: one label.
MAX_CONTAINER_NAME_LENGTH = 63
MAX_OBJECT_NAME_LENGTH = 255
MAX_PATH_COMPONENT_BYTES = 255

DEFAULT_PREFIX = "jupyter"
DEFAULT_NAME_TEMPLATE = "{prefix}-{username}"
DEFAULT_NAMED_SERVER_NAME_TEMPLATE = "{prefix}-{username}--{servername}"
DEFAULT_USER_VOLUME_TEMPLATE = "{prefix}-user-{username}"

TEMPLATE_FIELDS = (
    "username",
    "safe_username",
    "raw_username",
    "servername",
    "safe_servername",
    "raw_servername",
    "prefix",
    "imagename",
    # Mount targets only: the server user's home in the image (home.py), known per spawn.
    "home",
    # group_volumes only: one of the user's JupyterHub groups, escaped as user names are.
    "groupname",
)

_DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


class UnsafeNameError(ValueError):
    """A user or server name cannot be turned into a safe Docker name or host path."""


def _short_hash(value):
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:10]


def _shorten(name, max_length, original):
    """Cut ``name`` to ``max_length`` keeping it unique by a hash of ``original``."""
    if len(name) <= max_length:
        return name
    return name[: max_length - 11] + "-" + _short_hash(original)


def _escape_bytes(value, safe_chars, escape_format):
    """Keep ``safe_chars``; write each UTF-8 byte of any other character with ``escape_format``."""
    if not isinstance(value, str):
        raise TypeError("escape() takes a str, not %s" % type(value).__name__)
    parts = []
    for char in value:
        if char in safe_chars:
            parts.append(char)
        else:
            parts.extend(escape_format % byte for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(parts)


def escape(value, max_length=MAX_ESCAPED_LENGTH):
    """Escape ``value`` for Docker object names and DNS labels.

    Lowercase letters and digits stay; every other character becomes ``_xx`` per
    UTF-8 byte (so ``Alice`` and ``alice`` differ). Results longer than
    ``max_length`` are cut and end in ``-`` plus a hash of the whole value.
    """
    return _shorten(_escape_bytes(value, SAFE_CHARS, ESCAPE_CHAR + "%02x"), max_length, value)


def escape_dockerspawner(value):
    """dockerspawner's ``escape = "escape"`` (its default): lowercase letters and digits
    stay, everything else becomes ``-xx`` per UTF-8 byte. For keeping the container and
    volume names of a hub that ran dockerspawner; not shortened, as there."""
    return _escape_bytes(value, SAFE_CHARS, "-%02x")


_LEGACY_SAFE_CHARS = frozenset(string.ascii_letters + string.digits + "-")


def escape_dockerspawner_legacy(value):
    """dockerspawner's ``escape = "legacy"``: letters, digits and ``-`` stay (case kept),
    everything else becomes ``_XX`` per UTF-8 byte. Two names differing only in a ``-``
    versus ``_2D`` collide, as they did there: use it only to keep old names."""
    return _escape_bytes(value, _LEGACY_SAFE_CHARS, "_%02X")


# The names ``DockerSpawner.escape`` accepts besides a callable.
ESCAPE_SCHEMES = {
    "hubfleet": escape,
    "escape": escape_dockerspawner,
    "legacy": escape_dockerspawner_legacy,
}


def image_short_name(image):
    """The repository's last path component of an image reference, without tag or digest."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def template_names(username, servername="", prefix=DEFAULT_PREFIX, imagename="", escape=escape):
    """The fields every Hubfleet name template may use.

    ``username``/``servername`` are escaped (``safe_*`` are aliases kept for
    dockerspawner configs); ``raw_*`` are the names exactly as JupyterHub has them.
    """
    if not username:
        raise UnsafeNameError("A user name is required to name Docker objects.")
    safe_user = escape(username)
    safe_server = escape(servername) if servername else ""
    return {
        "username": safe_user,
        "safe_username": safe_user,
        "raw_username": username,
        "servername": safe_server,
        "safe_servername": safe_server,
        "raw_servername": servername or "",
        "prefix": prefix,
        "imagename": escape(image_short_name(imagename)) if imagename else "",
    }


def fields_of(template):
    """The fields ``template`` uses; an unknown one raises ``UnsafeNameError``."""
    fields = []
    for parsed in string.Formatter().parse(template):
        field = parsed[1]
        if field is None:
            continue
        name = re.split(r"[.\[]", field, 1)[0]
        if name not in TEMPLATE_FIELDS:
            raise UnsafeNameError(
                "Template %r uses the unknown field {%s}; known fields: %s"
                % (template, field, ", ".join(TEMPLATE_FIELDS))
            )
        fields.append(name)
    return fields


def render(template, names):
    """Fill ``template`` with ``names``; unknown fields raise ``UnsafeNameError``."""
    fields_of(template)
    try:
        return template.format(**names)
    except KeyError as e:
        raise UnsafeNameError(
            "Template %r uses {%s}, which is not known here ({home} only in mount targets, "
            "{groupname} only in group_volumes)." % (template, e.args[0])
        ) from None


def docker_object_name(template, names, kind="volume", max_length=MAX_OBJECT_NAME_LENGTH):
    """Render a Docker object name and check that Docker will accept it."""
    name = render(template, names)
    if len(name) > max_length:
        name = _shorten(name, max_length, name)
    if not _DOCKER_NAME.match(name):
        raise UnsafeNameError(
            "The %s name %r (from template %r for user %r) is not a valid Docker name: "
            "it must start with a letter or digit and contain only letters, digits, '_', '.' and '-'."
            % (kind, name, template, names.get("raw_username"))
        )
    return name


def volume_name(template, names):
    """The Docker volume name for ``template``, validated."""
    return docker_object_name(template, names, kind="volume")


def container_name(template, names):
    """The container (or swarm service) name for ``template``: valid, one DNS label long."""
    return docker_object_name(template, names, kind="container", max_length=MAX_CONTAINER_NAME_LENGTH)


def _check_path_component(field, value):
    problem = None
    if value in ("", ".", ".."):
        problem = "it would be the path component %r" % value
    elif "/" in value:
        problem = "it contains '/'"
    elif any(ord(c) < 32 or ord(c) == 127 for c in value):
        problem = "it contains a NUL or control character"
    elif any(ord(c) > 126 for c in value):
        problem = "it contains non-ASCII characters"
    elif len(value.encode("utf-8")) > MAX_PATH_COMPONENT_BYTES:
        problem = "it is longer than %d bytes" % MAX_PATH_COMPONENT_BYTES
    if problem:
        raise UnsafeNameError(
            "Cannot use {%s} = %r in a host path: %s. Use {username} (escaped) in host path "
            "templates, or ask an administrator to rename the account." % (field, value, problem)
        )


def host_path(template, names):
    """Render an absolute host path template, refusing anything that leaves its base.

    The base is the directory part of the template before its first field, so
    ``/srv/homes/{raw_username}/work`` stays below ``/srv/homes``.
    """
    if not template.startswith("/"):
        raise UnsafeNameError("Host path template %r must be an absolute path." % template)
    for field in fields_of(template):
        _check_path_component(field, str(names.get(field, "")))
    path = render(template, names)
    base = posixpath.dirname(template.split("{", 1)[0]) or "/"
    normalised = posixpath.normpath(path)
    if "\x00" in path or normalised != path.rstrip("/") and path != "/":
        raise UnsafeNameError("Host path %r (from template %r) is not a plain absolute path." % (path, template))
    if normalised != base and not normalised.startswith(base.rstrip("/") + "/"):
        raise UnsafeNameError("Host path %r leaves its base directory %r." % (path, base))
    return path
