"""Burst benchmark: N users start their servers at once, measured three ways in one run.

    .venv/bin/python spawner/benchmarks/burst.py --users 50

1. raw Docker: the same N containers (the image's jupyterhub-singleuser, given a user
   token on a running hub as a spawner would) created and started straight through the
   Docker API with unbounded concurrency, each waited for until its server answers HTTP
   (``--raw-server lab``: plain ``jupyter lab`` instead, without JupyterHub);
2. dockerspawner 14 (installed from PyPI into its own virtualenv under .cache/) behind
   a real JupyterHub + CHP;
3. Hubfleet's DockerSpawner behind the same hub settings, straight to the Docker socket
   and again through the hub's Docker API filter (``--filter both``, the default; ``on``
   or ``off`` runs one), with the filter's CPU time and peak memory.

For each hub it prints the burst (total, p50, p95, max), stopping all servers at
once, Docker API requests per poll cycle with N servers running (counted by a proxy
in front of the Docker socket) and a hub restart with N servers running (time until
the hub serves and every server is ready again, and how many containers restarted).
Then the ratios Hubfleet/raw and Hubfleet/dockerspawner. This is a measurement to
run by hand, not a test: nothing here asserts a time.
"""

import argparse
import http.client
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

DOCKERSPAWNER_VENV = ROOT / ".cache" / "bench-dockerspawner-venv"
DOCKERSPAWNER_REQUIREMENTS = ["jupyterhub==6.1.1", "dockerspawner==14.0.0", "requests"]
BENCH_LABEL = "hubfleet.benchmark"


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary(latencies):
    return {
        "total": max(latencies) if latencies else float("nan"),
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
        "max": max(latencies) if latencies else float("nan"),
    }


# --- raw Docker --------------------------------------------------------------------------


def answers(port, path, host="127.0.0.1"):
    """Whether host:port answers ``GET path`` with 200. Plain http.client: 50
    threads asking ten times a second through requests cost a good part of a core,
    which the servers being measured would lose."""
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def singleuser_environment(name, token, api_url):
    """What a spawner gives a user's jupyterhub-singleuser (its token on a running hub)."""
    base_url = "/user/%s/" % name
    return {
        "JUPYTERHUB_API_TOKEN": token,
        "JUPYTERHUB_API_URL": api_url,
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-" + name,
        "JUPYTERHUB_USER": name,
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": base_url,
        "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888" + base_url,
        "JUPYTERHUB_OAUTH_CALLBACK_URL": base_url + "oauth_callback",
    }


def user_tokens(hub, names):
    """Create the users on a running hub; {name: a token of that user}."""
    hub.api("POST", "/users", json={"usernames": names}).raise_for_status()
    return {
        name: hub.api("POST", "/users/%s/tokens" % name, json={"note": "benchmark", "scopes": ["inherit"]}).json()["token"]
        for name in names
    }


def raw_phase(image, users, run_id, server="singleuser"):
    """The Docker limit: N containers of the image created and started straight through
    the Docker API, unbounded concurrency, each waited for until its server answers HTTP.

    With ``server="singleuser"`` they run the image's own command (jupyterhub-singleuser,
    what every spawner starts) with the environment a spawner gives it: a token of its
    user on a running hub, which the server asks once at start. No spawner, no proxy
    route, no hub bookkeeping. ``server="lab"`` runs a plain ``jupyter lab`` instead,
    without JupyterHub at all (what JupyterHub's own server process costs on top).
    """
    import docker

    from testbed.hub import Hub, bridge_gateway

    workdir = Path(tempfile.mkdtemp(prefix="hfbench-raw-"))
    hub = Hub(workdir, image=image, prefix=run_id)
    client = docker.from_env(max_pool_size=users + 4)  # a socket per concurrent request
    names = ["raw%03d" % i for i in range(users)]
    try:
        hub.start()
        tokens = user_tokens(hub, names)
        api_url = "http://%s:%d/hub/api" % (bridge_gateway(client), hub.hub_port)

        def one(name):
            base_url = "/user/%s/" % name
            if server == "lab":
                command = [
                    "jupyter", "lab", "--no-browser", "--ServerApp.ip=0.0.0.0", "--ServerApp.port=8888",
                    "--IdentityProvider.token=", "--ServerApp.base_url=" + base_url,
                ]
            else:
                command = None  # the image's CMD
            environment = singleuser_environment(name, tokens[name], api_url)
            started = time.monotonic()
            container = client.containers.run(
                image,
                command,
                detach=True,
                environment=environment,
                labels={"hubfleet.hub": run_id, BENCH_LABEL: run_id},
                ports={"8888/tcp": ("127.0.0.1", None)},
                name="hfbench-raw-%s-%s" % (run_id, name),
            )
            container.reload()
            port = container.attrs["NetworkSettings"]["Ports"]["8888/tcp"][0]["HostPort"]
            while not answers(port, base_url + "api"):
                time.sleep(0.1)
            return time.monotonic() - started

        burst_start = time.monotonic()
        with ThreadPoolExecutor(max_workers=users) as pool:
            latencies = list(pool.map(one, names))
        total = time.monotonic() - burst_start
        stop_start = time.monotonic()
        containers = client.containers.list(all=True, filters={"label": "%s=%s" % (BENCH_LABEL, run_id)})
        with ThreadPoolExecutor(max_workers=users) as pool:
            list(pool.map(lambda c: c.remove(force=True), containers))
        result = summary(latencies)
        result.update(total=total, stop=time.monotonic() - stop_start)
        return result
    finally:
        hub.stop()
        hub.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


