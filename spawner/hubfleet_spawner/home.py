"""The server user's home directory in their image: the ``{home}`` field of mount targets.

``{"{prefix}-home-{username}": "{home}"}`` keeps the whole home (``pip install --user``,
JupyterLab settings, dotfiles) whatever the image calls it: ``/home/jovyan`` for
docker-stacks and Hubfleet's images, ``/home/app`` for an image whose user lives there.
``{home}`` is the ``HOME`` the server process gets:

1. for a root-start image, ``/home/$NB_USER`` (docker-stacks' start.sh makes that the
   home of the user it switches to);
2. else ``HOME`` in the spawner's environment, else in the image's;
3. else what Docker gives the container's user: the home of its entry in the image's own
   /etc/passwd, read once per image and user by a short-lived container of the image
   (no network, no capability), and remembered.

Standard library only at import, as ownership.py.
"""

import posixpath

from .naming import fields_of
from .ownership import env_value

# (image id, user) -> home; images are immutable, so an entry never goes stale.
_LOOKED_UP = {}

# Prints the HOME Docker set from the image's /etc/passwd for the container's user.
LOOKUP_SCRIPT = 'printf "%s" "$HOME"'


class HomeError(ValueError):
    """The image gives the server's user no usable home directory."""


def uses_home(templates):
    """Whether any of these mount targets uses the ``{home}`` field."""
    return any("home" in fields_of(template) for template in templates)


def known_home(root_start=False, environment=(), image_environment=()):
    """The home that configuration and image metadata decide, or None when only the
    image's /etc/passwd can tell."""
    if root_start:
        user = env_value(environment, "NB_USER") or env_value(image_environment, "NB_USER") or "jovyan"
        return check_home(posixpath.join("/home", user), "NB_USER=%s" % user)
    home = env_value(environment, "HOME") or env_value(image_environment, "HOME")
    return check_home(home, "HOME") if home else None


def check_home(home, source):
    """``home`` if it can hold a user's files: absolute, normalised, not ``/``."""
    if not home.startswith("/") or posixpath.normpath(home) != home or home == "/" or "\x00" in home:
        raise HomeError(
            "The server's home directory %r (from %s) cannot hold a volume: it must be an absolute "
            "path other than /. Mount the volume at an explicit path instead of {home}." % (home, source)
        )
    return home


def remembered(image_id, user):
    return _LOOKED_UP.get((image_id, str(user)))


async def look_up_home(api, image_id, user, labels, host_config):
    """The home Docker gives ``user`` in image ``image_id`` (its /etc/passwd entry).

    Runs ``LOOKUP_SCRIPT`` in a container of the image as that user, with
    ``host_config`` (create_host_config keywords: no network, no capability) and
    ``labels``; removes it; remembers the answer. HomeError when the user has none.
    """
    import docker.errors

    found = remembered(image_id, user)
    if found:
        return found
    container = await api.call(
        "create_container",
        image_id,
        entrypoint=["/bin/sh", "-c", LOOKUP_SCRIPT],
        command=[],
        user=str(user) if user is not None else "",
        labels=labels,
        network_disabled=True,
        host_config=api.client.create_host_config(**host_config),
    )
    try:
        try:
            await api.call("start", container["Id"])
        except docker.errors.APIError as e:
            # runc refuses a user name missing from the image's /etc/passwd.
            raise HomeError(
                "The server's user %r has no home in the image: %s"
                % (user, e.explanation or e)
            ) from None
        result = await api.call("wait", container["Id"], timeout=60)
        output = (await api.call("logs", container["Id"], stdout=True, stderr=False)).decode("utf-8", "replace")
        if result.get("StatusCode"):
            raise HomeError("Could not read the home of user %r from the image (exit status %s)."
                            % (user, result.get("StatusCode")))
    finally:
        try:
            await api.call("remove_container", container["Id"], force=True)
        except docker.errors.NotFound:
            pass
    home = check_home(output.strip(), "the image's /etc/passwd entry of user %r" % (user,))
    _LOOKED_UP[(image_id, str(user))] = home
    return home
