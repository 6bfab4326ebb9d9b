"""The Docker API filter's rules, request by request (pure logic, no engine)."""

import copy
import json

import pytest

from hubfleet_spawner.docker_filter.config import HubConfigError, check_hub_config
from hubfleet_spawner.docker_filter.rules import (Policy, PolicyError, Refused, decide, exec_argv, owner_of,
                                                  with_hub_filter)

HUB = "hub1"


@pytest.fixture
def policy():
    return Policy(hub=HUB, networks=["hub1"], bind_dirs=["/srv/homes"])


def labels(hub=HUB):
    return {"hubfleet.hub": hub, "hubfleet.kind": "user-server", "hubfleet.user": "ada", "hubfleet.server": ""}


def container(**host):
    """What the DockerSpawner sends for a non-root server on the hub network."""
    body = {
        "Image": "hubfleet/singleuser:1",
        "User": "1000:100",
        "Labels": labels(),
        "HostConfig": {
            "NetworkMode": "hub1",
            "SecurityOpt": ["no-new-privileges"],
            "CapDrop": ["ALL"],
            "Memory": 2 << 30,
            "NanoCpus": 10**9,
            "PidsLimit": 1024,
            "Binds": ["hub1-user-ada:/home/jovyan/work:rw"],
        },
        "NetworkingConfig": {"EndpointsConfig": {"hub1": {}}},
    }
    body["HostConfig"].update(host)
    return body


