"""A real JupyterHub with a real configurable-http-proxy, for integration tests.

    hub = Hub(workdir, image="hubfleet/singleuser:…", extra_config="c.DockerSpawner.mem_limit = '1G'")
    hub.start()
    hub.api("POST", "/users/alice/server")
    hub.wait_ready("alice")
    hub.restart()
    hub.stop()

The hub runs as a child process (its PID is the only process it ends); it starts
CHP itself from the npm package testbed/bootstrap.sh installs. By default it reaches
the engine only through the hub's Docker API filter (``hubfleet_spawner.docker_filter``,
another child process on a socket in ``workdir``): ``DOCKER_HOST`` points at it, as in a
deployment; ``docker_filter=False`` lets the hub use the engine's socket directly. User containers reach
the hub's API on the Docker bridge gateway address. Every Docker object is labelled
``hubfleet.hub=<hub_label>``, unique per Hub, and ``cleanup()`` removes them by label.
"""

import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import requests

ROOT = Path(__file__).resolve().parent.parent
CHP = ROOT / ".cache" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bridge_gateway(client, network="bridge"):
    """The host's address on a Docker network: where containers reach the hub."""
    config = client.networks.get(network).attrs["IPAM"]["Config"][0]
    if config.get("Gateway"):
        return config["Gateway"]
    # The default bridge often lists only its subnet; its gateway is the first address.
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


# Where this hub listens and keeps its state: differs between a hub process on this
# machine (Hub) and a hub container in a swarm (testbed.swarm.SwarmHub).
PROCESS_CONFIG_TEMPLATE = """\
import json, os
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {proxy_port}
c.JupyterHub.hub_ip = {hub_ip!r}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.auth_token = {proxy_token!r}
c.JupyterHub.db_url = "sqlite:///" + {db!r}
c.JupyterHub.cookie_secret_file = {cookie!r}
c.JupyterHub.pid_file = {pidfile!r}
"""

# What every test hub shares: users, the test service's token, the spawner, overrides.
COMMON_CONFIG_TEMPLATE = """\
c.JupyterHub.cleanup_servers = False
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 5
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"admin"}}
c.JupyterHub.services = [{{"name": "testbed", "api_token": {api_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "testbed", "scopes": ["admin:users", "admin:servers", "admin:groups", "access:servers", "read:users", "tokens"], "services": ["testbed"]}}]
c.JupyterHub.spawner_class = {spawner_class!r}
import hubfleet_spawner  # noqa: E402
c.JupyterHub.template_paths = [hubfleet_spawner.TEMPLATES_DIR]
c.Spawner.start_timeout = 120
c.Spawner.poll_interval = 3
c.Spawner.http_timeout = 60
c.DockerSpawner.image = {image!r}
c.DockerSpawner.pull_policy = "never"
c.DockerSpawner.prefix = {prefix!r}
c.DockerSpawner.hub_label = {hub_label!r}

# Per-user test settings: {{username: {{trait: value}}}} read at every spawn.
def _apply_overrides(spawner):
    path = {overrides!r}
    if os.path.exists(path):
        with open(path) as f:
            for key, value in json.load(f).get(spawner.user.name, {{}}).items():
                setattr(spawner, key, value)
c.Spawner.pre_spawn_hook = _apply_overrides
"""

CONFIG_TEMPLATE = PROCESS_CONFIG_TEMPLATE + COMMON_CONFIG_TEMPLATE