# --- a hub phase (runs inside the virtualenv of the spawner being measured) -------------------


def process_usage(pid):
    """(CPU seconds, peak resident MiB) of a process, from /proc."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open("/proc/%d/status" % pid) as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return cpu, peak / 1024


def start_all(hub, users, timeout):
    """Ask for every user's server at once: (the answers' status codes, {user: seconds until ready})."""
    ready_at = {}
    failed = set()
    burst_start = time.monotonic()

    def spawn(user):
        code = hub.api("POST", "/users/%s/server" % user, timeout=600).status_code
        if code == 201:  # the hub answers 201 once the server is ready (within 10 s)
            ready_at[user] = time.monotonic() - burst_start
        elif code >= 400:  # refused or failed at once: not waited for
            failed.add(user)
        return code

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        codes = sorted(set(pool.map(spawn, users)))
    while len(ready_at) + len(failed) < len(users) and time.monotonic() - burst_start < timeout:
        now = time.monotonic() - burst_start
        for model in hub.api("GET", "/users", params={"state": "ready"}).json():
            ready_at.setdefault(model["name"], now)
        time.sleep(0.5)
    return codes, ready_at


def stop_all(hub, users, timeout):
    """Stop every user's server at once: seconds until the hub has none active."""
    stop_start = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        list(pool.map(lambda u: hub.api("DELETE", "/users/%s/server" % u, timeout=600), users))
    while time.monotonic() - stop_start < timeout:
        if not hub.api("GET", "/users", params={"state": "active"}).json():
            break
        time.sleep(0.2)
    return time.monotonic() - stop_start