def service(**container_spec):
    spec = {"Image": "hubfleet/singleuser:1", "User": "1000:100", "Labels": labels(), "CapabilityDrop": ["ALL"]}
    spec.update(container_spec)
    return {
        "Name": "hub1-ada",
        "Labels": labels(),
        "TaskTemplate": {
            "ContainerSpec": spec,
            "Resources": {"Limits": {"MemoryBytes": 1 << 30, "NanoCPUs": 10**9, "Pids": 1024}},
            "Networks": [{"Target": "hub1"}],
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "EndpointSpec": {"Mode": "dnsrr"},
    }


def refused(policy, method, path, body=None, query=None):
    with pytest.raises(Refused) as info:
        decide(policy, method, path, query, body)
    return info.value


# --- what the spawners need is allowed -------------------------------------------------------


@pytest.mark.parametrize("method, path", [
    ("GET", "/_ping"), ("HEAD", "/_ping"), ("GET", "/v1.41/version"), ("GET", "/info"),
    ("GET", "/v1.41/images/hubfleet/singleuser:abc/json"), ("GET", "/images/sha256:0123/json"),
    ("GET", "/nodes"), ("GET", "/nodes/abc"),
])
def test_engine_reads_are_allowed_as_they_are(policy, method, path):
    verdict = decide(policy, method, path, {"filters": ['{"role": ["worker"]}']})
    assert verdict.owned == []
    assert verdict.query == {"filters": ['{"role": ["worker"]}']}


def test_the_spawners_container_is_allowed_once_its_volume_is_the_hubs(policy):
    verdict = decide(policy, "POST", "/v1.41/containers/create", {"name": ["hub1-ada"]}, container())
    assert verdict.rule == "create"
    assert verdict.owned == [("volume", "hub1-user-ada", "refuse")]


def test_a_bind_under_a_configured_base_directory_is_allowed(policy):
    decide(policy, "POST", "/containers/create", None, container(Binds=["/srv/homes/ada:/home/ada:rw"]))


def test_root_is_allowed_only_when_the_policy_allows_it(policy):
    body = container()
    body["User"] = "0"
    assert refused(policy, "POST", "/containers/create", body).rule == "user"
    decide(Policy(hub=HUB, networks=["hub1"], allow_root=True), "POST", "/containers/create", None, body)


@pytest.mark.parametrize("user", [None, "", "root", "0", "0:0", "root:users"])
def test_root_or_the_images_unknown_user_is_refused(policy, user):
    body = container()
    body["User"] = user
    assert refused(policy, "POST", "/containers/create", body).rule == "user"


def test_the_swarm_spawners_service_is_allowed(policy):
    assert decide(policy, "POST", "/services/create", None, service()).rule == "create"


def prep_service(**container_spec):
    """What the SwarmSpawner sends for the ownership step (ownership.prep_service_spec)."""
    from hubfleet_spawner.ownership import MountToPrepare, prep_service_spec

    prep_labels = dict(labels(), **{"hubfleet.kind": "volume-prep"})
    mount = {"Type": "volume", "Source": "hub1-user-ada", "Target": "/home/jovyan/work",
             "VolumeOptions": {"Labels": labels()}}
    spec = prep_service_spec("hubfleet/singleuser:1", [MountToPrepare("volume", "hub1-user-ada",
                             "/home/jovyan/work", "new", None)], "1000:100", [mount], prep_labels, {})
    body = {"Labels": spec["labels"], "TaskTemplate": spec["task_template"], "Mode": spec["mode"]}
    body["TaskTemplate"]["ContainerSpec"].update(container_spec)
    return body


def test_the_swarm_spawners_prep_service_is_allowed_in_its_exact_shape(policy):
    assert decide(policy, "POST", "/services/create", None, prep_service()).rule == "create"


@pytest.mark.parametrize("change, rule", [
    ({"Command": ["/bin/sh", "-c", "id"]}, "user"),
    ({"CapabilityAdd": ["CHOWN", "SYS_ADMIN"]}, "cap-add"),
    ({"CapabilityDrop": []}, "user"),
])
def test_a_root_service_of_another_shape_is_refused(policy, change, rule):
    assert refused(policy, "POST", "/services/create", prep_service(**change)).rule == rule


def test_a_prep_service_on_a_network_is_refused(policy):
    body = prep_service()
    body["TaskTemplate"]["Networks"] = [{"Target": "hub1"}]
    assert refused(policy, "POST", "/services/create", body).rule == "user"


def test_a_service_volume_must_be_made_labelled(policy):
    body = service(Mounts=[{"Type": "volume", "Source": "hub1-user-ada", "Target": "/home/jovyan/work",
                            "VolumeOptions": {"Labels": labels()}}])
    decide(policy, "POST", "/services/create", None, body)
    body["TaskTemplate"]["ContainerSpec"]["Mounts"][0]["VolumeOptions"]["Labels"] = {}
    assert refused(policy, "POST", "/services/create", body).rule == "labels"


@pytest.mark.parametrize("method, path, kind", [
    ("GET", "/containers/abc/json", "container"), ("GET", "/containers/abc/logs", "container"),
    ("POST", "/containers/abc/start", "container"), ("POST", "/containers/abc/stop", "container"),
    ("POST", "/containers/abc/kill", "container"), ("POST", "/containers/abc/wait", "container"),
    ("DELETE", "/containers/abc", "container"), ("GET", "/volumes/abc", "volume"),
    ("DELETE", "/volumes/abc", "volume"), ("GET", "/services/abc", "service"),
    ("DELETE", "/services/abc", "service"), ("GET", "/tasks/abc", "task"), ("GET", "/networks/abc", "network"),
])
def test_object_requests_go_on_only_for_the_hubs_objects(policy, method, path, kind):
    verdict = decide(policy, method, "/v1.41" + path)
    assert verdict.owned == [(kind, "abc", "pass")]


@pytest.mark.parametrize("path", ["/containers/json", "/volumes", "/services", "/networks", "/events"])
def test_lists_and_events_are_narrowed_to_the_hub(policy, path):
    verdict = decide(policy, "GET", path, {"all": ["1"], "filters": ['{"label": ["hubfleet.user=ada"], "type": ["container"]}']})
    filters = json.loads(verdict.query["filters"][0])
    assert filters["label"] == ["hubfleet.user=ada", "hubfleet.hub=hub1"]
    assert filters["type"] == ["container"]
    assert verdict.query["all"] == ["1"]


@pytest.mark.parametrize("filters", [None, "", "{}", '{"label": {"a=b": true}}', '{"label": "a=b"}'])
def test_a_list_without_a_label_filter_gets_the_hubs(policy, filters):
    query = {"filters": [filters]} if filters is not None else {}
    labels_ = json.loads(with_hub_filter(policy, query)["filters"][0])["label"]
    assert "hubfleet.hub=hub1" in labels_


def test_a_list_asking_for_another_hub_still_gets_only_this_hubs(policy):
    query = with_hub_filter(policy, {"filters": ['{"label": ["hubfleet.hub=other"]}']})
    assert json.loads(query["filters"][0])["label"] == ["hubfleet.hub=other", "hubfleet.hub=hub1"]


def test_tasks_are_listed_only_by_the_hubs_services(policy):
    verdict = decide(policy, "GET", "/tasks", {"filters": ['{"service": ["s1"]}']})
    assert verdict.owned == [("service", "s1", "refuse")]
    assert refused(policy, "GET", "/tasks").rule == "list-own"


def test_exec_is_refused_unless_post_start_cmd_is_configured(policy):
    assert refused(policy, "POST", "/containers/abc/exec", {"Cmd": ["id"]}).rule == "exec"
    assert refused(policy, "POST", "/exec/e1/start", {}).rule == "exec"
    allowed = Policy(hub=HUB, networks=["hub1"], exec_commands=[["id"]])
    assert decide(allowed, "POST", "/containers/abc/exec", None, {"Cmd": ["id"]}).owned == [("container", "abc", "pass")]
    assert decide(allowed, "POST", "/exec/e1/start", None, {}).owned == [("exec", "e1", "pass")]
    assert decide(allowed, "GET", "/exec/e1/json", None, None).owned == [("exec", "e1", "pass")]
    assert refused(allowed, "POST", "/containers/abc/exec", {"Cmd": ["id"], "Privileged": True}).rule == "privileged"
    assert refused(allowed, "POST", "/containers/abc/exec", {"Cmd": ["id"], "User": "root"}).rule == "user"


@pytest.mark.parametrize("command", [["sh"], ["id", "-u"], ["/bin/sh", "-c", "id"], "id", None, [], {"Cmd": "id"}])
def test_an_exec_may_run_only_the_post_start_cmd(command):
    allowed = Policy(hub=HUB, networks=["hub1"], exec_commands=[["id"]])
    verdict = refused(allowed, "POST", "/containers/abc/exec", {"Cmd": command})
    assert verdict.rule == "exec" and "only the spawner's post_start_cmd" in verdict.message


def test_a_post_start_cmd_string_is_the_shell_command_the_spawner_runs():
    shell = Policy(hub=HUB, networks=["hub1"], exec_commands=[exec_argv("touch /tmp/x")])
    decide(shell, "POST", "/containers/abc/exec", None, {"Cmd": ["/bin/sh", "-c", "touch /tmp/x"]})
    assert refused(shell, "POST", "/containers/abc/exec", {"Cmd": ["/bin/sh", "-c", "rm -rf /home"]}).rule == "exec"


def test_pulls_follow_the_pull_policy(policy):
    assert refused(policy, "POST", "/images/create", query={"fromImage": ["x"]}).rule == "pull"
    pulling = Policy(hub=HUB, networks=["hub1"], allow_pull=True)
    assert decide(pulling, "POST", "/images/create", {"fromImage": ["x"], "tag": ["1"]}).rule == "pull"
    assert refused(pulling, "POST", "/images/create", query={"fromSrc": ["-"]}).rule == "pull"


# --- everything else is refused, naming the rule -----------------------------------------------


@pytest.mark.parametrize("host, rule", [
    ({"Privileged": True}, "privileged"),
    ({"Binds": ["/:/host"]}, "binds"),
    ({"Binds": ["/etc:/host-etc:ro"]}, "binds"),
    ({"Binds": ["/srv/homes/../../etc:/x"]}, "binds"),
    ({"Binds": ["/var/run/docker.sock:/var/run/docker.sock"]}, "docker-socket"),
    ({"Binds": ["/var/run:/r"]}, "binds"),
    ({"Binds": ["/run/docker.sock:/d.sock"]}, "docker-socket"),
    ({"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]}, "binds"),
    ({"Mounts": [{"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/d"}]}, "docker-socket"),
    ({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/v",
                  "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": "/"}}}}]}, "binds"),
    ({"Mounts": [{"Type": "volume", "Target": "/v"}]}, "mounts"),
    ({"Mounts": [{"Type": "npipe", "Source": "x", "Target": "/v"}]}, "mounts"),
    ({"NetworkMode": "host"}, "host-namespace"),
    ({"NetworkMode": "container:other"}, "host-namespace"),
    ({"NetworkMode": "other-hub"}, "networks"),
    ({"PidMode": "host"}, "host-namespace"),
    ({"IpcMode": "host"}, "host-namespace"),
    ({"IpcMode": "container:abc"}, "host-namespace"),
    ({"UTSMode": "host"}, "host-namespace"),
    ({"UsernsMode": "host"}, "host-namespace"),
    ({"CgroupnsMode": "host"}, "host-namespace"),
    ({"CapAdd": ["SYS_ADMIN"]}, "cap-add"),
    ({"Capabilities": ["CAP_SYS_ADMIN"]}, "cap-add"),
    ({"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda", "CgroupPermissions": "rwm"}]}, "devices"),
    ({"DeviceRequests": [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]}, "devices"),
    ({"DeviceCgroupRules": ["c 1:3 mr"]}, "devices"),
    ({"SecurityOpt": ["no-new-privileges", "seccomp=unconfined"]}, "security-opt"),
    ({"SecurityOpt": ["no-new-privileges", "apparmor=unconfined"]}, "security-opt"),
    ({"SecurityOpt": ["no-new-privileges", "label=disable"]}, "security-opt"),
    ({"SecurityOpt": []}, "security-opt"),
    ({"MaskedPaths": []}, "security-opt"),
    ({"Sysctls": {"net.ipv4.ip_forward": "1"}}, "sysctls"),
    ({"CgroupParent": "/"}, "cgroup"),
    ({"VolumesFrom": ["other"]}, "volumes-from"),
    ({"OomKillDisable": True}, "limits"),
    ({"Runtime": "other"}, "runtime"),
    ({"Memory": 0}, "limits"),
    ({"NanoCpus": 0}, "limits"),
    ({"PidsLimit": -1}, "limits"),
])
def test_a_dangerous_container_is_refused_naming_the_rule(policy, host, rule):
    refusal = refused(policy, "POST", "/v1.41/containers/create", container(**host))
    assert refusal.rule == rule
    assert "rule %s" % rule in json.loads(refusal.body())["message"]


