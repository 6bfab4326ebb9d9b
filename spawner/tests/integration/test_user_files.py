"""Users' files with the images operators bring: writable at the first spawn, kept across
stop and start, the server non-root with no capability (issue #11).

Every image is built in the test bed from Debian packages (testbed/user_images/).
"""

import io
import json
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from testbed.hub import Hub  # noqa: E402
from testbed.images import user_images  # noqa: E402

pytestmark = pytest.mark.integration

VOLUME = "{prefix}-user-{username}"

# shape -> (image, mount point, extra spawner traits, file the image put there or None)
CASES = {
    "minimal": ("minimal", "/home/jovyan/work", {}, None),
    "minimal-whole-home": ("minimal", "/home/jovyan", {}, ".bashrc"),
    "uid1001": ("uid1001", "/home/app/work", {}, None),
    "rootstart": ("rootstart", "/home/jovyan/work", {"root_start": True, "environment": {"CHOWN_HOME": "yes"}}, None),
    "prefilled": ("prefilled", "/home/jovyan/work", {}, "README.txt"),
}


@pytest.fixture(scope="module")
def images():
    return user_images()


@pytest.fixture(scope="module")
def hub(image, tmp_path_factory):
    """A hub whose Docker API filter allows root_start servers (the rootstart case)."""
    with Hub(tmp_path_factory.mktemp("hub-files"), image=image, filter_policy={"root_start": True}) as hub:
        yield hub


def spawn_ready(hub, user):
    response = hub.spawn(user)
    assert response.status_code in (201, 202), response.text
    hub.wait_ready(user)
    [container] = hub.containers(**{"hubfleet.user": user})
    return container


def save_file(hub, user, path, text):
    body = {"type": "file", "format": "text", "content": text}
    return hub.user_server("PUT", user, "api/contents/" + path, data=json.dumps(body))


def read_file(hub, user, path):
    response = hub.user_server_get(user, "api/contents/%s?content=1&format=text" % path)
    assert response.status_code == 200, response.text
    return response.json()["content"]


def process_status(container, pid="1"):
    """{field: value} of /proc/<pid>/status inside the container."""
    result = container.exec_run(["cat", "/proc/%s/status" % pid])
    assert result.exit_code == 0, result.output
    return dict(line.split(":\t", 1) for line in result.output.decode().splitlines() if ":\t" in line)


def server_pids(container):
    """PIDs of every process in the container (PID 1 and the server it runs)."""
    result = container.exec_run(["sh", "-c", "cd /proc && ls -d [0-9]*"])
    return [pid for pid in result.output.decode().split() if pid != "self"]


def assert_unprivileged(container):
    """PID 1 and every process of the server: a non-root uid, no effective capability."""
    exec_pids = set()
    for pid in server_pids(container):
        try:
            status = process_status(container, pid)
        except AssertionError:
            continue  # the exec's own short-lived processes
        if status.get("Name", "").strip() in ("cat", "sh", "ls"):
            exec_pids.add(pid)
            continue
        uids = status["Uid"].split()
        assert all(uid != "0" for uid in uids), (pid, status["Name"], status["Uid"])
        assert int(status["CapEff"], 16) == 0, (pid, status["Name"], status["CapEff"])
    assert process_status(container)["Uid"].split()[0] != "0"


@pytest.mark.parametrize("case", sorted(CASES))
def test_first_spawn_saves_and_the_file_survives_stop_and_start(hub, images, case):
    shape, mount_point, traits, image_file = CASES[case]
    user = "files-" + case
    home = "/home/app" if shape == "uid1001" else "/home/jovyan"
    relative = mount_point[len(home):].strip("/")
    hub.set_overrides(user, image=images[shape], volumes={VOLUME: mount_point}, **traits)
    container = spawn_ready(hub, user)
    assert_unprivileged(container)
    target = (relative + "/" if relative else "") + "saved-at-first-spawn.txt"
    response = save_file(hub, user, target, "kept")
    assert response.status_code in (200, 201), response.text
    if image_file:
        # Docker's copy-up of the image's files into the new volume still happened.
        listing = container.exec_run(["ls", "-a", mount_point]).output.decode().split()
        assert image_file in listing, listing
    hub.stop_server(user)

    container = spawn_ready(hub, user)
    assert read_file(hub, user, target) == "kept"
    assert_unprivileged(container)
    hub.stop_server(user)
    assert hub.containers(**{"hubfleet.user": user}) == []
    assert hub.containers(**{"hubfleet.kind": "volume-prep"}) == []


def test_without_the_ownership_step_the_minimal_image_cannot_save(hub, images):
    """The failure of issue #11, so the test above proves the step and not the image."""
    user = "files-unprepared"
    hub.set_overrides(user, image=images["minimal"], volumes={VOLUME: "/home/jovyan/work"}, prepare_volumes=False)
    spawn_ready(hub, user)
    response = save_file(hub, user, "work/x.txt", "lost")
    assert response.status_code == 403, response.text
    hub.stop_server(user)


