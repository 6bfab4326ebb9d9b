"""Build the images the tests need, from Debian packages, cached by content hash.

    python -m testbed.images                    # prints the singleuser image reference
    python -m testbed.images singleuser hub node  # builds and prints each

The base image comes from roles/images/files/build-base-image.sh (debootstrap, no
registry); the singleuser and hub images from roles/images/files/{singleuser,hub}/Dockerfile
— the same definitions the `images` role deploys, so tests run what operators run. The
swarm test bed's Docker-in-Docker host comes from testbed/node/. Each tag is the role's
content hash (plugins/module_utils/image_hash.py) of every input (the build context's files,
the CA bundle, copied sources, build args, labels), so a rerun with the same inputs does not
build again, and the singleuser and hub images get the very tags a deployment with the
role's defaults gives them.
"""

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))
from image_hash import context_hash as role_context_hash  # noqa: E402  (the role's image tags)
IMAGE_FILES = ROOT / "roles" / "images" / "files"
HOST_CA_BUNDLE = Path(os.environ.get("HUBFLEET_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
NODE_FILES = ROOT / "testbed" / "node"
USER_IMAGE_FILES = ROOT / "testbed" / "user_images"
LDAP_FILES = ROOT / "testbed" / "ldap"
PEBBLE_FILES = ROOT / "testbed" / "pebble"
OIDC_FILES = ROOT / "testbed" / "oidc"
LTI_FILES = ROOT / "testbed" / "lti"
USER_IMAGE_REPOSITORY = "hubfleet-test/user-image"
# The image shapes of testbed/user_images/Dockerfile (its build targets).
USER_IMAGE_SHAPES = ("minimal", "uid1001", "rootstart", "prefilled")
SINGLEUSER_REPOSITORY = "hubfleet/singleuser"
HUB_REPOSITORY = "hubfleet/hub"
NODE_REPOSITORY = "hubfleet-test/swarm-node"
LDAP_REPOSITORY = "hubfleet-test/ldap"
PEBBLE_REPOSITORY = "hubfleet-test/pebble"
OIDC_REPOSITORY = "hubfleet-test/oidc"
LTI_REPOSITORY = "hubfleet-test/lti"
TEST_LABEL = "hubfleet.test"


def _log(message):
    print("[testbed.images] %s" % message, file=sys.stderr, flush=True)


def base_image():
    """Build (or find) the Debian base image; returns its reference."""
    result = subprocess.run(
        [str(IMAGE_FILES / "build-base-image.sh")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return result.stdout.strip().splitlines()[-1]


def _image_exists(ref):
    return (
        subprocess.run(
            ["docker", "image", "inspect", ref], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ).returncode
        == 0
    )


@contextlib.contextmanager
def _assembled(files):
    """A temporary build context holding ``files``, (path in the context, content) pairs."""
    with tempfile.TemporaryDirectory(prefix="hubfleet-build-") as context:
        context = Path(context)
        for name, content in files:
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            (context / name).write_bytes(content)
        yield context


def _tree_bytes(root, skip=("tests", "build", "dist", "__pycache__", ".pytest_cache")):
    """Every file below ``root`` as (relative path, content) pairs in a stable order."""
    files = []
    for path in sorted(Path(root).rglob("*")):
        relative = path.relative_to(root)
        if path.is_dir() or path.suffix == ".pyc":
            continue
        if any(part in skip or part.endswith(".egg-info") for part in relative.parts):
            continue
        files.append((str(relative), path.read_bytes()))
    return files


def _build(ref, context, build_args, labels, what):
    """``docker build`` the prepared ``context`` directory as ``ref``."""
    _log("building %s (%s)" % (ref, what))
    command = ["docker", "build", "--quiet", "--tag", ref]
    if isinstance(labels, str):
        labels = {"org.hubfleet.image": labels}
    for key, value in labels.items():
        command += ["--label", "%s=%s" % (key, value)]
    for key, value in build_args.items():
        command += ["--build-arg", "%s=%s" % (key, value)]
    subprocess.run(command + [str(context)], check=True, stdout=subprocess.DEVNULL)
    return ref


def _role_defaults():
    """The images role's defaults (plain values only: the build args are taken from here)."""
    return yaml.safe_load((ROOT / "roles" / "images" / "defaults" / "main.yml").read_text())


def _jupyterhub_image(kind, repository, build_args, ca_bundle, extra_files=()):
    """Build (or find) roles/images/files/<kind>/ as the images role does, with the same tag.

    The context is assembled as roles/images/tasks/build_image.yml assembles it (the role's
    files, ``extra_files`` as (path in the context, content) pairs, the CA bundle as
    ca-bundle.crt) and tagged with the role's content hash (plugins/module_utils/image_hash.py)
    over the same build args and the role's default labels, so a deployment on this machine
    finds the image the tests built, and the other way round.
    """
    labels = _role_defaults().get("images_labels") or {}
    files = _tree_bytes(IMAGE_FILES / kind) + list(extra_files) + [("ca-bundle.crt", _ca_bytes(ca_bundle))]
    with _assembled(files) as context:
        digest = role_context_hash(str(context), build_args, labels)
        ref = "%s:%s" % (repository, digest)
        if _image_exists(ref):
            return ref
        return _build(ref, context, build_args, dict(labels, **{"org.hubfleet.content-hash": digest}), kind)


def _jupyterhub_version(jupyterhub_version):
    if jupyterhub_version is None:
        import jupyterhub

        jupyterhub_version = jupyterhub.__version__
    return jupyterhub_version


def singleuser_image(jupyterhub_version=None, ca_bundle=HOST_CA_BUNDLE):
    """Build (or find) the singleuser image matching the hub's JupyterHub version."""
    build_args = {"BASE_IMAGE": base_image(), "JUPYTERHUB_VERSION": _jupyterhub_version(jupyterhub_version)}
    return _jupyterhub_image("singleuser", SINGLEUSER_REPOSITORY, build_args, ca_bundle)


def hub_image(jupyterhub_version=None, ca_bundle=HOST_CA_BUNDLE):
    """Build (or find) the hub image with the spawner source as it is in the working tree.

    The context holds the hub's build definition, the CA bundle and a copy of spawner/
    without tests and packaging leftovers, with the build args of the role's defaults;
    the tag hashes all of it, so any edit to the spawner builds a new image (only the last
    layers: Docker's layer cache keeps JupyterHub and CHP).
    """
    defaults = _role_defaults()
    build_args = {
        "BASE_IMAGE": base_image(),
        "JUPYTERHUB_VERSION": _jupyterhub_version(jupyterhub_version),
        "CHP_VERSION": str(defaults["images_chp_version"]),
        "HUB_PIP_PACKAGES": " ".join(defaults["images_hub_pip_packages"]),
    }
    spawner_files = [("spawner/" + name, content) for name, content in _tree_bytes(ROOT / "spawner")]
    return _jupyterhub_image("hub", HUB_REPOSITORY, build_args, ca_bundle, spawner_files)


def _debian_service_image(repository, files, label, what, shared=(), ca_bundle=None):
    """Build (or find) a test bed image FROM the Debian base (``files``: its build context,
    plus the ``shared`` test bed files, e.g. test_ca.sh, at the context's top, and, for
    images whose build reaches a registry, ``ca_bundle`` as ca-bundle.crt: part of the
    context and so of the tag)."""
    base = base_image()
    build_args = {"BASE_IMAGE": base}
    extra = [(name, (ROOT / "testbed" / name).read_bytes()) for name in shared]
    if ca_bundle is not None:
        extra.append(("ca-bundle.crt", _ca_bytes(ca_bundle)))
    with _assembled(_tree_bytes(files) + extra) as context:
        ref = "%s:%s" % (repository, role_context_hash(str(context), build_args))
        if _image_exists(ref):
            return ref
        return _build(ref, context, build_args, label, "%s on %s" % (what, base))


def node_image():
    """Build (or find) the Docker-in-Docker host image of the swarm test bed (testbed/node/)."""
    return _debian_service_image(NODE_REPOSITORY, NODE_FILES, "swarm-node", "Debian's docker.io")


def ldap_image():
    """Build (or find) the OpenLDAP server of the LDAP login test (testbed/ldap/)."""
    return _debian_service_image(LDAP_REPOSITORY, LDAP_FILES, "ldap", "Debian's slapd", shared=["test_ca.sh"])


def pebble_image():
    """Build (or find) the ACME server of the ACME HTTPS test (testbed/pebble/)."""
    return _debian_service_image(PEBBLE_REPOSITORY, PEBBLE_FILES, "pebble", "Debian's pebble", shared=["test_ca.sh"])


def oidc_image(ca_bundle=HOST_CA_BUNDLE):
    """Build (or find) the OpenID provider of the OIDC login test (testbed/oidc/): its npm
    install needs the CA bundle, which is part of the context and so of the tag."""
    return _debian_service_image(OIDC_REPOSITORY, OIDC_FILES, "oidc", "oidc-provider on Debian's nodejs",
                                 shared=["test_ca.sh"], ca_bundle=ca_bundle)


def lti_image(ca_bundle=HOST_CA_BUNDLE):
    """Build (or find) the LTI 1.3 platform of the LTI login test (testbed/lti/): its pip
    install of lti1p3platform needs the CA bundle, as the OIDC provider's npm install does."""
    return _debian_service_image(LTI_REPOSITORY, LTI_FILES, "lti", "lti1p3platform on Debian's Python",
                                 shared=["test_ca.sh"], ca_bundle=ca_bundle)


def user_images(jupyterhub_version=None, ca_bundle=HOST_CA_BUNDLE):
    """Build (or find) the notebook images of other shapes (testbed/user_images/):
    returns {shape: reference}. One build context; the targets share the venv layer."""
    base = base_image()
    build_args = {"BASE_IMAGE": base, "JUPYTERHUB_VERSION": _jupyterhub_version(jupyterhub_version)}
    with _assembled(_tree_bytes(USER_IMAGE_FILES) + [("ca-bundle.crt", _ca_bytes(ca_bundle))]) as context:
        digest = role_context_hash(str(context), build_args)
        refs = {shape: "%s:%s-%s" % (USER_IMAGE_REPOSITORY, shape, digest) for shape in USER_IMAGE_SHAPES}
        for shape, ref in refs.items():
            if _image_exists(ref):
                continue
            _log("building %s (target %s on %s)" % (ref, shape, base))
            command = ["docker", "build", "--quiet", "--target", shape, "--label", "org.hubfleet.image=test-" + shape]
            for key, value in build_args.items():
                command += ["--build-arg", "%s=%s" % (key, value)]
            subprocess.run(command + ["--tag", ref, str(context)], check=True, stdout=subprocess.DEVNULL)
    return refs


def _ca_bytes(ca_bundle):
    return ca_bundle.read_bytes() if ca_bundle and Path(ca_bundle).exists() else b""


BUILDERS = {
    "singleuser": singleuser_image,
    "hub": hub_image,
    "node": node_image,
    "ldap": ldap_image,
    "pebble": pebble_image,
    "oidc": oidc_image,
    "lti": lti_image,
    "base": base_image,
    "user-images": user_images,
}

if __name__ == "__main__":
    for name in sys.argv[1:] or ["singleuser"]:
        if name not in BUILDERS:
            sys.exit("unknown image %r; choose from %s" % (name, ", ".join(sorted(BUILDERS))))
        print(BUILDERS[name]())