def _end(process, timeout):
    """SIGTERM a child process we started, SIGKILL after ``timeout``."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class HubAPI:
    """The REST helpers of a test hub: needs ``url``, ``api_token`` and ``log_tail()``."""

    @property
    def api_url(self):
        return self.url + "/hub/api"

    def api(self, method, path, **kwargs):
        headers = kwargs.pop("headers", {})
        headers.setdefault("Authorization", "token %s" % self.api_token)
        kwargs.setdefault("timeout", 30)
        return requests.request(method, self.api_url + path, headers=headers, **kwargs)

    def create_user(self, name):
        r = self.api("POST", "/users/%s" % name)
        if r.status_code not in (201, 409):
            raise RuntimeError("creating user %s: %s %s" % (name, r.status_code, r.text))

    def server_path(self, user, server=""):
        return "/users/%s/servers/%s" % (user, server) if server else "/users/%s/server" % user

    def spawn(self, user, server="", options=None):
        """Ask for a server; returns the REST response (201/202, or the error)."""
        self.create_user(user)
        return self.api("POST", self.server_path(user, server), json=options or {})

    def server_model(self, user, server=""):
        model = self.api("GET", "/users/%s" % user).json()
        return (model.get("servers") or {}).get(server)

    def wait_ready(self, user, server="", timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.server_model(user, server)
            if model and model.get("ready"):
                return model
            time.sleep(0.25)
        raise TimeoutError("server %s/%s not ready in %ss:\n%s" % (user, server, timeout, self.log_tail()))

    def wait_stopped(self, user, server="", timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server_model(user, server) is None:
                return
            time.sleep(0.25)
        raise TimeoutError("server %s/%s still there after %ss" % (user, server, timeout))

    def stop_server(self, user, server=""):
        r = self.api("DELETE", self.server_path(user, server))
        if r.status_code not in (202, 204, 400):
            raise RuntimeError("stopping %s/%s: %s %s" % (user, server, r.status_code, r.text))
        self.wait_stopped(user, server)

    def progress(self, user, server="", timeout=120):
        """The spawn's progress events, read from the hub's event stream until it ends."""
        path = "/users/%s/servers/%s/progress" % (user, server) if server else "/users/%s/server/progress" % user
        events = []
        with self.api("GET", path, stream=True, timeout=timeout) as r:
            r.raise_for_status()
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[len("data:"):])
                    events.append(event)
                    if event.get("ready") or event.get("failed"):
                        break
        return events

    def user_server(self, method, user, path, server="", **kwargs):
        """Call a path of the user's server through the proxy, with the service token."""
        base = "/user/%s/%s" % (user, server + "/" if server else "")
        kwargs.setdefault("timeout", 30)
        return requests.request(
            method,
            self.url + base + path.lstrip("/"),
            headers={"Authorization": "token %s" % self.api_token},
            **kwargs,
        )

    def user_server_get(self, user, path, server=""):
        return self.user_server("GET", user, path, server)