def test_a_base_directory_holding_the_docker_socket_is_still_refused():
    wide = Policy(hub=HUB, networks=["hub1"], bind_dirs=["/var"])
    decide(wide, "POST", "/containers/create", None, container(Binds=["/var/lib/course:/data:ro"]))
    for source in ("/var/run", "/var/run/", "/var/./run/docker.sock", "/var"):
        assert refused(wide, "POST", "/containers/create", container(Binds=[source + ":/x"])).rule == "docker-socket"


def test_a_container_without_the_hubs_label_is_refused(policy):
    for other in ({}, {"hubfleet.hub": "other"}, None):
        body = container()
        body["Labels"] = other
        assert refused(policy, "POST", "/containers/create", body).rule == "labels"


def test_an_endpoint_on_another_network_is_refused(policy):
    body = container()
    body["NetworkingConfig"]["EndpointsConfig"]["other"] = {}
    assert refused(policy, "POST", "/containers/create", body).rule == "networks"


def test_an_allowlisted_device_is_allowed(policy):
    gpu = Policy(hub=HUB, networks=["hub1"], devices=["/dev/nvidia0"])
    decide(gpu, "POST", "/containers/create", None,
           container(Devices=[{"PathOnHost": "/dev/nvidia0", "PathInContainer": "/dev/nvidia0"}]))


