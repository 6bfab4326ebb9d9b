"""The {home} field of mount targets (home.py) and existing_volumes, resolved per spawn."""

from types import SimpleNamespace

import docker.errors
import pytest
from traitlets import TraitError
from traitlets.config import Config

from hubfleet_spawner import DockerSpawner, SwarmSpawner, home
from hubfleet_spawner.errors import SpawnError
from hubfleet_spawner.naming import UnsafeNameError, render

IMAGE = "example/lab:1"
MINIMAL = {"Id": "sha256:minimal", "Config": {"User": "jovyan", "Env": ["PATH=/opt/venv/bin"]}}
WITH_HOME = {"Id": "sha256:withhome", "Config": {"User": "1000", "Env": ["HOME=/home/jovyan"]}}
ROOT_START = {"Id": "sha256:stacks", "Config": {"User": "", "Env": ["NB_USER=jovyan", "HOME=/home/jovyan"]}}


class FakeEngine:
    """Answers the calls the home lookup and existing_volumes make; records them."""

    def __init__(self, homes=None, volumes=(), start_error=None):
        self.homes = homes or {}  # user -> the HOME Docker would set
        self.volumes = set(volumes)
        self.start_error = start_error
        self.calls = []
        self.client = SimpleNamespace(create_host_config=lambda **kwargs: kwargs)
        self.containers = {}

    async def call(self, method, *args, **kwargs):
        self.calls.append((method, args, kwargs))
        if method == "inspect_volume":
            if args[0] not in self.volumes:
                raise docker.errors.NotFound("no such volume")
            return {"Name": args[0], "Labels": {}}
        if method == "create_container":
            self.containers["c1"] = kwargs
            return {"Id": "c1"}
        if method == "start":
            if self.start_error:
                raise docker.errors.APIError(self.start_error, explanation=self.start_error)
            return None
        if method == "wait":
            return {"StatusCode": 0}
        if method == "logs":
            return self.homes.get(self.containers["c1"]["user"], "/").encode()
        if method == "remove_container":
            self.containers.pop(args[0], None)
            return None
        raise AssertionError("unexpected call %s" % method)

    def count(self, method):
        return sum(1 for call in self.calls if call[0] == method)


@pytest.fixture(autouse=True)
def forget_lookups():
    home._LOOKED_UP.clear()
    yield
    home._LOOKED_UP.clear()


def make(engine, cls=DockerSpawner, environment=None, **config):
    c = Config()
    for key, value in config.items():
        setattr(getattr(c, cls.__name__), key, value)
    spawner = cls(config=c, docker_api=engine)
    spawner.user = SimpleNamespace(name="alice")
    spawner.orm_spawner = SimpleNamespace(name="", server=None)
    spawner.get_env = lambda: dict(environment or {})
    spawner.get_args = lambda: []
    return spawner


# --- pure rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "root_start, environment, image_environment, expected",
    [
        (False, [], ["HOME=/home/jovyan"], "/home/jovyan"),
        (False, ["HOME=/srv/me"], ["HOME=/home/jovyan"], "/srv/me"),  # the spawner's environment wins
        (False, [], ["PATH=/bin"], None),  # only the image's /etc/passwd can tell
        (True, [], ["NB_USER=jovyan", "HOME=/home/jovyan"], "/home/jovyan"),
        (True, ["NB_USER=alice"], ["NB_USER=jovyan", "HOME=/home/jovyan"], "/home/alice"),  # start.sh moves the home
        (True, [], [], "/home/jovyan"),  # docker-stacks' default NB_USER
    ],
)
def test_known_home(root_start, environment, image_environment, expected):
    assert home.known_home(root_start, environment, image_environment) == expected


@pytest.mark.parametrize("bad", ["/", "relative/home", "/home/../etc", "/home/x/", ""])
def test_a_home_that_cannot_hold_a_volume_is_refused(bad):
    with pytest.raises(home.HomeError, match="cannot hold a volume"):
        home.check_home(bad, "HOME")


def test_root_start_refuses_an_nb_user_that_leaves_home():
    with pytest.raises(home.HomeError):
        home.known_home(True, ["NB_USER=../etc"], [])


def test_uses_home_looks_at_fields_not_text():
    assert home.uses_home(["/srv/x", "{home}"])
    assert home.uses_home(["{home}/work"])
    assert not home.uses_home(["/home/jovyan/work", "/srv/{username}"])


def test_home_in_a_volume_name_is_refused_with_a_reason():
    with pytest.raises(UnsafeNameError, match="only in mount targets"):
        render("{home}-vol", {"username": "alice"})


