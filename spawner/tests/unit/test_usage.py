"""The per-user storage limit (usage.py): the report the hub reads, the notices, and what a
spawn does with them (no engine call: the sizes come from the report)."""

import json
import os
from types import SimpleNamespace

from traitlets.config import Config

from hubfleet_spawner import DockerSpawner
from hubfleet_spawner.usage import StorageNotice, UsageReport, admin_notice_text, format_size

GIB = 1024 ** 3
IMAGE = "example/lab:1"
IMAGE_INFO = {"Id": "sha256:x", "Config": {"User": "1000", "Env": ["HOME=/home/jovyan"]}}


def write_report(path, users, measured="2026-12-04T03:00Z"):
    path.write_text(json.dumps({"measured": measured, "users": users}))


def test_sizes_read_as_people_read_them():
    assert [format_size(size) for size in (512, 12 * 1024, 300 * 1024 ** 2, int(1.5 * GIB), 2 * 1024 ** 4)] == [
        "512 bytes", "12 KiB", "300 MiB", "1.5 GiB", "2 TiB"]


def test_a_user_over_the_limit_gets_a_notice_and_others_none(tmp_path):
    path = tmp_path / "usage.json"
    write_report(path, {"alice": 6 * GIB, "bob": GIB})
    report = UsageReport(str(path))
    assert report.notice("alice", 5 * GIB) == (
        "Your files use 6 GiB, more than your limit of 5 GiB (measured 2026-12-04T03:00Z). "
        "Please delete what you no longer need: the administrators have been told.")
    assert report.notice("bob", 5 * GIB) == ""
    assert report.notice("carol", 5 * GIB) == ""  # not measured yet
    assert report.notice("alice", None) == ""  # no limit


def test_the_report_is_read_again_only_when_it_changes(tmp_path):
    path = tmp_path / "usage.json"
    write_report(path, {"alice": 6 * GIB})
    report = UsageReport(str(path))
    assert report.size_of("alice") == 6 * GIB
    opened = []
    real_open = open

    def counting_open(*args, **kwargs):
        opened.append(args[0])
        return real_open(*args, **kwargs)

    import builtins  # pylint: disable=import-outside-toplevel

    builtins.open, saved = counting_open, builtins.open
    try:
        assert report.size_of("alice") == 6 * GIB
        assert opened == []  # unchanged: not read again
        write_report(path, {"alice": GIB, "bob": 7 * GIB})
        stat = os.stat(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        assert report.size_of("alice") == GIB and report.size_of("bob") == 7 * GIB
        assert opened == [str(path)]
    finally:
        builtins.open = saved


def test_a_missing_or_broken_report_gives_no_notice(tmp_path):
    assert UsageReport(str(tmp_path / "none.json")).notice("alice", 1) == ""
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    logged = []
    log = SimpleNamespace(warning=lambda *args: logged.append(args[0] % args[1:]))
    assert UsageReport(str(broken), log).notice("alice", 1) == ""
    assert "Ignoring the usage report" in logged[0]
    broken.write_text(json.dumps({"users": ["alice"]}))
    assert UsageReport(str(broken)).notice("alice", 1) == ""


def test_the_pages_show_users_their_notice_and_admins_who_is_over(tmp_path):
    path = tmp_path / "pages.json"
    write_report(path, {"alice": 6 * GIB, "bob": GIB, "carol": 8 * GIB})
    notice = StorageNotice(str(path), "5G")
    assert notice(None) == ""  # the login page
    assert notice(SimpleNamespace(name="bob", admin=False)) == ""
    assert notice(SimpleNamespace(name="alice", admin=False)).startswith("Your files use 6 GiB")
    assert notice(SimpleNamespace(name="root", admin=True)) == (
        "2 users over the storage limit of 5 GiB: carol (8 GiB), alice (6 GiB).")


def test_an_admin_notice_names_the_largest_few():
    over = [("u%d" % n, (20 - n) * GIB) for n in range(8)]
    assert admin_notice_text(over, 5 * GIB) == (
        "8 users over the storage limit of 5 GiB: u0 (20 GiB), u1 (19 GiB), u2 (18 GiB), u3 (17 GiB), "
        "u4 (16 GiB) and 3 more.")


def make(tmp_path, **config):
    c = Config()
    for key, value in config.items():
        setattr(c.DockerSpawner, key, value)
    spawner = DockerSpawner(config=c, docker_api=SimpleNamespace())
    spawner.user = SimpleNamespace(name="alice")
    spawner.orm_spawner = SimpleNamespace(name="", server=None)
    spawner.get_env = lambda: {}
    spawner.get_args = lambda: []
    return spawner


async def test_a_spawn_over_the_limit_tells_the_user_the_server_and_the_log(tmp_path, caplog):
    path = tmp_path / "spawn.json"
    write_report(path, {"alice": 6 * GIB})
    spawner = make(tmp_path, volume_size_limit="5G", usage_report=str(path))
    settings = await spawner.resolve_settings(IMAGE, IMAGE_INFO)
    notice = dict(settings.environment)["HUBFLEET_STORAGE_NOTICE"]
    assert notice.startswith("Your files use 6 GiB, more than your limit of 5 GiB")
    assert [event["message"] for event in spawner._events] == [notice]  # pylint: disable=protected-access
    assert "alice is over the storage limit" in caplog.text


async def test_a_spawn_under_the_limit_or_without_one_is_as_before(tmp_path):
    path = tmp_path / "under.json"
    write_report(path, {"alice": GIB})
    for config in ({"volume_size_limit": "5G", "usage_report": str(path)}, {"usage_report": str(path)}, {}):
        settings = await make(tmp_path, **config).resolve_settings(IMAGE, IMAGE_INFO)
        assert "HUBFLEET_STORAGE_NOTICE" not in dict(settings.environment)