@pytest.mark.parametrize("change, rule", [
    (lambda s: s["Labels"].clear(), "labels"),
    (lambda s: s["TaskTemplate"]["ContainerSpec"].pop("Labels"), "labels"),
    (lambda s: s["TaskTemplate"]["ContainerSpec"].update(User="root"), "user"),
    (lambda s: s["TaskTemplate"]["ContainerSpec"].update(CapabilityAdd=["NET_ADMIN"]), "cap-add"),
    (lambda s: s["TaskTemplate"]["ContainerSpec"].update(
        Mounts=[{"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/d"}]), "docker-socket"),
    (lambda s: s["TaskTemplate"]["ContainerSpec"].update(Mounts=[{"Type": "bind", "Source": "/", "Target": "/h"}]), "binds"),
    (lambda s: s["TaskTemplate"].update(Networks=[{"Target": "ingress"}]), "networks"),
    (lambda s: s["TaskTemplate"]["ContainerSpec"].update(Secrets=[{"SecretID": "x", "SecretName": "other-hub-tls"}]),
     "swarm-objects"),
    (lambda s: s["TaskTemplate"]["ContainerSpec"].update(Configs=[{"ConfigID": "x"}]), "swarm-objects"),
    (lambda s: s["TaskTemplate"].update(PluginSpec={"Name": "x"}), "service-kind"),
    (lambda s: s.update(Mode={"Global": {}}), "service-mode"),
    (lambda s: s["TaskTemplate"]["Resources"]["Limits"].pop("MemoryBytes"), "limits"),
    (lambda s: s.update(EndpointSpec={"Ports": [{"PublishedPort": 22, "TargetPort": 22}]}), "ports"),
])
def test_a_dangerous_service_is_refused_naming_the_rule(policy, change, rule):
    body = service()
    change(body)
    assert refused(policy, "POST", "/services/create", body).rule == rule