# --- resolved per spawn -------------------------------------------------------------------


async def test_the_home_comes_from_the_image_env_without_a_container():
    engine = FakeEngine()
    spawner = make(engine, volumes={"{prefix}-home-{username}": "{home}"})
    settings = await spawner.resolve_settings(IMAGE, WITH_HOME)
    assert settings.binds["jupyter-home-alice"] == {"bind": "/home/jovyan", "mode": "rw"}
    assert engine.count("create_container") == 0


async def test_the_home_is_read_from_the_images_passwd_once_per_image_and_user():
    engine = FakeEngine(homes={"jovyan": "/home/jovyan"})
    spawner = make(engine, volumes={"{prefix}-home-{username}": "{home}"}, notebook_dir="~")
    settings = await spawner.resolve_settings(IMAGE, MINIMAL)
    assert settings.binds["jupyter-home-alice"]["bind"] == "/home/jovyan"
    [(_, args, lookup)] = [call for call in engine.calls if call[0] == "create_container"]
    # The lookup container: the image by id, the server's user, no network, no capability, labelled.
    assert args == ("sha256:minimal",) and lookup["user"] == "jovyan" and lookup["network_disabled"]
    assert lookup["host_config"]["cap_drop"] == ["ALL"] and lookup["host_config"]["cap_add"] == []
    assert lookup["host_config"]["network_mode"] == "none"
    assert lookup["labels"]["hubfleet.kind"] == "volume-prep"
    assert engine.containers == {}  # removed
    await make(engine, volumes={"{prefix}-home-{username}": "{home}"}).resolve_settings(IMAGE, MINIMAL)
    assert engine.count("create_container") == 1


async def test_another_users_home_in_another_image():
    engine = FakeEngine(homes={"app": "/home/app"})
    image = {"Id": "sha256:app", "Config": {"User": "app", "Env": []}}
    spawner = make(engine, volumes={"{prefix}-home-{username}": "{home}"}, read_only_volumes={"/srv/course": "{home}/course"})
    settings = await spawner.resolve_settings(IMAGE, image)
    assert settings.binds["jupyter-home-alice"]["bind"] == "/home/app"
    assert settings.binds["/srv/course"] == {"bind": "/home/app/course", "mode": "ro"}


async def test_a_user_without_a_home_fails_the_spawn_with_the_reason():
    engine = FakeEngine(homes={})  # Docker's HOME for a uid missing from /etc/passwd is /
    spawner = make(engine, volumes={"{prefix}-home-{username}": "{home}"})
    with pytest.raises(SpawnError, match="home directory.*cannot hold a volume"):
        await spawner.resolve_settings(IMAGE, MINIMAL)
    engine = FakeEngine(start_error="unable to find user nobody-here: no matching entries in passwd file")
    spawner = make(engine, volumes={"{prefix}-home-{username}": "{home}"}, extra_create_kwargs={"user": "nobody-here"})
    with pytest.raises(SpawnError, match="nobody-here.*passwd"):
        await spawner.resolve_settings(IMAGE, MINIMAL)
    assert engine.containers == {}


async def test_swarm_uses_default_home_when_it_cannot_look_into_the_image(monkeypatch):
    engine = FakeEngine()
    spawner = make(engine, cls=SwarmSpawner, volumes={"{prefix}-home-{username}": "{home}"}, default_home="/home/app")
    monkeypatch.setattr(spawner, "placement", _no_placement)
    settings = await spawner.resolve_settings(IMAGE, None)
    assert settings.binds["jupyter-home-alice"]["bind"] == "/home/app"
    assert engine.calls == []


async def _no_placement():
    return {"Constraints": []}


async def test_configs_without_home_ask_nothing():
    engine = FakeEngine()
    spawner = make(engine, volumes={"{prefix}-user-{username}": "/home/jovyan/work"})
    settings = await spawner.resolve_settings(IMAGE, MINIMAL)
    assert "home" not in settings.names and engine.calls == []


# --- existing_volumes ---------------------------------------------------------------------


