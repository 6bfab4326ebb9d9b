"""DockerSpawner through a real JupyterHub + CHP, spawning real containers."""

import asyncio
import threading
import time

import pytest

pytestmark = pytest.mark.integration


def spawn_ready(hub, user, server="", options=None):
    response = hub.spawn(user, server, options)
    assert response.status_code in (201, 202), response.text
    hub.wait_ready(user, server)
    return user_container(hub, user, server)


def user_containers(hub, user, server=None):
    found = hub.containers(**{"hubfleet.user": user})
    if server is not None:
        found = [c for c in found if c.labels.get("hubfleet.server") == server]
    return found


def user_container(hub, user, server=""):
    [container] = user_containers(hub, user, server)
    return container


def failed_spawn(hub, user, **overrides):
    """Spawn with broken settings; returns (seconds until failure, failure message)."""
    hub.set_overrides(user, **overrides)
    started = time.monotonic()
    response = hub.spawn(user)
    elapsed = time.monotonic() - started
    assert response.status_code >= 400, response.text
    events = hub.progress(user)
    assert events[-1].get("failed"), events
    return elapsed, events[-1]["message"]


def test_start_poll_stop(hub):
    container = spawn_ready(hub, "ada")
    assert container.status == "running"
    assert hub.user_server_get("ada", "api/status").status_code == 200
    hub.stop_server("ada")
    assert user_containers(hub, "ada") == []


def test_the_image_command_runs_and_stops_gracefully(hub):
    """No cmd configured: the image's own CMD runs (as with dockerspawner), and a stop
    ends the server with SIGTERM, not with the SIGKILL after the stop timeout."""
    hub.set_overrides("ida", remove=False)
    container = spawn_ready(hub, "ida")
    image_cmd = hub.docker.images.get(container.image.id).attrs["Config"]["Cmd"]
    assert container.attrs["Config"]["Cmd"][: len(image_cmd)] == image_cmd
    hub.stop_server("ida")
    container.reload()
    assert container.status == "exited"
    assert container.attrs["State"]["ExitCode"] == 0, container.logs(tail=20)
    container.remove()


def test_poll_notices_a_killed_container(hub):
    container = spawn_ready(hub, "barbara")
    container.kill()
    # The hub polls every 3 s in the test bed; the view learns of the death from events.
    hub.wait_stopped("barbara", timeout=20)


def test_stop_copes_with_a_vanished_container(hub):
    container = spawn_ready(hub, "carl")
    container.remove(force=True)
    response = hub.api("DELETE", "/users/carl/server")
    assert response.status_code in (202, 204), response.text
    hub.wait_stopped("carl")


def test_half_created_container_is_replaced(hub, image):
    """A container left behind in 'created' state (say, a crash mid-spawn) does not block the spawn."""
    labels = {"hubfleet.hub": hub.hub_label, "hubfleet.kind": "user-server", "hubfleet.user": "dora", "hubfleet.server": ""}
    stale = hub.docker.containers.create(image, name="%s-dora" % hub.prefix, labels=labels)
    container = spawn_ready(hub, "dora")
    assert container.id != stale.id
    hub.stop_server("dora")
    assert user_containers(hub, "dora") == []


def test_hub_restart_reattaches_without_restarting_containers(hub):
    before = {user: spawn_ready(hub, user) for user in ("emmy", "felix")}
    started = {user: c.attrs["State"]["StartedAt"] for user, c in before.items()}
    hub.restart()
    for user, container in before.items():
        model = hub.wait_ready(user, timeout=30)
        assert model["ready"]
        container.reload()
        assert container.status == "running"
        assert container.attrs["State"]["StartedAt"] == started[user]
        assert hub.user_server_get(user, "api/status").status_code == 200
    for user in before:
        hub.stop_server(user)


def test_named_servers_get_their_own_containers(hub):
    default = spawn_ready(hub, "grace")
    named = spawn_ready(hub, "grace", "gpu-1")
    assert default.name != named.name
    assert named.labels["hubfleet.server"] == "gpu-1"
    assert hub.user_server_get("grace", "api/status", server="gpu-1").status_code == 200
    hub.stop_server("grace", "gpu-1")
    assert [c.id for c in user_containers(hub, "grace")] == [default.id]
    hub.stop_server("grace")


def test_allowed_images_refuse_a_bypass_with_400(hub, image):
    hub.set_overrides("hedy", allowed_images={"Standard": image, "Also standard": image + "-alias"})
    response = hub.spawn("hedy", options={"image": "evil/miner:latest"})
    assert response.status_code == 400
    assert "not allowed" in response.json()["message"]
    container = spawn_ready(hub, "hedy", options={"image": "Standard"})
    assert container.attrs["Config"]["Image"] == image
    hub.stop_server("hedy")


def test_choosing_an_image_is_refused_when_none_are_offered(hub):
    response = hub.spawn("ida", options={"image": "evil/miner:latest"})
    assert response.status_code == 400
    assert user_containers(hub, "ida") == []