def test_a_volume_must_carry_the_hubs_label_and_no_host_bind(policy):
    decide(policy, "POST", "/volumes/create", None, {"Name": "hub1-user-ada", "Labels": labels()})
    assert refused(policy, "POST", "/volumes/create", {"Name": "v"}).rule == "labels"
    bound = {"Name": "v", "Labels": labels(), "DriverOpts": {"type": "none", "o": "bind", "device": "/etc"}}
    assert refused(policy, "POST", "/volumes/create", bound).rule == "binds"
    assert refused(policy, "POST", "/volumes/create", dict(bound, Driver="rexray")).rule == "volume-driver"


@pytest.mark.parametrize("method, path", [
    ("POST", "/containers/abc/attach"), ("PUT", "/containers/abc/archive"), ("GET", "/containers/abc/archive"),
    ("POST", "/containers/abc/update"), ("POST", "/commit"), ("POST", "/build"), ("POST", "/images/load"),
    ("POST", "/swarm/init"), ("POST", "/swarm/leave"), ("GET", "/secrets"), ("POST", "/secrets/create"),
    ("POST", "/plugins/pull"), ("POST", "/networks/create"), ("POST", "/networks/abc/connect"),
    ("POST", "/containers/prune"), ("POST", "/services/abc/update"), ("POST", "/nodes/abc/update"),
    ("DELETE", "/images/x"), ("POST", "/session"), ("GET", "/system/df"), ("POST", "/auth"),
])
def test_anything_else_is_refused(policy, method, path):
    refusal = refused(policy, method, "/v1.41" + path)
    assert refusal.rule == "not-allowed"
    assert path in refusal.message


def test_a_create_without_a_body_is_refused(policy):
    assert refused(policy, "POST", "/containers/create", None).rule == "body"


