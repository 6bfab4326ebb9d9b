# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The label scheme on every Docker object Hubfleet manages: one implementation.

Lookups and clean-up go by these labels, never by parsing names. Shared with the
Ansible collection through the symlink ``plugins/module_utils/labels.py``; standard
library only, Python 3.8 syntax.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

LABEL_PREFIX = "hubfleet."
LABEL_HUB = "hubfleet.hub"
LABEL_USER = "hubfleet.user"
LABEL_SERVER = "hubfleet.server"
LABEL_KIND = "hubfleet.kind"
# On a user-server container: the host's GPU device ids it was given, comma-separated.
LABEL_GPUS = "hubfleet.gpus"
LABEL_GROUP = "hubfleet.group"
# On a user-server container whose stop signal is not SIGTERM (the image's STOPSIGNAL or
# extra_create_kwargs' stop_signal): that signal, so a stop needs no inspection first.
LABEL_STOP_SIGNAL = "hubfleet.stop-signal"

KIND_USER_SERVER = "user-server"
KIND_USER_VOLUME = "user-volume"
KIND_GROUP_VOLUME = "group-volume"
KIND_VOLUME_PREP = "volume-prep"
KIND_HUB = "hub"
KIND_HUB_DATA = "hub-data"
KIND_NETWORK = "network"
KIND_SECRET = "secret"

DEFAULT_HUB = "jupyterhub"


def object_labels(hub, kind, user=None, server=None, extra=None):
    """Labels for one managed object; ``server`` is "" for a user's default server."""
    labels = {LABEL_HUB: hub, LABEL_KIND: kind}
    if user is not None:
        labels[LABEL_USER] = user
        labels[LABEL_SERVER] = server or ""
    if extra:
        labels.update(extra)
    return labels


def label_filters(hub=None, kind=None, user=None, server=None):
    """Docker API ``label`` filters selecting managed objects.

    Docker cannot filter on an empty label value, so the default server ("")
    filters on the key alone; use ``matches`` on the results to be exact.
    """
    filters = []
    for key, value in ((LABEL_HUB, hub), (LABEL_KIND, kind), (LABEL_USER, user), (LABEL_SERVER, server)):
        if value is None:
            continue
        filters.append("%s=%s" % (key, value) if value != "" else key)
    return filters


def matches(labels, hub=None, kind=None, user=None, server=None):
    """Whether an object's ``labels`` carry every given value exactly."""
    labels = labels or {}
    for key, value in ((LABEL_HUB, hub), (LABEL_KIND, kind), (LABEL_USER, user), (LABEL_SERVER, server)):
        if value is not None and labels.get(key) != value:
            return False
    return True