class Hub(HubAPI):
    """One JupyterHub process with its proxy, in ``workdir``."""

    def __init__(self, workdir, image, extra_config="", prefix=None, docker_filter=True, filter_policy=None):
        """``filter_policy``: settings of the Docker API filter over the test bed's own
        (this hub's label, the bridge network, binds under the temporary directory,
        pulls allowed, no memory or CPU limit required: the test hub sets none)."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.image = image
        self.extra_config = extra_config
        self.hub_label = prefix or "hft" + secrets.token_hex(3)
        self.prefix = self.hub_label
        self.docker = docker.from_env()
        self.proxy_port = free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.api_token = secrets.token_hex(16)
        self.proxy_token = secrets.token_hex(16)
        self.process = None
        self.overrides = {}
        self.docker_filter = docker_filter
        self.filter_policy = filter_policy or {}
        self.filter_process = None
        self.filter_socket = self.workdir / "docker-filter.sock"

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.proxy_port

    def write_config(self):
        config = CONFIG_TEMPLATE.format(
            proxy_port=self.proxy_port,
            hub_ip=bridge_gateway(self.docker),
            hub_port=self.hub_port,
            proxy_api_port=self.proxy_api_port,
            chp=str(CHP),
            proxy_token=self.proxy_token,
            db=str(self.workdir / "jupyterhub.sqlite"),
            cookie=str(self.workdir / "cookie_secret"),
            pidfile=str(self.workdir / "jupyterhub.pid"),
            api_token=self.api_token,
            spawner_class="hubfleet-docker",
            image=self.image,
            prefix=self.prefix,
            hub_label=self.hub_label,
            overrides=str(self.workdir / "overrides.json"),
        )
        (self.workdir / "jupyterhub_config.py").write_text(config + "\n" + self.extra_config + "\n")

    def set_overrides(self, username, **traits):
        """Spawner trait values for one user's next spawns (applied by pre_spawn_hook)."""
        self.overrides[username] = traits
        (self.workdir / "overrides.json").write_text(json.dumps(self.overrides))

    def policy(self):
        """The Docker API filter's policy for this hub."""
        # Imported here: the benchmark runs this module in dockerspawner's virtualenv too.
        from hubfleet_spawner.docker_filter.rules import Policy

        settings = {
            "hub": self.hub_label,
            "networks": ["bridge"],
            "bind_dirs": [os.path.realpath(tempfile.gettempdir())],
            "allow_pull": True,
            "require_memory_limit": False,
            "require_cpu_limit": False,
        }
        settings.update(self.filter_policy)
        return Policy(**settings)

    def start_filter(self, timeout=10):
        """Start the Docker API filter (once; it outlives hub restarts)."""
        if self.filter_process is not None and self.filter_process.poll() is None:
            return
        config = self.workdir / "docker-filter.json"
        config.write_text(json.dumps(self.policy().to_dict()))
        if self.filter_socket.exists():
            self.filter_socket.unlink()
        self.filter_process = subprocess.Popen(
            [sys.executable, "-m", "hubfleet_spawner.docker_filter", "--config", str(config),
             "--listen", str(self.filter_socket)],
            stdout=open(self.workdir / "docker-filter.log", "ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not self.filter_socket.exists():
            if self.filter_process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Docker API filter did not start:\n" + self.filter_log())
            time.sleep(0.05)

    def filter_log(self, lines=40):
        path = self.workdir / "docker-filter.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def start(self, timeout=60):
        if not CHP.exists():
            raise RuntimeError("configurable-http-proxy is missing: run testbed/bootstrap.sh")
        self.write_config()
        log = open(self.workdir / "jupyterhub.log", "ab")
        env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        if self.docker_filter:
            self.start_filter()
            env["DOCKER_HOST"] = "unix://%s" % self.filter_socket
        self.process = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "jupyterhub"), "-f", "jupyterhub_config.py"],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("JupyterHub exited:\n" + self.log_tail())
            try:
                if requests.get(self.api_url, timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("JupyterHub did not answer within %ss:\n%s" % (timeout, self.log_tail()))

    def stop(self, timeout=30):
        """End the hub process we started (and with it the proxy it started), then the filter."""
        self.stop_hub(timeout)
        _end(self.filter_process, timeout)

    def stop_hub(self, timeout=30):
        _end(self.process, timeout)

    def kill_hub(self):
        """SIGKILL the hub process, as a crash or an OOM kill of its container would; its
        proxy keeps running (the next start takes it over from its pid file)."""
        self.process.kill()
        self.process.wait()

    def restart(self):
        """Restart the hub process (the filter keeps running, as its container would)."""
        self.stop_hub()
        return self.start()

    def log_tail(self, lines=60):
        path = self.workdir / "jupyterhub.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # --- Docker objects ---------------------------------------------------------------

    def containers(self, **label_values):
        """This hub's containers with these label values, fully inspected.

        A container removed between the listing and its inspection (the hub replacing a
        stale one, a spawn failing) is left out instead of raising NotFound.
        """
        filters = ["hubfleet.hub=%s" % self.hub_label] + ["%s=%s" % kv for kv in label_values.items()]
        found = []
        for listed in self.docker.containers.list(all=True, sparse=True, filters={"label": filters}):
            try:
                found.append(self.docker.containers.get(listed.id))
            except docker.errors.NotFound:
                continue
        return found

    def cleanup(self):
        """Remove every container and volume labelled for this hub."""
        label = "hubfleet.hub=%s" % self.hub_label
        for container in self.docker.containers.list(all=True, filters={"label": label}):
            container.remove(force=True)
        for volume in self.docker.volumes.list(filters={"label": label}):
            volume.remove(force=True)

    def __enter__(self):
        """``with Hub(...) as hub:`` starts it; leaving stops it and removes its objects."""
        try:
            return self.start()
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc):
        self.stop()
        self.cleanup()