# --- ownership of what a request names ------------------------------------------------------------


def test_ownership_is_read_from_the_labels(policy):
    assert owner_of(policy, "container", "c", {"Config": {"Labels": labels()}}) is True
    assert owner_of(policy, "container", "c", {"Config": {"Labels": labels("other")}}) is False
    assert owner_of(policy, "container", "c", {"Config": {"Labels": None}}) is False
    assert owner_of(policy, "volume", "v", {"Labels": labels()}) is True
    assert owner_of(policy, "service", "s", {"Spec": {"Labels": labels()}}) is True
    assert owner_of(policy, "service", "s", {"Spec": {}}) is False
    assert owner_of(policy, "network", "n", {"Name": "hub1", "Labels": {}}) is True
    assert owner_of(policy, "network", "n", {"Name": "bridge", "Labels": {}}) is False
    assert owner_of(policy, "exec", "e", {"ContainerID": "c1"}) == ("container", "c1")
    assert owner_of(policy, "task", "t", {"ServiceID": "s1"}) == ("service", "s1")


# --- the policy and the hub's configuration --------------------------------------------------------


@pytest.mark.parametrize("settings, word", [
    ({}, "hub"), ({"hub": ""}, "hub"), ({"hub": "h", "bind_dirs": ["/"]}, "bind_dirs"),
    ({"hub": "h", "bind_dirs": ["relative"]}, "bind_dirs"), ({"hub": "h", "allow_root": "yes"}, "allow_root"),
    ({"hub": "h", "surprise": 1}, "surprise"), ({"hub": "h", "exec_commands": ["id"]}, "exec_commands"),
    ({"hub": "h", "exec_commands": [[]]}, "exec_commands"),
])
def test_a_bad_policy_names_the_setting(settings, word):
    with pytest.raises(PolicyError, match=word):
        Policy(**settings)


def hub_config(**sections):
    from traitlets.config import Config

    c = Config()
    c.JupyterHub.spawner_class = "hubfleet-docker"
    for section, values in sections.items():
        for key, value in values.items():
            setattr(c[section], key, value)
    return c


POLICY = {"hub": HUB, "networks": ["hub1"]}


def test_a_hub_config_the_filter_accepts_passes():
    check_hub_config(hub_config(DockerSpawner={"extra_host_config": {"shm_size": "1G"},
                                               "extra_create_kwargs": {"working_dir": "/tmp"},
                                               "pull_policy": "never"}), POLICY)
    check_hub_config(hub_config(DockerSpawner={"extra_create_kwargs": lambda spawner: {"privileged": True}}), POLICY)


@pytest.mark.parametrize("section, option, value, rule", [
    ("DockerSpawner", "extra_host_config", {"privileged": True}, "privileged"),
    ("DockerSpawner", "extra_host_config", {"cap_add": ["SYS_ADMIN"]}, "cap-add"),
    ("DockerSpawner", "extra_host_config", {"network_mode": "host"}, "host-namespace"),
    ("DockerSpawner", "extra_host_config", {"binds": ["/:/host"]}, "binds"),
    ("DockerSpawner", "extra_host_config", {"security_opt": ["seccomp=unconfined"]}, "security-opt"),
    ("DockerSpawner", "extra_create_kwargs", {"user": "root"}, "user"),
    ("DockerSpawner", "extra_create_kwargs", {"labels": {"team": "a"}}, "labels"),
    ("SystemUserSpawner", "extra_host_config", {"pid_mode": "host"}, "host-namespace"),
    ("DockerSpawner", "post_start_cmd", "touch /tmp/x", "exec"),
    ("DockerSpawner", "allow_root", True, "user"),
    ("DockerSpawner", "pull_policy", "always", "pull"),
    ("DockerSpawner", "gpu_devices", ["0"], "devices"),
])
def test_a_hub_config_the_filter_would_refuse_fails_at_start_naming_the_option(section, option, value, rule):
    with pytest.raises(HubConfigError) as info:
        check_hub_config(hub_config(**{section: {option: value}}), POLICY)
    assert "c.%s.%s" % (section, option) in str(info.value)
    assert "rule %s" % rule in str(info.value)