def hub_phase(args):
    from testbed.docker_proxy import CountingDockerProxy
    from testbed.hub import Hub

    workdir = Path(tempfile.mkdtemp(prefix="hfbench-%s-" % args.spawner))
    filtered = args.spawner == "hubfleet" and args.filter == "on"
    run_id = "b" + os.urandom(3).hex()
    extra = [
        "c.Spawner.poll_interval = %d" % args.poll_interval,
        # The counting proxy sits in front of the filter (or the socket): it counts what the hub asks.
        "c.DockerSpawner.client_kwargs = {'base_url': 'unix://%s'}" % (workdir / "docker.sock"),
        "c.DockerSpawner.remove = True",
        "c.JupyterHub.concurrent_spawn_limit = 0",
        "c.JupyterHub.active_server_limit = 0",
        "c.JupyterHub.init_spawners_timeout = 60",
        # A burst larger than the machine takes longer than the test bed's timeouts
        # (100 servers on 2 cores: about 150 s); the benchmark measures, it does not give up.
        "c.Spawner.start_timeout = %d" % args.timeout,
        "c.Spawner.http_timeout = %d" % args.timeout,
    ]
    if args.volume:
        # A new user's first spawn with named volumes: Hubfleet prepares them (ownership.py).
        extra.append("c.DockerSpawner.volumes = %r" % dict(v.split("=", 1) for v in args.volume))
    if args.no_prepare and args.spawner == "hubfleet":
        extra.append("c.DockerSpawner.prepare_volumes = False")
    if args.spawner == "dockerspawner":
        extra += [
            "c.JupyterHub.spawner_class = 'dockerspawner.DockerSpawner'",
            # dockerspawner has no hubfleet labels: add ours so the benchmark can find its containers.
            "c.DockerSpawner.extra_create_kwargs = {'labels': {'hubfleet.hub': %r, 'hubfleet.benchmark': 'dockerspawner'}}"
            % run_id,
        ]
    hub = Hub(workdir, image=args.image, extra_config="\n".join(extra) + "\n", prefix=run_id,
              docker_filter=filtered)
    proxy = CountingDockerProxy(
        str(workdir / "docker.sock"), upstream=str(hub.filter_socket) if filtered else "/var/run/docker.sock"
    ).start()
    users = ["u%03d" % i for i in range(args.users)]
    result = {}
    try:
        hub.start()
        if filtered:
            filter_cpu_before = process_usage(hub.filter_process.pid)[0]
        hub.api("POST", "/users", json={"usernames": users}).raise_for_status()

        result["spawn_status_codes"], ready_at = start_all(hub, users, args.timeout)
        result["burst"] = summary(list(ready_at.values()))
        if filtered:
            result["filter_cpu_burst"] = process_usage(hub.filter_process.pid)[0] - filter_cpu_before
        result["ready"] = len(ready_at)
        failed = [u for u in users if u not in ready_at]
        result["failed"] = len(failed)

        # Docker API requests per poll cycle with every server running.
        proxy.count = 0
        time.sleep(args.poll_interval * args.poll_cycles)
        result["docker_requests_per_poll_cycle"] = proxy.count / args.poll_cycles

        # Hub restart with every server running.
        started_at = {c.id: c.attrs["State"]["StartedAt"] for c in hub.containers()}
        restart_start = time.monotonic()
        hub.restart()
        serving = time.monotonic() - restart_start
        while time.monotonic() - restart_start < args.timeout:
            ready = hub.api("GET", "/users", params={"state": "ready"}).json()
            if len(ready) >= len(ready_at):
                break
            time.sleep(0.2)
        result["restart"] = {
            "serving_after": serving,
            "all_ready_after": time.monotonic() - restart_start,
            "ready": len(ready),
            "containers_restarted": sum(
                1 for c in hub.containers() if started_at.get(c.id) != c.attrs["State"]["StartedAt"]
            ),
        }

        # Stop every server at once.
        result["stop"] = stop_all(hub, users, args.timeout)
        result["orphaned_containers"] = len(hub.containers())
        if filtered:
            result["filter_cpu_total"], result["filter_peak_mib"] = process_usage(hub.filter_process.pid)
    finally:
        hub.stop()
        hub.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    Path(args.json_out).write_text(json.dumps(result))


# --- orchestration -------------------------------------------------------------------------------


def ensure_dockerspawner_venv():
    python = DOCKERSPAWNER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(DOCKERSPAWNER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *DOCKERSPAWNER_REQUIREMENTS], check=True)
    return python


def run_hub_phase(python, spawner, args, filter_mode="off"):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [
            str(python), __file__, "--phase", "hub", "--spawner", spawner, "--filter", filter_mode, "--users", str(args.users),
            "--image", args.image, "--poll-interval", str(args.poll_interval),
            "--poll-cycles", str(args.poll_cycles), "--timeout", str(args.timeout), "--json-out", out.name,
        ]
        for volume in args.volume:
            command += ["--volume", volume]
        if args.no_prepare:
            command.append("--no-prepare")
        subprocess.run(command, check=True)
        return json.loads(Path(out.name).read_text())


def fmt(seconds):
    return "%7.1f s" % seconds


