"""Test bed services a hub logs users in against (an identity provider, a learning
platform), each in a container on a network of the test's own, and the Chromium that the
login tests drive through them.

``start_tls_service`` runs a service image whose start script makes a throwaway CA and a
certificate for the container's name (testbed/test_ca.sh) and waits for it to listen;
``chromium`` launches the system Chromium headless, told the service's address for its name.
"""

import contextlib
import time

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def start_tls_service(client, image, name, label, environment, ca_path, ready="listening on", timeout=60):
    """Run ``image`` as ``name`` (its hostname too) on a new network ``name``, both labelled
    hubfleet.test=``label``, and wait until its log says ``ready``; returns (its address on
    that network, the PEM of its test CA at ``ca_path`` in the container)."""
    network = client.networks.create(name, labels={"hubfleet.test": label})
    server = client.containers.run(image, name=name, hostname=name, detach=True, network=network.name,
                                   labels={"hubfleet.test": label}, environment=environment)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.reload()
        if server.status not in ("running", "created"):
            break
        if ready in server.logs().decode():
            address = server.attrs["NetworkSettings"]["Networks"][name]["IPAddress"]
            return address, server.exec_run(["cat", ca_path]).output.decode()
        time.sleep(0.5)
    raise AssertionError("%s did not start within %d s:\n%s" % (name, timeout, server.logs().decode()[-2000:]))


@contextlib.contextmanager
def chromium(playwright, hosts=None):
    """Headless Chromium that resolves each name of ``hosts`` ({name: address}) to its address
    (a test bed container the test made; Linux routes the bridge from this machine)."""
    args = list(CHROMIUM_ARGS)
    if hosts:
        args.append("--host-resolver-rules=" + ", ".join("MAP %s %s" % item for item in hosts.items()))
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
    try:
        yield browser
    finally:
        browser.close()