@pytest.mark.parametrize("option, value, rule", [
    ("extra_container_spec", {"CapabilityAdd": ["NET_ADMIN"]}, "cap-add"),
    ("extra_container_spec", {"User": "0"}, "user"),
    ("extra_container_spec", {"Mounts": [{"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/d"}]},
     "docker-socket"),
    ("extra_resources_spec", {"Limits": {}}, "limits"),
    ("extra_task_spec", {"Networks": [{"Target": "ingress"}]}, "networks"),
    ("extra_endpoint_spec", {"Ports": [{"TargetPort": 22, "PublishedPort": 2222}]}, "ports"),
])
def test_swarm_extra_specs_the_filter_would_refuse_fail_at_start_naming_the_option(option, value, rule):
    c = hub_config(SwarmSpawner={option: value, "extra_placement_spec": {"Constraints": ["node.role==worker"]}})
    c.JupyterHub.spawner_class = "hubfleet-swarm"
    with pytest.raises(HubConfigError) as info:
        check_hub_config(c, POLICY)
    assert "c.SwarmSpawner.%s" % option in str(info.value)
    assert "rule %s" % rule in str(info.value)


def test_swarm_extra_specs_the_filter_accepts_pass():
    c = hub_config(SwarmSpawner={"extra_placement_spec": {"Constraints": ["node.labels.pool==gpu"]},
                                 "extra_container_spec": {"Env": ["A=1"]},
                                 "extra_resources_spec": {"Limits": {"MemoryBytes": 1 << 30, "NanoCPUs": 10**9,
                                                                     "Pids": 512}}})
    c.JupyterHub.spawner_class = "hubfleet-swarm"
    check_hub_config(c, POLICY)


def test_a_post_start_cmd_the_filter_allows_passes_and_another_is_refused():
    policy = dict(POLICY, exec_commands=[exec_argv("touch /tmp/x")])
    check_hub_config(hub_config(DockerSpawner={"post_start_cmd": "touch /tmp/x"}), policy)
    with pytest.raises(HubConfigError, match=r"c\.DockerSpawner\.post_start_cmd.*rule exec"):
        check_hub_config(hub_config(DockerSpawner={"post_start_cmd": ["rm", "-rf", "/home"]}), policy)


def test_the_body_given_is_not_changed(policy):
    body = container()
    before = copy.deepcopy(body)
    decide(policy, "POST", "/containers/create", None, body)
    assert body == before


# --- the two root shapes of issue #11: volume preparation, root_start images --------------------


def prep_container(**host):
    """What ownership.run_prep_container sends: root, three capabilities, no network."""
    body = container(**dict({"NetworkMode": "none", "CapAdd": ["CHOWN", "DAC_OVERRIDE", "FOWNER"]}, **host))
    body["User"] = "0:0"
    body["Labels"] = dict(labels(), **{"hubfleet.kind": "volume-prep"})
    del body["NetworkingConfig"]
    return body


def test_the_volume_prep_container_may_run_as_root_with_its_three_capabilities(policy):
    verdict = decide(policy, "POST", "/containers/create", None, prep_container())
    assert verdict.owned == [("volume", "hub1-user-ada", "refuse")]


@pytest.mark.parametrize(
    "change, rule",
    [
        ({"CapAdd": ["CHOWN", "SYS_ADMIN"]}, "cap-add"),
        ({"NetworkMode": "hub1"}, "user"),
        ({"CapDrop": []}, "user"),
        ({"Binds": ["/etc:/x:rw"]}, "binds"),
    ],
)
def test_the_volume_prep_shape_is_exact(policy, change, rule):
    assert refused(policy, "POST", "/containers/create", prep_container(**change)).rule == rule


