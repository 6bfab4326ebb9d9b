"""Check the fleet deployed by molecule/swarm, from this machine, through the REST API.

    verify_fleet.py spawn       --manager NODE --hub NAME --port PORT --state FILE --pool-node NODE --pool-profile LABEL
    verify_fleet.py drained     --manager NODE --hub NAME --port PORT --state FILE --drained NODE --added NODE
    verify_fleet.py hub-restart --manager NODE --hub NAME --port PORT --state FILE
    verify_fleet.py stop-all    --manager NODE --hub NAME --port PORT --state FILE
    verify_fleet.py filter      --manager NODE --hub NAME --port PORT --state FILE

`spawn`: 10 users start servers at once; each runs as a service task on a worker labelled
hubfleet.role=user and answers through the hub's proxy; a user choosing the pool profile
lands on the pool's node. `drained` (after site.yml ran again with a host added to the
workers and a worker paused): the added host is a ready worker labelled hubfleet.role=user;
the servers running on the paused worker still run, unmoved; new servers go elsewhere,
some to the added host (the emptiest node), and answer through the proxy. `hub-restart`: the
hub's container is killed, the swarm starts a new one, and the database (users, the API
token, the running servers) is still there. `stop-all`: stopping every server removes
every user service. `filter`: the hub's task runs as uid 901 without capabilities or the
Docker socket, its DOCKER_HOST is the Docker API filter, and from inside it what the hub may
not ask the manager's engine (services, tasks, nodes, networks, the swarm) is refused with
403 naming the rule (testbed/swarm_filter_probe.py, the same probe as the test bed's swarm
suite), while what the SwarmSpawner needs works and lists show only this hub's services.

The swarm is reached through `docker exec` into the manager; the hub at the manager's
address on the test network (nothing else is contacted). Exits non-zero with a message on
the first failed check.
"""

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from testbed import swarm_filter_probe  # noqa: E402

USERS = ["fleet%02d" % i for i in range(1, 11)]
POOL_USER = "fleetpool"
LATE_USERS = ["fleetlate1", "fleetlate2", "fleetlate3"]


def check(condition, message):
    if not condition:
        sys.exit("FAILED: " + message)
    print("ok:", message, flush=True)


