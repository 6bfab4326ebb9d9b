"""Server profiles: parsing, who sees what, the user's choice, limits and group raises."""

from types import SimpleNamespace

import pytest
from traitlets import TraitError
from traitlets.config import Config

from hubfleet_spawner import DockerSpawner, SwarmSpawner
from hubfleet_spawner.errors import SpawnError

G = 1024**3

PROFILES = [
    {"name": "python", "image": "hubfleet/singleuser:1", "description": "Python 3", "default": True},
    {"name": "big", "image": "hubfleet/singleuser:1", "mem_limit": "4G", "cpu_limit": 2},
    {"name": "grading", "image": "nbgrader:2", "groups": ["graders", "staff"], "mem_limit": "6G"},
]


def spawner(cls=DockerSpawner, groups=(), user_options=None, **config):
    c = Config()
    for key, value in config.items():
        setattr(c[cls.__name__], key, value)
    s = cls(config=c)
    s.user = SimpleNamespace(name="alice", groups=[SimpleNamespace(name=g) for g in groups])
    s.user_options = user_options or {}
    return s


def test_the_default_profile_runs_when_the_user_names_none():
    s = spawner(profiles=PROFILES)
    assert s.chosen_profile().name == "python"


def test_without_a_default_the_first_open_profile_runs():
    s = spawner(profiles=PROFILES[1:], groups=["staff"])
    assert s.chosen_profile().name == "big"


async def test_the_chosen_profile_gives_image_and_limits():
    s = spawner(profiles=PROFILES, mem_limit="2G", cpu_limit=1.0, user_options={"profile": ["big"]})
    assert await s.resolve_image() == "hubfleet/singleuser:1"
    limits = await s.resolved_limits()
    assert (limits.mem_limit, limits.cpu_limit) == (4 * G, 2.0)


async def test_a_profile_without_limits_keeps_the_spawners():
    s = spawner(profiles=PROFILES, mem_limit="2G", cpu_limit=1.0, user_options={"profile": "python"})
    limits = await s.resolved_limits()
    assert (limits.mem_limit, limits.cpu_limit) == (2 * G, 1.0)


async def test_a_group_profile_is_refused_to_others_with_http_400():
    s = spawner(profiles=PROFILES, groups=["students"], user_options={"profile": ["grading"]})
    with pytest.raises(SpawnError) as refused:
        await s.resolve_image()
    assert refused.value.status_code == 400
    assert "'grading' is not one you may start" in str(refused.value)
    assert "python, big" in str(refused.value)


async def test_an_unknown_profile_gets_the_same_answer_as_a_closed_one():
    s = spawner(profiles=PROFILES, user_options={"profile": "nope"})
    with pytest.raises(SpawnError, match="'nope' is not one you may start"):
        await s.resolve_image()


async def test_a_member_of_any_listed_group_may_start_it():
    s = spawner(profiles=PROFILES, groups=["staff"], user_options={"profile": "grading"})
    assert await s.resolve_image() == "nbgrader:2"
    assert (await s.resolved_limits()).mem_limit == 6 * G


async def test_asking_for_an_image_is_refused_when_profiles_are_set():
    s = spawner(profiles=PROFILES, user_options={"image": "evil:latest"})
    with pytest.raises(SpawnError, match="profiles, not images") as refused:
        await s.resolve_image()
    assert refused.value.status_code == 400


async def test_the_form_shows_only_the_profiles_open_to_the_user():
    student = await spawner(profiles=PROFILES, groups=["students"])._image_options_form(None)
    grader = await spawner(profiles=PROFILES, groups=["graders"])._image_options_form(None)
    assert 'value="python" checked' in student and 'value="big"' in student
    assert "grading" not in student
    assert 'value="grading"' in grader
    assert "(4G memory, 2 CPU)" in student


async def test_the_form_escapes_names_and_descriptions():
    s = spawner(profiles=[{"name": 'x"><script>', "image": "i", "description": "<b>"}])
    form = await s._image_options_form(None)
    assert "<script>" not in form and "&lt;b&gt;" in form and "x&quot;&gt;&lt;script&gt;" in form


async def test_group_limits_raise_limits_and_never_lower_them():
    overrides = {"graders": {"mem_limit": "8G", "cpu_limit": 4}, "tiny": {"mem_limit": "1G"}}
    grader = spawner(mem_limit="2G", cpu_limit=1.0, group_limits=overrides, groups=["graders", "tiny"])
    limits = await grader.resolved_limits()
    assert (limits.mem_limit, limits.cpu_limit) == (8 * G, 4.0)
    student = spawner(mem_limit="2G", group_limits=overrides, groups=["students"])
    assert (await student.resolved_limits()).mem_limit == 2 * G


