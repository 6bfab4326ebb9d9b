"""Server profiles: what a user may choose to start, and the resources that come with it.

A profile is an image with its own limits (and, on a fleet, its own placement), offered
only to the members of its ``groups`` when it names any. ``DockerSpawner.profiles``
holds them as plain dicts (the shape an operator writes in an inventory); this module
turns them into ``Profile`` values, filters them for a user, reads the user's choice and
renders the spawn form. It knows nothing of Docker or of the hub: the spawner passes the
user's group names in.

``group_limits`` raise limits for the members of a group (``graders`` get 8G): for
each limit, a member gets the largest of the profile's value and their groups' values.
"""

import dataclasses
import html

from traitlets import TraitError

#: Limits a profile or a group limit may set; the spawner's traits of the same names.
LIMIT_KEYS = ("mem_limit", "cpu_limit", "mem_guarantee", "cpu_guarantee")
PROFILE_KEYS = ("name", "description", "image", "groups", "default", "constraints", "gpus") + LIMIT_KEYS


class ProfileRefused(Exception):
    """The user asked for a profile they may not start (the spawn answers HTTP 400)."""


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    image: str
    description: str = ""
    groups: tuple = ()
    default: bool = False
    constraints: tuple = ()
    gpus: object = None  # GPUs per server; None: the spawner's `gpus`
    limits: tuple = ()  # ((limit name, value), ...) in LIMIT_KEYS order, only those set

    @property
    def label(self):
        return "%s: %s" % (self.name, self.description) if self.description else self.name

    def open_to(self, user_groups):
        return not self.groups or bool(set(self.groups) & set(user_groups))


def parse_profiles(items, parse_limit):
    """Profiles from the configured dicts; TraitError naming the profile and key if one is bad.

    ``parse_limit(name, value)`` turns a limit as written ("2G", "0.5") into the spawner's
    number (and raises TraitError for a bad one).
    """
    profiles = []
    for index, item in enumerate(items):
        where = "profiles[%d]" % index
        if not isinstance(item, dict):
            raise TraitError("%s must be a dict, not %r." % (where, item))
        unknown = sorted(set(item) - set(PROFILE_KEYS))
        if unknown:
            raise TraitError("%s: unknown key(s) %s; a profile may set %s." % (where, ", ".join(unknown), ", ".join(PROFILE_KEYS)))
        for key in ("name", "image"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise TraitError("%s.%s must be a non-empty string." % (where, key))
        where = "profiles[%d] (%s)" % (index, item["name"])
        groups = item.get("groups") or []
        constraints = item.get("constraints") or []
        for key, value in (("groups", groups), ("constraints", constraints)):
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
                raise TraitError("%s.%s must be a list of non-empty strings." % (where, key))
        gpus = item.get("gpus")
        if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0):
            raise TraitError("%s.gpus must be a whole number of GPUs (0 or more), not %r." % (where, gpus))
        if not isinstance(item.get("default", False), bool):
            raise TraitError("%s.default must be true or false." % where)
        limits = tuple(
            (key, parse_limit("%s.%s" % (where, key), item[key])) for key in LIMIT_KEYS if item.get(key) is not None
        )
        profiles.append(
            Profile(
                name=item["name"].strip(),
                image=item["image"],
                description=item.get("description") or "",
                groups=tuple(groups),
                default=item.get("default", False),
                constraints=tuple(constraints),
                gpus=gpus,
                limits=limits,
            )
        )
    names = [p.name for p in profiles]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TraitError("profiles: the name(s) %s are used more than once." % ", ".join(twice))
    if sum(p.default for p in profiles) > 1:
        raise TraitError(
            "profiles: more than one profile has default: true (%s)." % ", ".join(p.name for p in profiles if p.default)
        )
    return profiles