class Fleet:
    def __init__(self, args):
        self.args = args
        self.manager = args.manager
        self.hub = args.hub
        self.state_file = args.state
        try:
            with open(self.state_file) as f:
                self.state = json.load(f)
        except FileNotFoundError:
            self.state = {}
        self.url = "http://%s:%d" % (self.manager_ip(), args.port)

    def save(self):
        with open(self.state_file, "w") as f:
            json.dump(self.state, f, indent=2)

    # --- the swarm, through the manager's engine -------------------------------------
    def docker(self, *args, check_rc=True):
        result = subprocess.run(["docker", "exec", self.manager, "docker"] + list(args),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
        if check_rc and result.returncode != 0:
            sys.exit("FAILED: docker %s on %s: %s" % (" ".join(args), self.manager, result.stderr.strip()))
        return result.stdout.strip()

    def manager_ip(self):
        out = subprocess.run(["docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}", self.manager],
                             check=True, stdout=subprocess.PIPE, text=True).stdout
        return next(iter(json.loads(out).values()))["IPAddress"]

    def hub_container(self):
        ids = self.docker("ps", "--quiet", "--filter", "label=com.docker.swarm.service.name=%s-hub" % self.hub,
                          "--filter", "status=running").split()
        return ids[0] if ids else None

    def user_services(self):
        out = self.docker("service", "ls", "--filter", "label=hubfleet.hub=" + self.hub,
                          "--filter", "label=hubfleet.kind=user-server", "--format", "{{.ID}} {{.Name}}")
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def user_task(self, user):
        """(node hostname, task id) of the user's running server task."""
        service = self.docker("service", "ls", "--quiet", "--filter", "label=hubfleet.hub=" + self.hub,
                              "--filter", "label=hubfleet.user=" + user)
        check(len(service.split()) == 1, "%s has exactly one service (%s)" % (user, service.split()))
        out = self.docker("service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}} {{.ID}}",
                          service.split()[0])
        tasks = [line.split() for line in out.splitlines() if line]
        check(len(tasks) == 1, "%s's service has one running task (%s)" % (user, tasks))
        return tasks[0][0], tasks[0][1]

    def node_facts(self, node):
        out = self.docker("node", "inspect", "--format", "{{json .Spec}}", node)
        return json.loads(out)

    # --- the hub's REST API and proxy -------------------------------------------------
    def api(self, method, path, **kwargs):
        return requests.request(method, self.url + "/hub/api" + path,
                                headers={"Authorization": "token " + self.state["token"]}, timeout=60, **kwargs)

    def admin_token(self):
        container = self.hub_container()
        check(container is not None, "the hub service has a running container")
        out = self.docker("exec", container, "jupyterhub", "token", "-f", "/etc/jupyterhub/jupyterhub_config.py", "admin")
        return out.splitlines()[-1].strip()

    def spawn(self, user, options=None):
        response = self.api("POST", "/users/%s/server" % user, json=options or {})
        check(response.status_code in (201, 202),
              "spawn of %s accepted (%s %s)" % (user, response.status_code, response.text[:200]))

    def wait_ready(self, user, timeout=420):
        deadline = time.time() + timeout
        while time.time() < deadline:
            model = self.api("GET", "/users/%s" % user).json()
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                return server
            if not model.get("pending") and not server:
                sys.exit("FAILED: the server of %s stopped or failed to start" % user)
            time.sleep(1)
        sys.exit("FAILED: server of %s not ready within %ss" % (user, timeout))

    def answers_through_proxy(self, user):
        response = requests.get(self.url + "/user/%s/api" % user,
                                headers={"Authorization": "token " + self.state["token"]}, timeout=60)
        return response.status_code == 200 and "version" in response.json()

    def spawn_all(self, users, options=None):
        began = time.time()
        with ThreadPoolExecutor(max_workers=len(users)) as pool:
            list(pool.map(lambda user: self.spawn(user, options), users))
            list(pool.map(self.wait_ready, users))
        return time.time() - began


def run_spawn(fleet, args):
    fleet.state["token"] = fleet.admin_token()
    fleet.save()
    response = fleet.api("POST", "/users", json={"usernames": USERS + [POOL_USER] + LATE_USERS})
    check(response.status_code in (201, 409), "users created (%s)" % response.status_code)

    took = fleet.spawn_all(USERS)
    check(True, "%d servers started at once in %.1fs" % (len(USERS), took))
    placed = {}
    for user in USERS:
        node, task = fleet.user_task(user)
        spec = fleet.node_facts(node)
        check(spec["Role"] == "worker" and spec.get("Labels", {}).get("hubfleet.role") == "user",
              "%s runs on %s, a worker labelled hubfleet.role=user" % (user, node))
        check(fleet.answers_through_proxy(user), "%s's server answers through the proxy" % user)
        placed[user] = {"node": node, "task": task}
    check(len({p["node"] for p in placed.values()}) > 1, "servers are spread over the workers")
    fleet.state["placed"] = placed
    fleet.save()

    fleet.spawn_all([POOL_USER], {"profile": args.pool_profile})
    node, _task = fleet.user_task(POOL_USER)
    check(node == args.pool_node,
          "the %r profile runs on the pool's node %s (on %s)" % (args.pool_profile, args.pool_node, node))
    check(fleet.answers_through_proxy(POOL_USER), "the pool server answers through the proxy")


def run_drained(fleet, args):
    listing = fleet.docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}")
    nodes = dict(line.split(" ", 1) for line in listing.splitlines())
    check(nodes.get(args.added) == "Ready", "the added host %s joined the swarm (%s)" % (args.added, nodes))
    spec = fleet.node_facts(args.added)
    check(spec["Role"] == "worker" and spec.get("Labels", {}).get("hubfleet.role") == "user",
          "%s is a worker labelled hubfleet.role=user" % args.added)
    check(fleet.node_facts(args.drained)["Availability"] == "pause",
          "site.yml set %s's availability to pause" % args.drained)
    kept = {u: p for u, p in fleet.state["placed"].items() if p["node"] == args.drained}
    check(len(kept) > 0, "%d servers ran on %s before" % (len(kept), args.drained))
    for user, before in kept.items():
        node, task = fleet.user_task(user)
        check((node, task) == (before["node"], before["task"]),
              "%s still runs in the same task on %s" % (user, args.drained))
        check(fleet.answers_through_proxy(user), "%s's server still answers" % user)
    fleet.spawn_all(LATE_USERS)
    late_nodes = set()
    for user in LATE_USERS:
        node, _task = fleet.user_task(user)
        check(node != args.drained, "new server of %s went to %s, not the paused node" % (user, node))
        check(fleet.answers_through_proxy(user), "%s's server answers through the proxy" % user)
        late_nodes.add(node)
    check(args.added in late_nodes, "new servers run on the added host too (%s)" % sorted(late_nodes))


