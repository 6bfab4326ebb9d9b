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
import json
import os
import shutil
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


def answers(port, path):
    """Whether 127.0.0.1:port answers ``GET path`` with 200. Plain http.client: 50
    threads asking ten times a second through requests cost a good part of a core,
    which the servers being measured would lose."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


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
        hub.api("POST", "/users", json={"usernames": names}).raise_for_status()
        tokens = {
            name: hub.api("POST", "/users/%s/tokens" % name, json={"note": "benchmark", "scopes": ["inherit"]}).json()["token"]
            for name in names
        }
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
            environment = {
                "JUPYTERHUB_API_TOKEN": tokens[name],
                "JUPYTERHUB_API_URL": api_url,
                "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-" + name,
                "JUPYTERHUB_USER": name,
                "JUPYTERHUB_BASE_URL": "/",
                "JUPYTERHUB_SERVICE_PREFIX": base_url,
                "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888" + base_url,
                "JUPYTERHUB_OAUTH_CALLBACK_URL": base_url + "oauth_callback",
            }
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

        ready_at = {}
        burst_start = time.monotonic()

        def spawn(user):
            code = hub.api("POST", "/users/%s/server" % user, timeout=600).status_code
            if code == 201:  # the hub answers 201 once the server is ready (within 10 s)
                ready_at[user] = time.monotonic() - burst_start
            return code

        with ThreadPoolExecutor(max_workers=len(users)) as pool:
            result["spawn_status_codes"] = sorted(set(pool.map(spawn, users)))
        while len(ready_at) < len(users) and time.monotonic() - burst_start < args.timeout:
            now = time.monotonic() - burst_start
            for model in hub.api("GET", "/users", params={"state": "ready"}).json():
                ready_at.setdefault(model["name"], now)
            time.sleep(0.5)
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
        stop_start = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(users)) as pool:
            list(pool.map(lambda u: hub.api("DELETE", "/users/%s/server" % u, timeout=600), users))
        while time.monotonic() - stop_start < args.timeout:
            if not hub.api("GET", "/users", params={"state": "active"}).json():
                break
            time.sleep(0.2)
        result["stop"] = time.monotonic() - stop_start
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
    parser.add_argument("--phase", default="all", choices=["all", "hub"], help=argparse.SUPPRESS)
    parser.add_argument("--spawner", default="hubfleet", help=argparse.SUPPRESS)
    parser.add_argument("--json-out", default="", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    ARGS = parse_args()
    if ARGS.phase == "hub":
        hub_phase(ARGS)
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