def test_root_start_servers_need_the_policy_and_get_only_setuid_setgid_chown(policy):
    body = container(CapAdd=["CHOWN", "SETUID", "SETGID"])
    body["User"] = "0"
    assert refused(policy, "POST", "/containers/create", body).rule == "user"
    root_start = Policy(hub=HUB, networks=["hub1"], root_start=True)
    decide(root_start, "POST", "/containers/create", None, body)
    body["HostConfig"]["CapAdd"].append("DAC_OVERRIDE")
    assert refused(root_start, "POST", "/containers/create", body).rule == "cap-add"


# --- GPUs -------------------------------------------------------------------------------

GPU_POLICY = dict(hub=HUB, networks=["hub1"], gpus=["0", "GPU-4f1c"])


def gpu_request(**fields):
    """A device request as the Docker SDK sends the spawner's (Count 0, Options {})."""
    return dict({"Driver": "nvidia", "Count": 0, "DeviceIDs": ["0"], "Capabilities": [["gpu"]], "Options": {}}, **fields)


def test_a_request_for_allowlisted_gpus_is_allowed():
    gpus = Policy(**GPU_POLICY)
    for request in (gpu_request(), gpu_request(DeviceIDs=["0", "GPU-4f1c"]),
                    gpu_request(Capabilities=[["gpu", "compute", "utility"]], Driver="")):
        decide(gpus, "POST", "/containers/create", None, container(DeviceRequests=[request]))


@pytest.mark.parametrize("request_fields, why", [
    ({"DeviceIDs": ["1"]}, "GPU 1 is not allowlisted"),
    ({"DeviceIDs": ["0", "1"]}, "GPU 1 is not allowlisted"),
    ({"DeviceIDs": []}, "(none named)"),
    ({"DeviceIDs": None, "Count": -1}, "must name its devices"),
    ({"Count": 1}, "must name its devices"),
    ({"Options": {"x": "y"}}, "must name its devices"),
    ({"Driver": "other"}, "driver 'other'"),
    ({"Capabilities": [["compute"]]}, "only for GPUs"),
    ({"Capabilities": [["gpu", "something-else"]]}, "only for GPUs"),
    ({"Capabilities": []}, "only for GPUs"),
])
def test_a_gpu_request_is_refused_unless_it_names_allowlisted_gpus(request_fields, why):
    refusal = refused(Policy(**GPU_POLICY), "POST", "/containers/create",
                      container(DeviceRequests=[gpu_request(**request_fields)]))
    assert refusal.rule == "devices"
    assert why in refusal.message


def test_gpu_requests_are_refused_when_no_gpu_is_allowlisted_even_with_devices_allowed():
    devices_only = Policy(hub=HUB, networks=["hub1"], devices=["/dev/nvidia0"])
    assert refused(devices_only, "POST", "/containers/create",
                   container(DeviceRequests=[gpu_request()])).rule == "devices"


def test_the_spawners_gpu_request_passes_the_filter():
    from docker.types import HostConfig

    from hubfleet_spawner.specs import ServerSettings, container_create_args

    settings = ServerSettings.create(image="img", name="srv", labels=labels(), user="1000").with_gpus(("GPU-4f1c",))
    host = container_create_args(settings)["host_config"]
    body = container()
    body["HostConfig"]["DeviceRequests"] = dict(HostConfig(version="1.41", **host))["DeviceRequests"]
    decide(Policy(**GPU_POLICY), "POST", "/containers/create", None, body)


def test_gpu_devices_the_filter_allowlists_pass():
    check_hub_config(hub_config(DockerSpawner={"gpu_devices": ["0", "GPU-4f1c"], "gpus": 1}), GPU_POLICY)
    with pytest.raises(HubConfigError, match=r"c\.DockerSpawner\.gpu_devices.*GPU 1 is not allowlisted"):
        check_hub_config(hub_config(DockerSpawner={"gpu_devices": ["0", "1"]}), GPU_POLICY)
