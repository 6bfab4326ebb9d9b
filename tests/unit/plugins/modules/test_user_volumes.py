# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""user_volumes: parsing the users option (the Docker side is in the integration target)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hubfleet.jupyterhub.plugins.modules.user_volumes import parse_users


def test_plain_names_take_the_default_server():
    assert parse_users(["alice", "Bob"], "") == [("alice", ""), ("Bob", "")]


def test_plain_names_for_removal_mean_every_server():
    assert parse_users(["alice"], None) == [("alice", None)]


def test_dicts_name_a_server():
    assert parse_users([{"name": "carol", "server": "gpu"}, {"name": "dan"}], "") == [("carol", "gpu"), ("dan", "")]


def test_nothing_given_is_an_empty_list():
    assert parse_users(None, "") == []


@pytest.mark.parametrize(
    "bad",
    [
        [{"user": "carol"}],
        [{"name": "carol", "servers": ["x"]}],
        [42],
        [{"name": ""}],
        [""],
        [{"name": "carol", "server": 3}],
    ],
)
def test_bad_elements_fail_naming_their_index(bad):
    with pytest.raises(ValueError) as error:
        parse_users(["fine"] + bad, "")
    assert str(error.value).startswith("users[1]")


def test_usage_is_summed_per_user_largest_first_and_unknown_stays_unknown():
    from ansible_collections.hubfleet.jupyterhub.plugins.modules.user_volumes import over_limit, usage_by_user

    volumes = [
        {"name": "j-home-ada", "user": "ada", "size": 100},
        {"name": "j-user-ada", "user": "ada", "size": 50},
        {"name": "j-home-bob", "user": "bob", "size": 400},
        {"name": "j-home-eve", "user": "eve", "size": None},
    ]
    usage = usage_by_user(volumes)
    assert usage == [
        {"user": "bob", "size": 400, "volumes": ["j-home-bob"]},
        {"user": "ada", "size": 150, "volumes": ["j-home-ada", "j-user-ada"]},
        {"user": "eve", "size": None, "volumes": ["j-home-eve"]},
    ]
    assert [entry["user"] for entry in over_limit(usage, 149)] == ["bob", "ada"]
    assert over_limit(usage, 400) == []
