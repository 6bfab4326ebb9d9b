"""site.yml refuses bad settings before it changes anything, naming the variable.

Each case runs the real playbooks/site.yml against this machine (inventory/local) with
one wrong setting and checks that the play failed in the validation step with a message
naming the variable, that no task reported a change, and that nothing of that hub exists
afterwards (no config directory, no Docker object labelled for it).
"""

import re
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from testbed.site import ansible_env

ROOT = Path(__file__).resolve().parents[2]


def run_site(name, *extra_vars):
    """Run site.yml on this machine for a hub called ``name``; returns (rc, output)."""
    argv = ["ansible-playbook", "-i", str(ROOT / "inventory/local/hosts.yml"), str(ROOT / "playbooks/site.yml"),
            "-e", "jupyterhub_name=%s" % name]
    for extra in extra_vars:
        argv += ["-e", extra]
    done = subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def docker_objects(name):
    """Names of Docker containers, networks and volumes labelled for hub ``name``."""
    found = []
    for kind in ("container", "network", "volume"):
        listing = subprocess.run(
            ["docker", kind, "ls", "-q"] + (["-a"] if kind == "container" else [])
            + ["--filter", "label=hubfleet.hub=%s" % name],
            capture_output=True, text=True, check=False,
        )
        found += listing.stdout.split()
    return found


@pytest.fixture
def hub_name():
    return "validation-%s" % uuid.uuid4().hex[:8]