def report(n, raw, hubs):
    print("\n== Burst of %d servers (image %s) ==" % (n, ARGS.image))
    print("%-16s %9s %9s %9s %9s %9s" % ("", "total", "p50", "p95", "max", "stop all"))
    if raw:
        print("%-16s %s %s %s %s %s" % ("raw Docker" if ARGS.raw_server == "singleuser" else "raw lab", fmt(raw["total"]), fmt(raw["p50"]), fmt(raw["p95"]), fmt(raw["max"]), fmt(raw["stop"])))
    for name, r in hubs.items():
        b = r["burst"]
        print("%-16s %s %s %s %s %s   ready %d/%d" % (name, fmt(b["total"]), fmt(b["p50"]), fmt(b["p95"]), fmt(b["max"]), fmt(r["stop"]), r["ready"], n))
    print("\n%-14s %22s %18s %20s %14s" % ("", "Docker req/poll cycle", "restart: serving", "restart: all ready", "restarted"))
    for name, r in hubs.items():
        s = r["restart"]
        print("%-16s %22.1f %18s %20s %14d" % (name, r["docker_requests_per_poll_cycle"], fmt(s["serving_after"]), fmt(s["all_ready_after"]), s["containers_restarted"]))
    if "hubfleet+filter" in hubs:
        f = hubs["hubfleet+filter"]
        print("\nDocker API filter: %.2f CPU-s during the burst, %.2f CPU-s in the whole phase, peak memory %.1f MiB"
              % (f["filter_cpu_burst"], f["filter_cpu_total"], f["filter_peak_mib"]))
        if "hubfleet" in hubs:
            direct = hubs["hubfleet"]["burst"]["total"]
            print("Through the filter / straight to the socket: %.3fx (burst total %.1f s vs %.1f s)"
                  % (f["burst"]["total"] / direct, f["burst"]["total"], direct))
    if "hubfleet" in hubs:
        h = hubs["hubfleet"]["burst"]["total"]
        if raw:
            print("\nHubfleet / raw Docker:     %.2fx" % (h / raw["total"]))
        if "dockerspawner" in hubs:
            print("Hubfleet / dockerspawner:  %.2fx" % (h / hubs["dockerspawner"]["burst"]["total"]))
    for name, r in hubs.items():
        print("%s: failed spawns %d, orphaned containers after stop %d, spawn request codes %s"
              % (name, r["failed"], r["orphaned_containers"], r["spawn_status_codes"]))


# --- swarm mode: the three-node Docker-in-Docker swarm of the test bed ---------------------------

DOCKERSPAWNER_HUB_REPOSITORY = "hubfleet-bench/hub-dockerspawner"

# Run inside a container on the manager, on the overlay (the tasks' addresses are reachable only
# there): N services of the singleuser image created straight through the API at once, each
# waited for until its server answers; then all removed at once. Prints its figures as JSON.
# ``answers`` is burst.py's own (its source is prepended).
RAW_SERVICES_SCRIPT = r'''
import json, os, sys, time, http.client
from concurrent.futures import ThreadPoolExecutor
import docker
job = json.loads(os.environ["BENCH_JOB"])
client = docker.APIClient(base_url="unix:///var/run/docker.sock", version="auto", max_pool_size=len(job["env"]) + 4)

def one(name):
    base_url = "/user/%s/" % name
    env = ["%s=%s" % item for item in job["env"][name].items()]
    started = time.monotonic()
    task_template = {"ContainerSpec": {"Image": job["image"], "Env": env}, "RestartPolicy": {"Condition": "none"},
                     "Placement": {"Constraints": ["node.role==worker"]}, "Networks": [{"Target": job["overlay"]}]}
    service = client.create_service(task_template, name="%s-%s" % (job["run_id"], name), labels=job["labels"],
                                    endpoint_spec={"Mode": "dnsrr"})
    ip, delay = None, 0.2
    while ip is None:  # as a spawner follows its task: 0.2 s, then longer, at most 1 s
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
        for task in client.tasks(filters={"service": service["ID"]}):
            if task["Status"]["State"] != "running":
                continue
            for attachment in task.get("NetworksAttachments") or []:
                if attachment["Network"]["Spec"]["Name"] == job["overlay"] and attachment.get("Addresses"):
                    ip = attachment["Addresses"][0].split("/")[0]
    while not answers(8888, base_url + "api", ip):
        time.sleep(0.1)
    return time.monotonic() - started

with ThreadPoolExecutor(max_workers=len(job["env"])) as pool:
    latencies = list(pool.map(one, sorted(job["env"])))
services = client.services(filters={"label": "hubfleet.benchmark=%s" % job["run_id"]})
stop_start = time.monotonic()
with ThreadPoolExecutor(max_workers=len(services)) as pool:
    list(pool.map(lambda s: client.remove_service(s["ID"]), services))
print(json.dumps({"latencies": latencies, "stop": time.monotonic() - stop_start}))
'''