def test_existing_data_is_not_chowned(hub, images):
    """A second spawn prepares nothing: a file another uid owns inside the volume keeps its owner."""
    user = "files-existing"
    hub.set_overrides(user, image=images["minimal"], volumes={VOLUME: "/home/jovyan/work"})
    container = spawn_ready(hub, user)
    volume = next(m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume")
    hub.stop_server(user)
    hub.docker.containers.run(
        images["minimal"], ["sh", "-c", "touch /v/owned-by-root && chown 0:0 /v && chmod 777 /v"],
        user="0", volumes={volume: {"bind": "/v", "mode": "rw"}}, remove=True,
        labels={"hubfleet.hub": hub.hub_label},
    )
    container = spawn_ready(hub, user)
    owners = container.exec_run(["stat", "-c", "%u %n", "/home/jovyan/work", "/home/jovyan/work/owned-by-root"])
    assert owners.output.decode().split("\n")[:2] == ["0 /home/jovyan/work", "0 /home/jovyan/work/owned-by-root"]
    hub.stop_server(user)


def test_a_server_user_missing_from_the_image_fails_fast_and_keeps_no_volume(hub, images):
    user = "files-nouser"
    hub.set_overrides(
        user, image=images["minimal"], volumes={VOLUME: "/home/jovyan/work"}, extra_create_kwargs={"user": "nobody-here"}
    )
    response = hub.spawn(user)
    assert response.status_code >= 400, response.text
    events = hub.progress(user)
    assert events[-1].get("failed"), events
    assert "nobody-here" in events[-1]["message"] and "/etc/passwd" in events[-1]["message"], events[-1]
    assert hub.docker.volumes.list(filters={"label": "hubfleet.user=%s" % user}) == []


# --- The whole home ({home}) -------------------------------------------------------------------

HOME_VOLUME = "{prefix}-home-{username}"
LAB_THEME = "lab/api/settings/@jupyterlab/apputils-extension:themes"


def small_wheel(directory):
    """A pure-Python wheel made here (pip installs it with no index)."""
    path = Path(directory) / "hubfleet_probe-1.0-py3-none-any.whl"
    files = {
        "hubfleet_probe.py": "KEPT = 'yes'\n",
        "hubfleet_probe-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: hubfleet-probe\nVersion: 1.0\n",
        "hubfleet_probe-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hubfleet-test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    files["hubfleet_probe-1.0.dist-info/RECORD"] = "".join("%s,,\n" % name for name in files) + (
        "hubfleet_probe-1.0.dist-info/RECORD,,\n"
    )
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


def put_file(container, path, directory="/tmp"):
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(str(path), arcname=Path(path).name)
    assert container.put_archive(directory, archive.getvalue())
    return "%s/%s" % (directory, Path(path).name)


@pytest.mark.parametrize("shape, home", [("minimal", "/home/jovyan"), ("uid1001", "/home/app")])
def test_the_whole_home_is_kept_with_pip_user_and_lab_settings(hub, images, shape, home, tmp_path):
    """{home} is the image's own home; the image's skeleton is there at the first spawn, and
    what the user writes there (a file, a `pip install --user`, a JupyterLab setting) survives."""
    user = "home" + shape  # no character the escaping changes: the volume's name is predictable
    hub.set_overrides(user, image=images[shape], volumes={HOME_VOLUME: "{home}"}, notebook_dir="~")
    container = spawn_ready(hub, user)
    assert_unprivileged(container)
    [mount] = [m for m in container.attrs["Mounts"] if m["Type"] == "volume"]
    assert (mount["Name"], mount["Destination"]) == ("%s-home-%s" % (hub.prefix, user), home)
    assert ".bashrc" in container.exec_run(["ls", "-a", home]).output.decode().split()  # copied up from /etc/skel
    response = save_file(hub, user, "notes.txt", "kept")  # notebook_dir ~: the contents API's root is the home
    assert response.status_code in (200, 201), response.text
    assert container.exec_run(["cat", home + "/notes.txt"]).output == b"kept"
    wheel = put_file(container, small_wheel(tmp_path))
    installed = container.exec_run(["pip", "install", "--user", "--no-index", "--no-deps", wheel])
    assert installed.exit_code == 0, installed.output.decode()
    response = hub.user_server("PUT", user, LAB_THEME, data=json.dumps({"raw": '{"theme": "JupyterLab Dark"}'}))
    assert response.status_code == 204, response.text
    hub.stop_server(user)

    container = spawn_ready(hub, user)
    assert read_file(hub, user, "notes.txt") == "kept"
    imported = container.exec_run(["python", "-c", "import hubfleet_probe as p; print(p.KEPT, p.__file__)"])
    assert imported.exit_code == 0, imported.output.decode()
    kept, location = imported.output.decode().split()
    assert kept == "yes" and location.startswith(home + "/.local/"), location
    response = hub.user_server_get(user, LAB_THEME)
    assert response.status_code == 200, response.text
    assert json.loads(response.json()["raw"]) == {"theme": "JupyterLab Dark"}
    assert_unprivileged(container)
    hub.stop_server(user)


def test_an_old_work_volume_is_mounted_where_it_was_and_new_users_get_none(hub, images):
    """existing_volumes: the volume of a hub that kept only .../work appears at {home}/work for
    the user who has one, untouched; a user without one gets no such volume."""
    old_user, new_user = "homeold", "homenew"
    config = dict(image=images["minimal"], volumes={HOME_VOLUME: "{home}"}, notebook_dir="~",
                  existing_volumes={VOLUME: "{home}/work"})
    # The old layout first: the user's work volume at /home/jovyan/work, a file saved in it.
    hub.set_overrides(old_user, image=images["minimal"], volumes={VOLUME: "/home/jovyan/work"},
                      notebook_dir="/home/jovyan/work")
    spawn_ready(hub, old_user)
    assert save_file(hub, old_user, "thesis.txt", "chapter 1").status_code in (200, 201)
    hub.stop_server(old_user)

    for user in (old_user, new_user):
        hub.set_overrides(user, **config)
    container = spawn_ready(hub, old_user)
    assert read_file(hub, old_user, "work/thesis.txt") == "chapter 1"
    assert ".bashrc" in container.exec_run(["ls", "-a", "/home/jovyan"]).output.decode().split()
    assert save_file(hub, old_user, "work/chapter2.txt", "more").status_code in (200, 201)
    hub.stop_server(old_user)
    container = spawn_ready(hub, new_user)
    assert sorted(m["Destination"] for m in container.attrs["Mounts"]) == ["/home/jovyan"]
    hub.stop_server(new_user)
    volumes = {v.name for v in hub.docker.volumes.list(filters={"label": "hubfleet.hub=%s" % hub.hub_label})}
    assert {"%s-user-%s" % (hub.prefix, old_user), "%s-home-%s" % (hub.prefix, old_user),
            "%s-home-%s" % (hub.prefix, new_user)} <= volumes
    assert "%s-user-%s" % (hub.prefix, new_user) not in volumes


# --- Shared folders: a read-only course folder, a read-write folder per JupyterHub group ----------

GROUP_VOLUME = "{prefix}-group-{groupname}"


def test_group_members_share_their_folder_others_cannot_list_it_and_the_course_refuses_writes(
    hub, images, tmp_path
):
    """Two members whose images run as different uids (1000 and 1001) write and read their
    group's folder; a third user has no such folder; the course folder is read-only."""
    course = tmp_path / "course"
    course.mkdir()
    (course / "syllabus.txt").write_text("week 1")
    course.chmod(0o755)
    (course / "syllabus.txt").chmod(0o644)
    members = {"grpcarol": "minimal", "grpdan": "uid1001"}
    for user, shape in dict(members, grperin="minimal").items():
        hub.create_user(user)
        hub.set_overrides(user, image=images[shape], volumes={HOME_VOLUME: "{home}"}, notebook_dir="~",
                          group_volumes={GROUP_VOLUME: "{home}/groups/{groupname}"},
                          read_only_volumes={str(course): "{home}/course"})
    response = hub.api("POST", "/groups/proj", json={"users": sorted(members)})
    assert response.status_code == 201, response.text

    carol = spawn_ready(hub, "grpcarol")
    assert save_file(hub, "grpcarol", "groups/proj/plan.txt", "from carol").status_code in (200, 201)
    dan = spawn_ready(hub, "grpdan")
    assert read_file(hub, "grpdan", "groups/proj/plan.txt") == "from carol"
    assert save_file(hub, "grpdan", "groups/proj/results.txt", "from dan").status_code in (200, 201)
    assert read_file(hub, "grpcarol", "groups/proj/results.txt") == "from dan"
    owners = carol.exec_run(["stat", "-c", "%u %n", "/home/jovyan/groups/proj/plan.txt",
                             "/home/jovyan/groups/proj/results.txt"]).output.decode().split("\n")[:2]
    assert owners == ["1000 /home/jovyan/groups/proj/plan.txt", "1001 /home/jovyan/groups/proj/results.txt"]
    assert_unprivileged(dan)

    spawn_ready(hub, "grperin")
    assert hub.user_server_get("grperin", "api/contents/groups/proj").status_code == 404
    assert hub.user_server_get("grperin", "api/contents/groups").status_code == 404

    assert read_file(hub, "grpcarol", "course/syllabus.txt") == "week 1"
    refused = save_file(hub, "grpcarol", "course/answers.txt", "mine")
    assert refused.status_code >= 400, refused.text
    assert sorted(p.name for p in course.iterdir()) == ["syllabus.txt"]

    [volume] = hub.docker.volumes.list(filters={"label": "hubfleet.group=proj"})
    assert volume.name == "%s-group-proj" % hub.prefix
    assert volume.attrs["Labels"]["hubfleet.kind"] == "group-volume" and "hubfleet.user" not in volume.attrs["Labels"]
    for user in ("grpcarol", "grpdan", "grperin"):
        hub.stop_server(user)
