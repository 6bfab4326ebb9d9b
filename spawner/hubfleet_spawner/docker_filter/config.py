"""The filter's policy and the hub's configuration: refuse at start what the filter would refuse.

``check_hub_config(c, policy)`` runs at the end of jupyterhub_config.py. Every static
``extra_create_kwargs``, ``extra_host_config`` and swarm ``extra_*_spec`` is put into
the request the spawner would send and judged by the filter's rules; settings the
policy does not cover (a ``post_start_cmd`` other than the filter's exec command, ``allow_root``, a pull policy
that pulls, ``gpu_devices`` the filter does not allowlist) are refused too. The error names the option, so the
hub fails at start with the reason, not at a user's spawn. Callables can only be judged at spawn time,
by the filter itself.
"""

from ..labels import KIND_USER_SERVER, object_labels
from .rules import Policy, Refused, check_container_create, check_service_create, exec_argv

SPAWNER_SECTIONS = ("Spawner", "DockerSpawner", "SwarmSpawner", "SystemUserSpawner")


class HubConfigError(ValueError):
    """A hub setting the Docker API filter would refuse."""


def _sections(c):
    for name in SPAWNER_SECTIONS:
        if name in c:
            yield name, c[name]


def _static(section, option):
    value = section.get(option) if option in section else None
    return value if isinstance(value, dict) else None


def container_request(policy, extra_create=None, extra_host=None):
    """The create body the DockerSpawner would send with these extras (limits as set):
    extra_host_config merged over the spawner's own host_config, as the spawner does."""
    from docker.types import HostConfig

    host = {"network_mode": (policy.networks or ["bridge"])[0], "security_opt": ["no-new-privileges"],
            "mem_limit": 1 << 30, "nano_cpus": 10**9, "pids_limit": 1024}
    host.update(extra_host or {})
    body = {"Image": "image", "User": "1000:100", "Labels": object_labels(policy.hub, KIND_USER_SERVER, "user", ""),
            "HostConfig": dict(HostConfig(version="1.41", **host))}
    for key, value in (extra_create or {}).items():
        if key == "host_config":
            body["HostConfig"] = dict(value)
        elif key == "networking_config":
            body["NetworkingConfig"] = value
        else:
            body["".join(part.capitalize() for part in key.split("_"))] = value
    return body


SWARM_SPECS = ("extra_container_spec", "extra_resources_spec", "extra_placement_spec", "extra_task_spec",
               "extra_endpoint_spec")


def service_request(policy, section, only=None):
    """The create body the SwarmSpawner would send with the section's static extra specs
    (``only``: with just that one of ``SWARM_SPECS``)."""
    def spec(option):
        return (_static(section, option) or {}) if only in (None, option) else {}

    labels = object_labels(policy.hub, KIND_USER_SERVER, "user", "")
    container = {"Image": "image", "User": "1000:100", "Labels": labels}
    container.update(spec("extra_container_spec"))
    resources = {"Limits": {"MemoryBytes": 1 << 30, "NanoCPUs": 10**9, "Pids": 1024}}
    resources.update(spec("extra_resources_spec"))
    task = {"ContainerSpec": container, "Resources": resources, "Placement": spec("extra_placement_spec"),
            "Networks": [{"Target": n} for n in policy.networks[:1]]}
    task.update(spec("extra_task_spec"))
    return {"Labels": labels, "TaskTemplate": task, "Mode": {"Replicated": {"Replicas": 1}},
            "EndpointSpec": dict({"Mode": "dnsrr"}, **spec("extra_endpoint_spec"))}


def check_hub_config(c, policy):
    """Raise HubConfigError naming the first option of ``c`` the filter would refuse."""
    if isinstance(policy, dict):
        policy = Policy(**policy)
    swarm = "swarm" in str(c.JupyterHub.get("spawner_class", "") if "JupyterHub" in c else "")
    for name, section in _sections(c):
        def refuse(option, reason):
            raise HubConfigError(
                "c.%s.%s: the hub's Docker API filter would refuse it (%s). Change the option, or the "
                "filter's settings (jupyterhub_docker_filter_*)." % (name, option, reason))

        extra_create = _static(section, "extra_create_kwargs")
        extra_host = _static(section, "extra_host_config")
        for option, create, host in (("extra_create_kwargs", extra_create, None),
                                     ("extra_host_config", None, extra_host)):
            if (create or host) is None:
                continue
            try:
                check_container_create(policy, container_request(policy, create, host))
            except Refused as refusal:
                refuse(option, "rule %s: %s" % (refusal.rule, refusal.message))
            except TypeError as e:
                refuse(option, str(e))
        for option in SWARM_SPECS if swarm else ():
            if _static(section, option) is None:
                continue
            try:
                check_service_create(policy, service_request(policy, section, only=option))
            except Refused as refusal:
                refuse(option, "rule %s: %s" % (refusal.rule, refusal.message))
        command = section.get("post_start_cmd") if "post_start_cmd" in section else None
        if command and (not isinstance(command, (str, list)) or exec_argv(command) not in policy.exec_commands):
            refuse("post_start_cmd", "rule exec: the filter lets the hub exec only the command set by "
                   "jupyterhub_post_start_cmd (%s)" % (policy.exec_commands or "none"))
        devices = section.get("gpu_devices") if "gpu_devices" in section else None
        if isinstance(devices, list) and set(devices) - set(policy.gpus):
            refuse("gpu_devices", "rule devices: GPU %s is not allowlisted (jupyterhub_gpu_devices)"
                   % ", ".join(sorted(set(devices) - set(policy.gpus))))
        if section.get("allow_root") is True and not policy.allow_root:
            refuse("allow_root", "rule user: root is off for this hub (jupyterhub_docker_filter_allow_root)")
        pull_policy = str(section.get("pull_policy", "") if "pull_policy" in section else "").lower()
        if pull_policy in ("always", "ifnotpresent") and not policy.allow_pull:
            refuse("pull_policy", "rule pull: pulls are off for this hub")


def main(argv=None):
    """``python -m hubfleet_spawner.docker_filter.config FILE``: load a jupyterhub_config.py
    as JupyterHub does; exit 1 with the option named when the filter would refuse it."""
    import sys

    from traitlets.config.loader import PyFileConfigLoader

    path = (argv if argv is not None else sys.argv[1:])[0]
    try:
        PyFileConfigLoader(path).load_config()
    except HubConfigError as e:
        sys.exit(str(e))


if __name__ == "__main__":
    main()
