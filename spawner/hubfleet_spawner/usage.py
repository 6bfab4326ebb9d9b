"""Each user's storage against a per-user limit, from the usage report the operator's
playbooks/usage.yml writes (the collection's ``user_volumes`` module, ``size_limit``).

Docker's local volumes on overlay2 have no block quota, so the limit is not enforced; it is
shown. Measuring is the report's job, done from a timer or by hand: the engine's disk usage
report walks every volume, far too slow for a login. A spawn, the hub's pages and the server
only read the report, a small JSON file read again only when it changes::

    {"measured": "2026-12-04T03:00:00Z", "limit": 5368709120,
     "users": {"alice": 6442450944, "bob": 1048576}}

``DockerSpawner.usage_report`` names the file; ``StorageNotice`` (a callable of
``c.JupyterHub.template_vars``) puts the notice on the hub's pages for users over the limit.
"""

import json
import os


def format_size(size):
    """Bytes as people read them: 1.5 GiB, 300 MiB, 12 KiB, 512 bytes."""
    for unit, scale in (("TiB", 1024 ** 4), ("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if size >= scale:
            return ("%.1f %s" % (size / scale, unit)).replace(".0 ", " ")
    return "%d bytes" % size


def notice_text(size, limit, measured=""):
    """What a user over ``limit`` reads (on the hub's pages, at spawn, in the server)."""
    when = " (measured %s)" % measured if measured else ""
    return ("Your files use %s, more than your limit of %s%s. Please delete what you no longer need: "
            "the administrators have been told." % (format_size(size), format_size(limit), when))


class UsageReport:
    """The usage report at ``path``, read again when its modification time changes.

    A missing or unreadable report means nothing is known: nobody gets a notice."""

    _shared = {}

    def __init__(self, path, log=None):
        self.path = path
        self.log = log
        self._stamp = None
        self._report = {}

    @classmethod
    def shared(cls, path, log=None):
        """One reader per report file in this process (every spawner and page shares it)."""
        if path not in cls._shared:
            cls._shared[path] = cls(path, log)
        return cls._shared[path]

    def _load(self):
        try:
            stat = os.stat(self.path)
        except OSError:
            self._stamp, self._report = None, {}
            return self._report
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                with open(self.path, encoding="utf-8") as report:
                    loaded = json.load(report)
                if not isinstance(loaded, dict) or not isinstance(loaded.get("users", {}), dict):
                    raise ValueError("not a usage report (an object with 'users')")
            except (OSError, ValueError) as error:
                if self.log is not None:
                    self.log.warning("Ignoring the usage report %s: %s", self.path, error)
                loaded = {}
            self._stamp, self._report = stamp, loaded
        return self._report

    def size_of(self, username):
        """Bytes the user's volumes held when measured, or None when not in the report."""
        size = self._load().get("users", {}).get(username)
        return size if isinstance(size, int) and not isinstance(size, bool) else None

    def notice(self, username, limit):
        """The notice for ``username`` when over ``limit`` bytes, else ""."""
        if not limit:
            return ""
        size = self.size_of(username)
        if size is None or size <= limit:
            return ""
        return notice_text(size, limit, self._load().get("measured", ""))

    def over_limit(self, limit):
        """``[(username, bytes)]`` of the users over ``limit``, largest first."""
        users = self._load().get("users", {})
        over = [(name, size) for name, size in users.items()
                if isinstance(size, int) and not isinstance(size, bool) and limit and size > limit]
        return sorted(over, key=lambda entry: (-entry[1], entry[0]))


def admin_notice_text(over, limit, shown=5):
    """What an admin reads when users are over ``limit``: how many, the largest few."""
    names = ", ".join("%s (%s)" % (name, format_size(size)) for name, size in over[:shown])
    more = " and %d more" % (len(over) - shown) if len(over) > shown else ""
    return "%d user%s over the storage limit of %s: %s%s." % (
        len(over), "" if len(over) == 1 else "s", format_size(limit), names, more)


class StorageNotice:
    """``c.JupyterHub.template_vars["storage_notice"]``: called with the page's user (None
    on the login page), gives the notice for a user over the limit and, for an admin, who
    is over it; else ""."""

    def __init__(self, path, limit):
        from jupyterhub.traitlets import ByteSpecification  # pylint: disable=import-outside-toplevel

        self.report = UsageReport.shared(path)
        self.limit = ByteSpecification().validate(None, limit) if isinstance(limit, str) else limit

    def __call__(self, user):
        if user is None:
            return ""
        notices = [self.report.notice(user.name, self.limit)]
        if getattr(user, "admin", False):
            over = self.report.over_limit(self.limit)
            if over:
                notices.append(admin_notice_text(over, self.limit))
        return " ".join(notice for notice in notices if notice)