def parse_group_limits(overrides, parse_limit):
    """{group: {limit: number}} from the configured dict; TraitError naming a bad entry."""
    parsed = {}
    for group, limits in overrides.items():
        if not isinstance(limits, dict) or not limits:
            raise TraitError("group_limits[%r] must be a non-empty dict of limits." % group)
        unknown = sorted(set(limits) - set(LIMIT_KEYS))
        if unknown:
            raise TraitError(
                "group_limits[%r]: unknown key(s) %s; it may set %s." % (group, ", ".join(unknown), ", ".join(LIMIT_KEYS))
            )
        parsed[group] = {key: parse_limit("group_limits[%r].%s" % (group, key), value) for key, value in limits.items()}
    return parsed


def visible_profiles(profiles, user_groups):
    """The profiles this user may start, in configured order."""
    return [p for p in profiles if p.open_to(user_groups)]


def requested_name(user_options):
    """The profile name the user asked for (form or API), or None."""
    requested = (user_options or {}).get("profile")
    if isinstance(requested, list):  # from the form: every field is a list
        requested = requested[0] if requested else None
    return requested or None


def choose_profile(profiles, user_options, user_groups):
    """The profile this spawn runs: the user's choice, else the default one they may start.

    Raises ProfileRefused for a name that does not exist or that is not open to the user
    (the same answer for both, so the names of other groups' profiles do not leak), and
    when the user asks for an image directly, which profiles replace.
    """
    if (user_options or {}).get("image"):
        raise ProfileRefused("This hub offers profiles, not images: choose a profile.")
    open_ones = visible_profiles(profiles, user_groups)
    requested = requested_name(user_options)
    if requested is None:
        if not open_ones:
            raise ProfileRefused("No profile is open to you on this hub. Ask an administrator to add you to a group.")
        return next((p for p in open_ones if p.default), open_ones[0])
    for profile in open_ones:
        if requested == profile.name:
            return profile
    raise ProfileRefused(
        "Profile %r is not one you may start. Choose one of: %s."
        % (str(requested)[:200], ", ".join(p.name for p in open_ones) or "(none)")
    )


def profile_limits(profile, base_limits, overrides, user_groups):
    """The limits of a spawn: the spawner's, then the profile's (if any), then the raises of
    the user's groups."""
    limits = dict(base_limits)
    if profile is not None:
        limits.update(profile.limits)
    for group in user_groups:
        for key, value in overrides.get(group, {}).items():
            if limits.get(key) is None or value > limits[key]:
                limits[key] = value
    return limits


def _describe_limits(profile):
    shown = dict(profile.limits)
    parts = []
    if shown.get("mem_limit"):
        parts.append("%s memory" % _bytes(shown["mem_limit"]))
    if shown.get("cpu_limit"):
        parts.append("%g CPU" % shown["cpu_limit"])
    if profile.gpus:
        parts.append("%d GPU" % profile.gpus)
    return ", ".join(parts)


def _bytes(number):
    for unit, size in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if number >= size and number % size == 0:
            return "%d%s" % (number // size, unit)
    return "%d bytes" % number


def options_form(profiles):
    """The spawn form's HTML: one radio button per profile, the default one checked."""
    if not profiles:
        return ""
    checked = next((p for p in profiles if p.default), profiles[0])
    rows = []
    for index, profile in enumerate(profiles):
        field = "profile-%d" % index
        details = _describe_limits(profile)
        rows.append(
            '<div class="form-check">\n'
            '  <input class="form-check-input" type="radio" name="profile" id="%s" value="%s"%s>\n'
            '  <label class="form-check-label" for="%s"><strong>%s</strong>%s%s</label>\n'
            "</div>"
            % (
                field,
                html.escape(profile.name, quote=True),
                " checked" if profile is checked else "",
                field,
                html.escape(profile.name),
                (" &mdash; %s" % html.escape(profile.description)) if profile.description else "",
                (' <span class="text-muted">(%s)</span>' % html.escape(details)) if details else "",
            )
        )
    return '<fieldset>\n<legend>Server profile</legend>\n%s\n</fieldset>' % "\n".join(rows)


__all__ = [
    "LIMIT_KEYS",
    "Profile",
    "ProfileRefused",
    "choose_profile",
    "options_form",
    "parse_group_limits",
    "parse_profiles",
    "profile_limits",
    "requested_name",
    "visible_profiles",
]
