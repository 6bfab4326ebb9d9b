"""Escaping and templating: valid, injective, and never leaving a base directory."""

import itertools
import re

import pytest

from hubfleet_spawner import naming
from hubfleet_spawner.naming import UnsafeNameError

DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
DNS_LABEL = re.compile(r"^[a-z0-9_-]{1,63}$")

HOSTILE_NAMES = [
    "..",
    ".",
    "../etc",
    "../../root/.ssh",
    "a/../../b",
    "/",
    "/etc/passwd",
    "a/b",
    "a\x00b",
    "\x00",
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "bell\x07",
    "del\x7f",
    "é",
    "Éva",
    "用户",
    "👩‍💻",
    "ﬁ",  # a ligature NFKC folds to "fi"
    "ｆｕｌｌ",  # fullwidth letters
    "a\u202eb",  # right-to-left override
    "a\u200bb",  # zero-width space
    "x" * 200,
    "y" * 1000,
    "Alice",
    "alice",
    "ALICE",
    "a.b",
    "a_b",
    "a-b",
    "a--b",
    "a_2eb",  # looks like an escape of "a.b"
    "-leading-dash",
    "_leading_underscore",
    "$(rm -rf /)",
    "`id`",
    "a;b",
    "a b",
    " ",
    "~root",
    "%2e%2e",
    "{username}",
    "{0}",
    "user@example.com",
    "C:\\Windows",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_escaped_names_are_valid_docker_and_dns_names(name):
    escaped = naming.escape(name)
    assert DNS_LABEL.match(escaped), escaped
    container = naming.container_name(naming.DEFAULT_NAME_TEMPLATE, naming.template_names(name))
    assert DOCKER_NAME.match(container) and len(container) <= 63
    volume = naming.volume_name(naming.DEFAULT_USER_VOLUME_TEMPLATE, naming.template_names(name))
    assert DOCKER_NAME.match(volume)


def test_escaping_is_injective_across_hostile_names_and_case():
    escaped = [naming.escape(n) for n in HOSTILE_NAMES]
    assert len(set(escaped)) == len(set(HOSTILE_NAMES))
    assert len({e.lower() for e in escaped}) == len(set(HOSTILE_NAMES)), "case-folding must not merge names"


def test_user_and_server_pairs_never_share_a_container_name():
    users = ["a", "a-", "a--b", "a_2d", "A", "x" * 200, "x" * 201]
    servers = ["", "b", "-b", "2d", "B", "b" * 200]
    seen = {}
    for user, server in itertools.product(users, servers):
        names = naming.template_names(user, server)
        template = naming.DEFAULT_NAMED_SERVER_NAME_TEMPLATE if server else naming.DEFAULT_NAME_TEMPLATE
        name = naming.container_name(template, names)
        assert name not in seen, (user, server, seen.get(name))
        seen[name] = (user, server)


def test_long_names_are_cut_with_a_hash():
    first, second = naming.escape("x" * 200), naming.escape("x" * 199 + "y")
    assert len(first) == naming.MAX_ESCAPED_LENGTH
    assert first != second


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_host_paths_from_escaped_names_stay_in_their_base(name):
    path = naming.host_path("/srv/homes/{username}/work", naming.template_names(name))
    assert path.startswith("/srv/homes/")
    component = path[len("/srv/homes/"):-len("/work")]
    assert component not in ("", ".", "..") and "/" not in component


@pytest.mark.parametrize(
    "name",
    ["..", ".", "../etc", "a/b", "/etc", "a\x00b", "tab\there", "é", "用户", "a\u202eb", "z" * 300],
)
def test_host_paths_from_raw_hostile_names_are_refused(name):
    with pytest.raises(UnsafeNameError) as info:
        naming.host_path("/srv/homes/{raw_username}", naming.template_names(name))
    assert "raw_username" in str(info.value)


def test_host_path_accepts_a_plain_raw_name():
    assert naming.host_path("/srv/homes/{raw_username}", naming.template_names("alice")) == "/srv/homes/alice"


@pytest.mark.parametrize("template", ["relative/{username}", "/srv/../etc/{username}", "/srv//{username}"])
def test_host_path_templates_must_be_plain_absolute_paths(template):
    with pytest.raises(UnsafeNameError):
        naming.host_path(template, naming.template_names("alice"))


def test_unknown_template_fields_are_named_in_the_error():
    with pytest.raises(UnsafeNameError) as info:
        naming.volume_name("{prefix}-{user}", naming.template_names("alice"))
    assert "{user}" in str(info.value)


def test_raw_names_that_docker_refuses_fail_with_a_clear_message():
    with pytest.raises(UnsafeNameError) as info:
        naming.volume_name("vol-{raw_username}", naming.template_names("a/b"))
    assert "not a valid Docker name" in str(info.value)


def test_template_fields_match_dockerspawner():
    names = naming.template_names("Alice", "gpu", prefix="jh", imagename="reg.example:5000/team/lab:4.1")
    assert names["username"] == names["safe_username"] == "_41lice"
    assert names["raw_username"] == "Alice"
    assert names["servername"] == names["safe_servername"] == "gpu"
    assert names["raw_servername"] == "gpu"
    assert names["prefix"] == "jh"
    assert names["imagename"] == "lab"


def test_default_server_has_an_empty_servername():
    names = naming.template_names("alice")
    assert names["servername"] == "" and names["raw_servername"] == ""


def test_empty_user_name_is_refused():
    with pytest.raises(UnsafeNameError):
        naming.template_names("")


@pytest.mark.parametrize(
    "name, dockerspawner_escape, dockerspawner_legacy",
    [
        # What dockerspawner 14 itself gives for these names (DockerSpawner._escape / _legacy_escape).
        ("alice", "alice", "alice"),
        ("a-b", "a-2db", "a-b"),
        ("A.b@c", "-41-2eb-40c", "A_2Eb_40c"),
        ("é", "-c3-a9", "_C3_A9"),
        ("x_y", "x-5fy", "x_5Fy"),
    ],
)
def test_dockerspawner_escape_schemes_give_dockerspawners_names(name, dockerspawner_escape, dockerspawner_legacy):
    assert naming.ESCAPE_SCHEMES["escape"](name) == dockerspawner_escape
    assert naming.ESCAPE_SCHEMES["legacy"](name) == dockerspawner_legacy
    assert naming.ESCAPE_SCHEMES["hubfleet"] is naming.escape