def run_hub_restart(fleet, args):
    before = fleet.hub_container()
    check(before is not None, "the hub runs")
    users_before = sorted(u["name"] for u in fleet.api("GET", "/users").json())
    fleet.docker("kill", before)
    deadline = time.time() + 180
    after = None
    while time.time() < deadline:
        after = fleet.hub_container()
        if after and after != before:
            try:
                if requests.get(fleet.url + "/hub/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
        time.sleep(1)
    else:
        sys.exit("FAILED: the swarm did not bring the hub back within 180s")
    check(True, "the swarm replaced the killed hub container (%s -> %s)" % (before[:12], after[:12]))
    response = fleet.api("GET", "/users")
    check(response.status_code == 200, "the API token from before the restart still works (database kept)")
    users_after = sorted(u["name"] for u in response.json())
    check(users_after == users_before, "all %d users are still there" % len(users_after))
    user = USERS[0]
    deadline = time.time() + 120
    while time.time() < deadline and not fleet.answers_through_proxy(user):
        time.sleep(1)
    check(fleet.answers_through_proxy(user), "%s's server, started before the restart, answers through the new proxy" % user)


def run_stop_all(fleet, args):
    running = [u["name"] for u in fleet.api("GET", "/users").json() if u.get("servers")]
    check(len(running) > 0, "%d users have servers" % len(running))
    for user in running:
        response = fleet.api("DELETE", "/users/%s/server" % user)
        check(response.status_code in (202, 204), "stop of %s accepted" % user)
    deadline = time.time() + 180
    while time.time() < deadline and fleet.user_services():
        time.sleep(1)
    check(not fleet.user_services(), "every user service is gone (%s)" % sorted(fleet.user_services().values()))


def run_filter(fleet, args):
    hub = fleet.hub_container()
    check(hub is not None, "the hub runs")
    info = json.loads(fleet.docker("inspect", hub))[0]
    check(info["Config"]["User"] == "901:901", "the hub runs as uid 901 (%s)" % info["Config"]["User"])
    check(info["HostConfig"]["CapDrop"] == ["ALL"], "the hub has every capability dropped")
    sources = [m.get("Source", "") for m in info["Mounts"]]
    check(not any(s.endswith("docker.sock") for s in sources), "the hub does not mount the Docker socket (%s)" % sources)
    check("DOCKER_HOST=unix:///run/hubfleet-filter/docker.sock" in info["Config"]["Env"],
          "the hub's DOCKER_HOST is the Docker API filter's socket")
    docker_filter = json.loads(fleet.docker("inspect", "%s-docker-filter" % fleet.hub))[0]
    check(docker_filter["HostConfig"]["NetworkMode"] == "none" and docker_filter["HostConfig"]["CapDrop"] == ["ALL"]
          and not docker_filter["Config"]["User"].startswith("0"),
          "the filter container has no network, no capabilities and a non-root user")
    image = info["Config"]["Image"]
    made = {}
    try:
        for role, hub_label in (("own", fleet.hub), ("other", fleet.hub + "-other"), ("unlabelled", None)):
            labels = ["--label", "hubfleet.test=molecule-swarm"] + (["--label", "hubfleet.hub=" + hub_label] if hub_label else [])
            made[role] = fleet.docker("service", "create", "--detach", "--quiet", "--replicas", "0", "--no-resolve-image",
                                      "--name", "%s-probe-%s" % (fleet.hub, role), *labels, image, "sleep", "60")
        availability = fleet.docker("node", "ls", "--format", "{{.ID}} {{.Availability}}")
        arguments = {"hub": fleet.hub, "image": image, "network": fleet.hub, "own_service": made["own"],
                     "other_service": made["other"], "unlabelled_service": made["unlabelled"]}
        done = subprocess.run(["docker", "exec", "-i", fleet.manager, "docker", "exec", "-i", hub, "python", "-",
                               json.dumps(arguments)], input=Path(swarm_filter_probe.__file__).read_text(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
        check(done.returncode == 0, "the probe ran inside the hub (%s)" % done.stderr.strip()[-2000:])
        result = json.loads(done.stdout)
        for case, rule in sorted(swarm_filter_probe.EXPECTED_RULES.items()):
            status, message = result["refusals"][case]
            check(status == 403 and "(rule %s)" % rule in message, "refused: %s (%s %s)" % (case, status, message))
        check(swarm_filter_probe.check(result, made) == [], "the hub lists only its services, reads nodes and info (%s)"
              % result["allowed"])
        check(fleet.docker("node", "ls", "--format", "{{.ID}} {{.Availability}}") == availability,
              "no node changed")
        # By name: `service ls` prints ids cut to 12 characters, `service create` the whole id.
        check(sorted(fleet.docker("service", "ls", "--format", "{{.Name}}", "--filter", "name=%s-probe-" % fleet.hub).split())
              == sorted("%s-probe-%s" % (fleet.hub, role) for role in made), "the refused removals removed nothing")
    finally:
        for ident in made.values():
            fleet.docker("service", "rm", ident, check_rc=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["spawn", "filter", "drained", "hub-restart", "stop-all"])
    parser.add_argument("--manager", required=True)
    parser.add_argument("--hub", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--pool-node")
    parser.add_argument("--pool-profile")
    parser.add_argument("--drained")
    parser.add_argument("--added")
    args = parser.parse_args()
    fleet = Fleet(args)
    {"spawn": run_spawn, "filter": run_filter, "drained": run_drained, "hub-restart": run_hub_restart, "stop-all": run_stop_all}[args.step](
        fleet, args)


if __name__ == "__main__":
    main()