def test_limits_and_hardening_are_on_the_container(hub):
    hub.set_overrides("joan", mem_limit="256M", cpu_limit=0.5)
    container = spawn_ready(hub, "joan")
    host = container.attrs["HostConfig"]
    assert host["Memory"] == 256 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] == 1024
    assert host["CapDrop"] == ["ALL"]
    assert container.exec_run(["id", "-u"]).output.strip() == b"1000"
    mounts = [m.get("Source", "") for m in container.attrs["Mounts"]]
    assert not any("docker.sock" in m for m in mounts)
    hub.stop_server("joan")


def test_files_in_the_user_volume_survive_stop_and_start(hub):
    hub.set_overrides("kay", volumes={"{prefix}-user-{username}": "/home/jovyan/work"})
    spawn_ready(hub, "kay")
    put = hub.user_server(
        "PUT", "kay", "api/contents/work/note.txt", json={"type": "file", "format": "text", "content": "kept"}
    )
    assert put.status_code in (200, 201), put.text
    hub.stop_server("kay")
    assert user_containers(hub, "kay") == []
    spawn_ready(hub, "kay")
    got = hub.user_server_get("kay", "api/contents/work/note.txt")
    assert got.status_code == 200 and got.json()["content"] == "kept"
    [volume] = hub.docker.volumes.list(filters={"label": ["hubfleet.hub=%s" % hub.hub_label, "hubfleet.user=kay"]})
    assert volume.name == "%s-user-kay" % hub.prefix
    hub.stop_server("kay")


def test_progress_events_reach_the_hub(hub):
    hub.create_user("lise")
    result = {}
    spawner = threading.Thread(target=lambda: result.update(response=hub.spawn("lise")))
    spawner.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        model = hub.server_model("lise")
        if model and model.get("pending") == "spawn":
            break
        time.sleep(0.05)
    events = hub.progress("lise")
    spawner.join()
    messages = [e.get("message", "") for e in events]
    assert any("Creating the container" in m for m in messages), messages
    assert any("Waiting for the server" in m for m in messages), messages
    progress = [e["progress"] for e in events if "progress" in e]
    assert progress == sorted(progress)
    assert events[-1].get("ready"), events
    hub.stop_server("lise")


def test_missing_image_with_pull_policy_never_fails_fast(hub):
    elapsed, message = failed_spawn(hub, "mary", image="hubfleet/no-such-image:1")
    assert elapsed < 10
    assert "is not present" in message and "hubfleet/no-such-image:1" in message


def test_failed_pull_fails_fast(hub):
    # A registry on a closed local port refuses at once.
    elapsed, message = failed_spawn(hub, "nora", image="127.0.0.1:9/nothing:1", pull_policy="always")
    assert elapsed < 10
    assert "Pulling image '127.0.0.1:9/nothing:1' failed" in message


def test_container_exiting_during_start_fails_fast_with_its_logs(hub):
    elapsed, message = failed_spawn(
        hub, "olga", cmd=["/bin/sh", "-c", "echo boom-from-the-test >&2; exit 3"]
    )
    assert elapsed < 10
    assert "exited with status 3" in message and "boom-from-the-test" in message


def test_wrong_network_fails_fast(hub):
    elapsed, message = failed_spawn(hub, "pia", network_name="hubfleet-no-such-network")
    assert elapsed < 10
    assert "hubfleet-no-such-network" in message and "does not exist" in message
    assert user_containers(hub, "pia") == []


def test_a_gpu_request_passes_the_filter_only_for_allowlisted_gpus_and_a_shortage_is_named(hub):
    """No GPU on this machine: the engine itself refuses to start a container asking the
    nvidia driver for a device, which shows the request got through the filter."""
    from conftest import TEST_GPU

    _, message = failed_spawn(hub, "gpu-ada", gpus=1, gpu_devices=[TEST_GPU])
    assert 'could not select device driver "nvidia"' in message, message
    _, message = failed_spawn(hub, "gpu-bob", gpus=1, gpu_devices=["GPU-not-allowed"])
    assert "GPU GPU-not-allowed is not allowlisted" in message, message
    elapsed, message = failed_spawn(hub, "gpu-cy", gpus=2, gpu_devices=[TEST_GPU])
    assert elapsed < 10
    assert "asks for 2 GPUs, but only 1 of this host's 1 is free" in message, message
    assert user_containers(hub, "gpu-cy") == []


async def test_the_default_image_shuts_down_an_idle_kernel_even_with_a_tab_open(hub):
    """A forgotten tab (an open kernel websocket) does not keep an idle kernel running."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    hub.set_overrides("kai", environment={"HUBFLEET_KERNEL_CULL_TIMEOUT": "4"})
    spawn_ready(hub, "kai")
    kernel = hub.user_server("POST", "kai", "api/kernels", json={})
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    url = hub.url.replace("http://", "ws://") + "/user/kai/api/kernels/%s/channels" % kernel_id
    tab = await websocket_connect(HTTPRequest(url, headers={"Authorization": "token %s" % hub.api_token}))
    try:
        started = time.monotonic()
        while time.monotonic() - started < 60:
            if kernel_id not in [k["id"] for k in hub.user_server_get("kai", "api/kernels").json()]:
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError("the idle kernel was still running 60 s later with a client connected")
        print("idle kernel with a connected client shut down %.1f s after its start (timeout 4 s)" % (time.monotonic() - started))
    finally:
        tab.close()
        hub.stop_server("kai")