async def test_an_existing_volume_is_mounted_only_when_it_exists():
    config = dict(
        volumes={"{prefix}-home-{username}": "{home}"},
        existing_volumes={"{prefix}-user-{username}": "{home}/work"},
    )
    engine = FakeEngine(volumes={"jupyter-user-alice"})
    settings = await make(engine, **config).resolve_settings(IMAGE, WITH_HOME)
    assert settings.binds == {
        "jupyter-home-alice": {"bind": "/home/jovyan", "mode": "rw"},
        "jupyter-user-alice": {"bind": "/home/jovyan/work", "mode": "rw"},
    }
    assert set(settings.named_volumes) == {"jupyter-home-alice", "jupyter-user-alice"}

    engine = FakeEngine(volumes=set())  # a new user: no old volume, none created
    settings = await make(engine, **config).resolve_settings(IMAGE, WITH_HOME)
    assert settings.binds == {"jupyter-home-alice": {"bind": "/home/jovyan", "mode": "rw"}}
    assert list(settings.named_volumes) == ["jupyter-home-alice"]


def test_existing_volumes_refuses_host_paths():
    with pytest.raises(TraitError, match="host path"):
        make(None, existing_volumes={"/srv/old/{username}": "/home/jovyan/work"})


def test_the_swarm_spawner_refuses_existing_volumes():
    with pytest.raises(TraitError, match="existing_volumes"):
        make(None, cls=SwarmSpawner, existing_volumes={"{prefix}-user-{username}": "{home}/work"})


# --- group_volumes --------------------------------------------------------------------------


def test_each_group_of_the_user_gets_its_volumes_escaped_as_user_names():
    from hubfleet_spawner.naming import escape
    from hubfleet_spawner.volumes import VolumePlan, plan_group_volumes

    plan = VolumePlan()
    owners = plan_group_volumes(
        plan, {"{prefix}-group-{groupname}": "{home}/groups/{groupname}"}, ["Proj A", "bio"],
        {"prefix": "jupyter", "home": "/home/app"}, escape,
    )
    assert owners == {"jupyter-group-bio": "bio", "jupyter-group-%s" % escape("Proj A"): "Proj A"}
    assert plan.binds["jupyter-group-bio"] == {"bind": "/home/app/groups/bio", "mode": "rw"}
    assert "/" not in escape("../etc") and "." not in escape("../etc")


@pytest.mark.parametrize(
    "templates, message",
    [
        ({"/srv/groups/{groupname}": "/g"}, "host path"),
        ({"{prefix}-group": "/g/{groupname}"}, "both map to volume"),
    ],
)
def test_group_volumes_that_would_be_unsafe_are_refused(templates, message):
    from hubfleet_spawner.naming import escape
    from hubfleet_spawner.volumes import UnsafeVolumeError, VolumePlan, plan_group_volumes

    with pytest.raises(UnsafeVolumeError, match=message):
        plan_group_volumes(VolumePlan(), templates, ["a", "b"], {"prefix": "jupyter"}, escape)


def test_a_new_group_volume_is_prepared_for_every_member():
    from hubfleet_spawner import ownership
    from hubfleet_spawner.volumes import VolumePlan

    plan = VolumePlan()
    plan.binds = {"h": {"bind": "/home/jovyan", "mode": "rw"}, "g": {"bind": "/home/jovyan/groups/p", "mode": "rw"}}
    rules = {m.source: m.rule for m in ownership.mounts_to_prepare(plan, ["h", "g"], [], {"g": {}})}
    assert rules == {"h": ownership.ALWAYS, "g": ownership.SHARED}
    # Created by another member earlier: never touched again.
    assert [m.source for m in ownership.mounts_to_prepare(plan, ["h"], ["g"], {"g": {}})] == ["h"]


async def test_group_volumes_follow_the_users_groups_and_carry_the_groups_labels():
    config = dict(volumes={"{prefix}-home-{username}": "{home}"},
                  group_volumes={"{prefix}-group-{groupname}": "{home}/groups/{groupname}"})
    spawner = make(FakeEngine(), **config)
    spawner.user = SimpleNamespace(name="alice", groups=[SimpleNamespace(name="proj")])
    settings = await spawner.resolve_settings(IMAGE, WITH_HOME)
    assert settings.binds["jupyter-group-proj"] == {"bind": "/home/jovyan/groups/proj", "mode": "rw"}
    assert dict(settings.group_volumes) == {
        "jupyter-group-proj": {"hubfleet.hub": "jupyter", "hubfleet.kind": "group-volume", "hubfleet.group": "proj"}
    }
    spawner.user = SimpleNamespace(name="alice", groups=[])  # not a member: nothing mounted
    settings = await spawner.resolve_settings(IMAGE, WITH_HOME)
    assert list(settings.binds) == ["jupyter-home-alice"] and not settings.group_volumes


def test_the_swarm_spawner_refuses_group_volumes():
    with pytest.raises(TraitError, match="group_volumes"):
        make(None, cls=SwarmSpawner, group_volumes={"{prefix}-group-{groupname}": "/g"})