def dockerspawner_hub_image():
    """The hub image with dockerspawner 14 added (for its SwarmSpawner), built once per hub image."""
    from testbed.images import hub_image

    base = hub_image()
    ref = "%s:%s" % (DOCKERSPAWNER_HUB_REPOSITORY, base.rsplit(":", 1)[1][:24])
    if subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0:
        return ref
    dockerfile = "FROM %s\nUSER root\nRUN pip install %s\nUSER jupyterhub\n" % (base, DOCKERSPAWNER_REQUIREMENTS[1])
    subprocess.run(["docker", "build", "--quiet", "--tag", ref, "-"], input=dockerfile.encode(), check=True,
                   stdout=subprocess.DEVNULL)
    return ref


def engine_requests(swarm, since, until):
    """API requests the manager's dockerd served between two times (its --debug log)."""
    node = swarm.host.containers.get(swarm.manager)
    log = node.logs(since=int(since), until=int(until)).decode(errors="replace")
    return sum(1 for line in log.splitlines() if 'msg="Calling ' in line and "/_ping" not in line)


def running_tasks(hub):
    """{service name: running task id} of this hub's servers, from the manager."""
    tasks = {}
    for service in hub.docker.services.list():
        if not service.name.startswith(hub.prefix + "-") or service.name == hub.container_name:
            continue
        for task in service.tasks(filters={"desired-state": "running"}):
            if task["Status"]["State"] == "running":
                tasks[service.name] = task["ID"]
    return tasks


def swarm_raw_phase(swarm, image, users):
    """Raw services of the singleuser image (a Hubfleet hub only hands out the users' tokens)."""
    from testbed.swarm import SwarmHub

    run_id = "r" + os.urandom(3).hex()
    hub = SwarmHub(swarm, image, spawner_class="hubfleet-swarm", hub_label=run_id, docker_filter=False)
    names = ["raw%03d" % i for i in range(users)]
    try:
        hub.start()
        tokens = user_tokens(hub, names)
        api_url = "http://%s:8081/hub/api" % hub.overlay_ip
        job = {"env": {name: singleuser_environment(name, tokens[name], api_url) for name in names}, "image": image,
               "overlay": swarm.overlay, "run_id": run_id,
               "labels": {"hubfleet.hub": run_id, BENCH_LABEL: run_id}}
        output = hub.docker.containers.run(
            hub.image, ["python", "-c", inspect.getsource(answers) + RAW_SERVICES_SCRIPT], user="0", network=swarm.overlay, remove=True,
            environment={"BENCH_JOB": json.dumps(job)}, labels=hub.labels("benchmark"),
            volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}},
        )
        figures = json.loads(output.decode().strip().splitlines()[-1])
        result = summary(figures["latencies"])
        result["stop"] = figures["stop"]
        return result
    finally:
        for service in hub.docker.services.list(filters={"label": "%s=%s" % (BENCH_LABEL, run_id)}):
            service.remove()
        hub.stop()


