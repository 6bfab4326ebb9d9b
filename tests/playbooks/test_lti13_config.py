"""LTI 1.3 login: the role's configuration loads in the hub image with ltiauthenticator.

No LTI 1.3 platform (Moodle, Canvas, Open edX) is installable from the registries here, so
no launch is made: the role's jupyterhub_config.py template is rendered with lti13
settings and loaded by JupyterHub in a throw-away container of the hub image
(hubfleet-hub check-config, as site.yml does before it writes a configuration), which
fails on an unknown authenticator class or a wrong value of one of its options. The
settings' refusals are in test_site_validation.py.
"""

import json
import subprocess

from testbed.images import hub_image
from testbed.site import ROOT, ansible_env

SETTINGS = {
    "jupyterhub_authenticator": "lti13",
    "jupyterhub_lti13_issuer": "https://moodle.example.org",
    "jupyterhub_lti13_client_ids": ["tool-1", "tool-2"],
    "jupyterhub_lti13_authorize_url": "https://moodle.example.org/mod/lti/auth.php",
    "jupyterhub_lti13_jwks_url": "https://moodle.example.org/mod/lti/certs.php",
    "jupyterhub_lti13_username_claim": "custom_uname",
    "jupyterhub_metrics": False,
}
# The options as LTI13Authenticator reads them from the loaded configuration.
READ_BACK = """
from jupyterhub.app import JupyterHub
from ltiauthenticator.lti13.auth import LTI13Authenticator
hub = JupyterHub()
hub.load_config_file("/etc/jupyterhub/jupyterhub_config.py")
assert hub.authenticator_class is LTI13Authenticator, hub.authenticator_class
auth = LTI13Authenticator(parent=hub)
print(json.dumps([auth.issuer, sorted(auth.client_id), auth.authorize_url, auth.jwks_endpoint, auth.username_key]))
"""


def test_the_lti13_configuration_loads_in_the_hub_image(tmp_path):
    config = tmp_path / "jupyterhub_config.py"
    role = ROOT / "roles" / "jupyterhub"
    argv = ["ansible", "localhost", "-c", "local", "-m", "ansible.builtin.template",
            "-a", "src=%s dest=%s mode=0644" % (role / "templates" / "jupyterhub_config.py.j2", config),
            "-e", "@%s" % (role / "defaults" / "main.yml"), "-e", "@%s" % (role / "vars" / "main.yml"),
            "-e", "jupyterhub_name=lti-check", "-e", json.dumps(SETTINGS)]
    done = subprocess.run(argv, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    text = config.read_text()
    assert 'c.JupyterHub.authenticator_class = "ltiauthenticator.lti13.auth.LTI13Authenticator"' in text

    mount = ["--volume", "%s:/etc/jupyterhub/jupyterhub_config.py:ro" % config]
    run = ["docker", "run", "--rm", "--pull", "never", "--network", "none", "--user", "0:0"] + mount
    image = hub_image()
    checked = subprocess.run(run + ["--entrypoint", "hubfleet-hub", image, "check-config"],
                             capture_output=True, text=True, timeout=120, check=False)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-3000:]
    read = subprocess.run(run + ["--entrypoint", "python3", image, "-c", "import json\n" + READ_BACK],
                          capture_output=True, text=True, timeout=120, check=False)
    assert read.returncode == 0, read.stdout[-2000:] + read.stderr[-3000:]
    assert json.loads(read.stdout.splitlines()[-1]) == [
        SETTINGS["jupyterhub_lti13_issuer"], SETTINGS["jupyterhub_lti13_client_ids"],
        SETTINGS["jupyterhub_lti13_authorize_url"], SETTINGS["jupyterhub_lti13_jwks_url"], "custom_uname"]