@pytest.fixture
def taken_port():
    """A port some other program listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        yield listener.getsockname()[1]


def assert_refused_before_any_change(name, rc, output, variable):
    assert rc != 0, output
    assert variable in output, output
    recap = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", output)
    assert recap and recap.group(1) == "0", output
    # The failing task is one of the checks, before the docker_engine role ran.
    assert "docker_engine" not in output.split("fatal:")[0], output
    assert not Path("/etc/hubfleet", name).exists()
    assert docker_objects(name) == []


# Sound OIDC settings, less what a case adds. The check loops over the variables with each as
# its label, so these cases look for the words of the failure message.
OIDC = ["jupyterhub_authenticator=oidc", "jupyterhub_oidc_client_id=hub",
        "jupyterhub_oidc_authorize_url=https://id.example.org/auth", "jupyterhub_oidc_userinfo_url=https://id.example.org/me",
        "jupyterhub_oidc_callback_url=https://hub.example.org/hub/oauth_callback"]

CASES = {
    "unknown authenticator": (["jupyterhub_authenticator=kerberos"], "jupyterhub_authenticator"),
    "ldap without a server": (["jupyterhub_authenticator=ldap"], "jupyterhub_ldap_server_address"),
    "malformed memory limit": (["jupyterhub_mem_limit=lots"], "jupyterhub_mem_limit"),
    "storage limit that is no size": (["jupyterhub_volume_size_limit=plenty"], "jupyterhub_volume_size_limit"),
    "cpu limit that is no number": (["jupyterhub_cpu_limit=two"], "jupyterhub_cpu_limit"),
    "missing OAuth secret": (
        ["jupyterhub_authenticator=github", "jupyterhub_github_client_id=abc",
         "jupyterhub_github_callback_url=https://hub.example.org/hub/oauth_callback"],
        "jupyterhub_github_client_secret",
    ),
    "user volumes without the user name": (["jupyterhub_user_volume_template=shared"], "jupyterhub_user_volume_template"),
    # Refused by the role's argument spec (entry point validate), no assert of validate.yml.
    "unknown spawner": (["jupyterhub_spawner=kubernetes"], "jupyterhub_spawner"),
    "profile without an image": (['{"jupyterhub_profiles": [{"name": "Python"}]}'], "jupyterhub_profiles"),
    "one volume as a user's home and work folder": (
        ["jupyterhub_user_volume_template={prefix}-user-{username}"], "jupyterhub_work_volume_template"),
    "group volumes without the group name": (["jupyterhub_group_volume_template=shared"],
                                             "jupyterhub_group_volume_template"),
    "a course folder that is no host directory": (["jupyterhub_course_source=course"], "jupyterhub_course_source"),
    "profile with an unknown key": (
        ['{"jupyterhub_profiles": [{"name": "Python", "image": "hubfleet/singleuser", "memory": "2G"}]}'],
        "jupyterhub_profiles",
    ),
    "two default profiles": (
        ['{"jupyterhub_profiles": [{"name": "A", "image": "i", "default": true}, {"name": "B", "image": "i", "default": true}]}'],
        "jupyterhub_profiles",
    ),
    "profile memory that is no size": (
        ['{"jupyterhub_profiles": [{"name": "A", "image": "i", "mem_limit": "lots"}]}'],
        "jupyterhub_profiles",
    ),
    "group limit of an unknown limit": (['{"jupyterhub_group_limits": {"graders": {"memory": "8G"}}}'], "jupyterhub_group_limits"),
    "named server limit below zero": (["jupyterhub_named_server_limit=-1"], "jupyterhub_named_server_limit"),
    "LTI 1.3 without the platform's keyset": (
        ["jupyterhub_authenticator=lti13", "jupyterhub_lti13_issuer=https://moodle.example.org",
         '{"jupyterhub_lti13_client_ids": ["tool"]}', "jupyterhub_lti13_authorize_url=https://moodle.example.org/auth"],
        "jupyterhub_lti13_jwks_url must be",
    ),
    "LTI 1.3 platform CA that is no certificate": (
        ["jupyterhub_authenticator=lti13", "jupyterhub_lti13_issuer=https://moodle.example.org",
         '{"jupyterhub_lti13_client_ids": ["tool"]}', "jupyterhub_lti13_authorize_url=https://moodle.example.org/auth",
         "jupyterhub_lti13_jwks_url=https://moodle.example.org/certs", "jupyterhub_lti13_ca_certificate=campus-ca.pem"],
        "jupyterhub_lti13_ca_certificate must be",
    ),
    "templates directory that does not exist": (["jupyterhub_templates_dir=/nonexistent/hub-templates"],
                                                "jupyterhub_templates_dir"),
    "templates directory without a template": (["jupyterhub_templates_dir=%s" % (ROOT / "roles/jupyterhub/defaults")],
                                               "jupyterhub_templates_dir"),
    "OIDC without the client secret": (
        OIDC + ["jupyterhub_oidc_token_url=https://id.example.org/token"], "jupyterhub_oidc_client_secret must be set"),
    "OIDC token endpoint over plain http": (
        OIDC + ["jupyterhub_oidc_client_secret=s", "jupyterhub_oidc_token_url=http://id.example.org/token"],
        "jupyterhub_oidc_token_url must be"),
    "OIDC scopes without openid": (
        OIDC + ["jupyterhub_oidc_client_secret=s", "jupyterhub_oidc_token_url=https://id.example.org/token",
                '{"jupyterhub_oidc_scopes": ["profile", "email"]}'],
        "jupyterhub_oidc_scopes must be"),
    "prometheus without the hub's metrics": (["jupyterhub_prometheus=true", "jupyterhub_metrics=false"],
                                             "jupyterhub_prometheus needs"),
    "prometheus retention that is no duration": (["jupyterhub_prometheus=true", "jupyterhub_prometheus_retention=forever"],
                                                 "jupyterhub_prometheus_retention ('forever')"),
    "acme for localhost": (
        ['{"jupyterhub_https": true, "jupyterhub_tls_source": "acme", "jupyterhub_acme_agree_tos": true}'],
        "jupyterhub_tls_dns_names"),
    "unknown hub database": (["jupyterhub_db=mysql"], "jupyterhub_db"),
    "database URL of another scheme": (
        ["jupyterhub_db=postgresql", "jupyterhub_db_url=postgres://hub:secret@db.example.org/hub"], "jupyterhub_db_url"),
    "database URL with sqlite": (["jupyterhub_db_url=postgresql://hub:secret@db.example.org/hub"], "jupyterhub_db_url"),
    "role's database on a fleet": (["jupyterhub_db=postgresql", "jupyterhub_spawner=swarm",
                                    "jupyterhub_network_driver=overlay"], "jupyterhub_db_url"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_setting_fails_at_the_start_naming_the_variable(case, hub_name):
    extra, variable = CASES[case]
    rc, output = run_site(hub_name, *extra)
    assert_refused_before_any_change(hub_name, rc, output, variable)


def test_a_port_already_taken_fails_at_the_start_naming_the_variable(hub_name, taken_port):
    rc, output = run_site(hub_name, "jupyterhub_port=%d" % taken_port)
    assert_refused_before_any_change(hub_name, rc, output, "jupyterhub_port %d is already in use" % taken_port)


def test_a_taken_port_of_a_container_beside_the_hub_fails_at_the_start_naming_the_variable(hub_name, taken_port):
    rc, output = run_site(hub_name, "jupyterhub_prometheus=true", "jupyterhub_prometheus_port=%d" % taken_port)
    assert_refused_before_any_change(hub_name, rc, output, "jupyterhub_prometheus_port %d is already in use" % taken_port)