def swarm_hub_phase(swarm, image, users, spawner):
    """One hub (Hubfleet's SwarmSpawner or dockerspawner 14's) with ``users`` servers at once."""
    from testbed.swarm import SwarmHub

    run_id = "b" + os.urandom(3).hex()
    extra = [
        "c.Spawner.poll_interval = %d" % ARGS.poll_interval,
        "c.JupyterHub.concurrent_spawn_limit = 0",
        "c.JupyterHub.active_server_limit = 0",
        "c.JupyterHub.init_spawners_timeout = 60",
        "c.Spawner.start_timeout = %d" % ARGS.timeout,
        "c.Spawner.http_timeout = %d" % ARGS.timeout,
        # Each node has the image; nobody looks on the manager.
        "c.SwarmSpawner.pull_policy = 'skip'",
    ]
    if spawner == "dockerspawner":
        extra += [
            "c.SwarmSpawner.network_name = %r" % swarm.overlay,
            "c.SwarmSpawner.image = %r" % image,
            "c.SwarmSpawner.prefix = %r" % run_id,
            # Hubfleet keeps servers off managers by itself (keep_off_managers).
            "c.SwarmSpawner.extra_placement_spec = {'constraints': ['node.role==worker']}",
        ]
    hub = SwarmHub(swarm, image, spawner_class="dockerspawner.SwarmSpawner" if spawner == "dockerspawner" else "hubfleet-swarm",
                   extra_config="\n".join(extra) + "\n", hub_label=run_id, docker_filter=False,
                   image=dockerspawner_hub_image() if spawner == "dockerspawner" else None)
    names = ["u%03d" % i for i in range(users)]
    result = {}
    try:
        hub.start()
        hub.api("POST", "/users", json={"usernames": names}).raise_for_status()
        result["spawn_status_codes"], ready_at = start_all(hub, names, ARGS.timeout)
        result["burst"] = summary(list(ready_at.values()))
        result["ready"] = len(ready_at)
        result["failed"] = users - len(ready_at)

        # Engine requests per poll cycle with every server running (the manager's dockerd log).
        time.sleep(ARGS.poll_interval)
        began = time.time()
        time.sleep(ARGS.poll_interval * ARGS.poll_cycles)
        result["docker_requests_per_poll_cycle"] = engine_requests(swarm, began, time.time()) / ARGS.poll_cycles

        # Hub restart with every server running.
        before = running_tasks(hub)
        restart_start = time.monotonic()
        hub.restart(timeout=ARGS.timeout)
        serving = time.monotonic() - restart_start
        ready = []
        while time.monotonic() - restart_start < ARGS.timeout:
            ready = hub.api("GET", "/users", params={"state": "ready"}).json()
            if len(ready) >= len(ready_at):
                break
            time.sleep(0.2)
        after = running_tasks(hub)
        result["restart"] = {
            "serving_after": serving,
            "all_ready_after": time.monotonic() - restart_start,
            "ready": len(ready),
            "containers_restarted": sum(1 for name, task_id in before.items() if after.get(name) != task_id),
        }

        result["stop"] = stop_all(hub, names, ARGS.timeout)
        result["orphaned_containers"] = len(running_tasks(hub))
    except Exception:
        print(hub.log_tail(80))
        raise
    finally:
        for service in hub.docker.services.list():
            if service.name.startswith(run_id + "-") and service.name != hub.container_name:
                service.remove()
        hub.stop()
    return result


def swarm_report(n, raw, hubs):
    print("\n== Swarm burst of %d servers (image %s, three-node Docker-in-Docker swarm, servers on 2 workers) =="
          % (n, ARGS.image))
    print("%-26s %9s %9s %9s %9s" % ("", "all", "p50", "max", "stop all"))
    if raw:
        print("%-26s %s %s %s %s" % ("raw services (API)", fmt(raw["total"]), fmt(raw["p50"]), fmt(raw["max"]), fmt(raw["stop"])))
    for name, r in hubs.items():
        b = r["burst"]
        print("%-26s %s %s %s %s   ready %d/%d" % (name, fmt(b["total"]), fmt(b["p50"]), fmt(b["max"]), fmt(r["stop"]), r["ready"], n))
    print("\n%-26s %22s %18s %20s %15s" % ("", "engine req/poll cycle", "restart: serving", "restart: all ready", "tasks restarted"))
    for name, r in hubs.items():
        s = r["restart"]
        print("%-26s %22.1f %18s %20s %15d" % (name, r["docker_requests_per_poll_cycle"], fmt(s["serving_after"]), fmt(s["all_ready_after"]), s["containers_restarted"]))
    h = hubs.get("hubfleet SwarmSpawner")
    if h and raw:
        print("\nHubfleet / raw services:       %.2fx (all), %.2fx (p50)" % (h["burst"]["total"] / raw["total"], h["burst"]["p50"] / raw["p50"]))
    if h and "dockerspawner 14 SwarmSpawner" in hubs:
        d = hubs["dockerspawner 14 SwarmSpawner"]["burst"]
        print("Hubfleet / dockerspawner 14:   %.2fx (all), %.2fx (p50)" % (h["burst"]["total"] / d["total"], h["burst"]["p50"] / d["p50"]))