async def test_group_limits_apply_on_top_of_a_profile():
    s = spawner(
        profiles=PROFILES,
        group_limits={"graders": {"mem_limit": "8G"}},
        groups=["graders"],
        user_options={"profile": "big"},
    )
    limits = await s.resolved_limits()
    assert (limits.mem_limit, limits.cpu_limit) == (8 * G, 2.0)


@pytest.mark.parametrize(
    "bad, message",
    [
        ([{"name": "a"}], r"profiles\[0\].image must be a non-empty string"),
        ([{"name": "a", "image": "i", "mem": "2G"}], r"profiles\[0\]: unknown key\(s\) mem"),
        ([{"name": "a", "image": "i", "mem_limit": "lots"}], r"profiles\[0\] \(a\).mem_limit: 'lots' is not a valid mem_limit"),
        ([{"name": "a", "image": "i", "cpu_limit": "x"}], r"cpu_limit: 'x' is not a valid cpu_limit"),
        ([{"name": "a", "image": "i", "groups": "staff"}], r"profiles\[0\] \(a\).groups must be a list"),
        ([{"name": "a", "image": "i"}, {"name": "a", "image": "j"}], r"the name\(s\) a are used more than once"),
        (
            [{"name": "a", "image": "i", "default": True}, {"name": "b", "image": "j", "default": True}],
            r"more than one profile has default: true \(a, b\)",
        ),
        (["python"], r"profiles.*expected a dict, not the str .python."),
    ],
)
def test_a_bad_profile_is_refused_when_the_config_loads_naming_it(bad, message):
    with pytest.raises(TraitError, match=message):
        spawner(profiles=bad)


def test_bad_group_limits_are_refused_naming_the_entry():
    with pytest.raises(TraitError, match=r"group_limits\['graders'\]: unknown key\(s\) memory"):
        spawner(group_limits={"graders": {"memory": "8G"}})
    with pytest.raises(TraitError, match=r"group_limits\['graders'\].mem_limit: 'x'"):
        spawner(group_limits={"graders": {"mem_limit": "x"}})


def test_profiles_and_allowed_images_together_are_refused():
    with pytest.raises(TraitError, match="profiles replace allowed_images"):
        spawner(profiles=PROFILES, allowed_images=["a", "b"])


def test_constraints_are_refused_on_one_host():
    with pytest.raises(TraitError, match=r"profiles \(gpu\): constraints place servers on swarm nodes"):
        spawner(profiles=[{"name": "gpu", "image": "i", "constraints": ["node.labels.pool==gpu"]}])


async def test_swarm_places_a_profile_by_its_constraints():
    class NoWorkers:
        async def call(self, method, **kwargs):
            return []

    profiles = [
        {"name": "cpu", "image": "i"},
        {"name": "gpu", "image": "i", "constraints": ["node.labels.hubfleet.pool==gpu"]},
    ]
    s = spawner(
        SwarmSpawner,
        profiles=profiles,
        placement_constraints=["node.labels.hubfleet.role==user"],
        user_options={"profile": "gpu"},
        docker_api=NoWorkers(),
    )
    assert (await s.placement())["Constraints"] == ["node.labels.hubfleet.role==user", "node.labels.hubfleet.pool==gpu"]
    s.user_options = {"profile": "cpu"}
    assert (await s.placement())["Constraints"] == ["node.labels.hubfleet.role==user"]


async def test_jupyterhubs_own_group_overrides_still_work():
    s = spawner(
        mem_limit="2G",
        groups=["staff"],
        group_overrides={"01-staff": {"groups": ["staff"], "spawner_override": {"mem_limit": "3G"}}},
    )
    await s.apply_group_overrides()
    assert (await s.resolved_limits()).mem_limit == 3 * G


async def test_a_profile_asks_for_its_gpus_and_the_form_says_so():
    profiles = [{"name": "cpu", "image": "i"}, {"name": "gpu", "image": "i", "gpus": 2}]
    s = spawner(profiles=profiles, gpus=0, user_options={"profile": "gpu"})
    assert await s.resolved_gpus() == 2
    s.user_options = {"profile": "cpu"}
    assert await s.resolved_gpus() == 0
    assert "(2 GPU)" in await s._image_options_form(None)
    with pytest.raises(TraitError, match=r"profiles\[0\] \(g\).gpus must be a whole number"):
        spawner(profiles=[{"name": "g", "image": "i", "gpus": -1}])