def swarm_main():
    from testbed.images import singleuser_image
    from testbed.swarm import Swarm

    ARGS.image = ARGS.image or singleuser_image()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a stopped run removes its hubs and services
    if ARGS.swarm_id:
        swarm, own = Swarm.attach(ARGS.swarm_id), False
    else:
        # --debug: the manager's dockerd logs every API request, which the benchmark counts.
        swarm, own = Swarm(dockerd_args="--debug").start(workers=2), True
    try:
        # Every node: dockerspawner inspects the image on the hub's engine (the manager).
        swarm.load_image(ARGS.image)
        results = {}
        for n in [int(x) for x in ARGS.swarm_users.split(",")]:
            raw = swarm_raw_phase(swarm, ARGS.image, n) if "raw" not in ARGS.skip else None
            print(json.dumps({"raw services, %d" % n: raw}), flush=True)
            hubs = {}
            if "dockerspawner" not in ARGS.skip:
                hubs["dockerspawner 14 SwarmSpawner"] = swarm_hub_phase(swarm, ARGS.image, n, "dockerspawner")
            if "hubfleet" not in ARGS.skip:
                hubs["hubfleet SwarmSpawner"] = swarm_hub_phase(swarm, ARGS.image, n, "hubfleet")
            results[n] = {"raw": raw, **hubs}
            print(json.dumps(results[n], indent=1), flush=True)
            swarm_report(n, raw, hubs)
        for n, r in results.items():
            swarm_report(n, r["raw"], {k: v for k, v in r.items() if k != "raw"})
    finally:
        if own:
            swarm.stop()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--image", default="")
    parser.add_argument("--poll-interval", type=int, default=10)
    parser.add_argument("--poll-cycles", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--raw-server", default="singleuser", choices=["singleuser", "lab"],
                        help="what the raw containers run: the image's jupyterhub-singleuser (default) or plain jupyter lab")
    parser.add_argument("--filter", default="both", choices=["both", "on", "off"],
                        help="Hubfleet straight to the Docker socket (off), through the hub's Docker API filter (on), or both")
    parser.add_argument("--volume", action="append", default=[], metavar="TEMPLATE=MOUNT",
                        help="a named volume per user, e.g. '{prefix}-user-{username}=/home/jovyan'")
    parser.add_argument("--no-prepare", action="store_true", help="Hubfleet without its ownership step")
    parser.add_argument("--skip", action="append", default=[], choices=["raw", "dockerspawner", "hubfleet"])
    parser.add_argument("--swarm", action="store_true",
                        help="swarm mode: the SwarmSpawners and raw services on the test bed's three-node swarm")
    parser.add_argument("--swarm-users", default="20,50", help="swarm mode: the burst sizes, one after the other")
    parser.add_argument("--swarm-id", default="", help="swarm mode: a swarm kept by `python -m testbed.swarm up` "
                        "(started with dockerd --debug, for the request count); default: a new one")
    parser.add_argument("--phase", default="all", choices=["all", "hub"], help=argparse.SUPPRESS)
    parser.add_argument("--spawner", default="hubfleet", help=argparse.SUPPRESS)
    parser.add_argument("--json-out", default="", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.phase == "hub":
        hub_phase(ARGS)
        sys.exit(0)
    if ARGS.swarm:
        swarm_main()
        sys.exit(0)
    from testbed.images import singleuser_image

    ARGS.image = ARGS.image or singleuser_image()
    raw = raw_phase(ARGS.image, ARGS.users, "r" + os.urandom(3).hex(), ARGS.raw_server) if "raw" not in ARGS.skip else None
    hubs = {}
    if "dockerspawner" not in ARGS.skip:
        hubs["dockerspawner"] = run_hub_phase(ensure_dockerspawner_venv(), "dockerspawner", ARGS)
    if "hubfleet" not in ARGS.skip:
        if ARGS.filter in ("both", "off"):
            hubs["hubfleet"] = run_hub_phase(sys.executable, "hubfleet", ARGS, "off")
        if ARGS.filter in ("both", "on"):
            hubs["hubfleet+filter"] = run_hub_phase(sys.executable, "hubfleet", ARGS, "on")
    print(json.dumps({"raw": raw, **hubs}, indent=1))
    report(ARGS.users, raw, hubs)
