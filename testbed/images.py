"""Build the images the tests need, from Debian packages, cached by content hash.

    python -m testbed.images                    # prints the singleuser image reference
    python -m testbed.images singleuser hub node  # builds and prints each

The base image comes from roles/images/files/build-base-image.sh (debootstrap, no
registry); the singleuser and hub images from roles/images/files/{singleuser,hub}/Dockerfile
— the same definitions the `images` role deploys, so tests run what operators run. The
swarm test bed's Docker-in-Docker host comes from testbed/node/. Each tag hashes every
input (Dockerfile, base image id, build args, CA bundle, copied sources), so a rerun with
the same inputs does not build again.
"""

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE_FILES = ROOT / "roles" / "images" / "files"
HOST_CA_BUNDLE = Path(os.environ.get("HUBFLEET_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
NODE_FILES = ROOT / "testbed" / "node"
USER_IMAGE_FILES = ROOT / "testbed" / "user_images"
USER_IMAGE_REPOSITORY = "hubfleet-test/user-image"
# The image shapes of testbed/user_images/Dockerfile (its build targets).
USER_IMAGE_SHAPES = ("minimal", "uid1001", "rootstart", "prefilled")
SINGLEUSER_REPOSITORY = "hubfleet/singleuser"
HUB_REPOSITORY = "hubfleet/hub"
NODE_REPOSITORY = "hubfleet-test/swarm-node"
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


def _image_id(ref):
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", ref],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return out.stdout.strip()


def _image_exists(ref):
    return (
        subprocess.run(
            ["docker", "image", "inspect", ref], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ).returncode
        == 0
    )


def content_hash(*parts):
    """A short hex digest of byte strings, each hashed on its own so boundaries count."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


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


def _build(ref, context, build_args, image_label, what):
    """``docker build`` the prepared ``context`` directory as ``ref``."""
    _log("building %s (%s)" % (ref, what))
    command = ["docker", "build", "--quiet", "--label", "org.hubfleet.image=%s" % image_label, "--tag", ref]
    for key, value in build_args.items():
        command += ["--build-arg", "%s=%s" % (key, value)]
    subprocess.run(command + [str(context)], check=True, stdout=subprocess.DEVNULL)
    return ref


def _jupyterhub_image(kind, repository, jupyterhub_version, ca_bundle, extra_files=(), duration=""):
    """Build (or find) roles/images/files/<kind>/Dockerfile on the base image.

    ``extra_files`` are (path in the build context, content) pairs, hashed into the tag too.
    """
    if jupyterhub_version is None:
        import jupyterhub

        jupyterhub_version = jupyterhub.__version__
    base = base_image()
    dockerfile = (IMAGE_FILES / kind / "Dockerfile").read_bytes()
    # The rest of the role's context directory, as the images role copies it.
    extra_files = [item for item in _tree_bytes(IMAGE_FILES / kind) if item[0] != "Dockerfile"] + list(extra_files)
    ca_bytes = _ca_bytes(ca_bundle)
    parts = [dockerfile, _image_id(base).encode(), jupyterhub_version.encode(), ca_bytes]
    for name, content in extra_files:
        parts += [name.encode(), content]
    ref = "%s:%s" % (repository, content_hash(*parts))
    if _image_exists(ref):
        return ref
    with tempfile.TemporaryDirectory(prefix="hubfleet-build-") as context:
        context = Path(context)
        for name, content in [("Dockerfile", dockerfile), ("ca-bundle.crt", ca_bytes)] + list(extra_files):
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            (context / name).write_bytes(content)
        return _build(
            ref,
            context,
            {"BASE_IMAGE": base, "JUPYTERHUB_VERSION": jupyterhub_version},
            kind,
            "jupyterhub %s on %s, %s" % (jupyterhub_version, base, duration),
        )


def singleuser_image(jupyterhub_version=None, ca_bundle=HOST_CA_BUNDLE):
    """Build (or find) the singleuser image matching the hub's JupyterHub version."""
    return _jupyterhub_image("singleuser", SINGLEUSER_REPOSITORY, jupyterhub_version, ca_bundle, duration="about a minute")


def hub_image(jupyterhub_version=None, ca_bundle=HOST_CA_BUNDLE):
    """Build (or find) the hub image with the spawner source as it is in the working tree.

    The build context is a temporary directory holding the hub Dockerfile, the CA bundle
    and a copy of spawner/ without tests and packaging leftovers — what the Dockerfile
    COPYs from a repository-root context, without writing ca-bundle.crt into the checkout.
    The tag hashes those files, so any edit to the spawner builds a new image (only the
    last layers: Docker's layer cache keeps JupyterHub and CHP).
    """
    spawner_files = [("spawner/" + name, content) for name, content in _tree_bytes(ROOT / "spawner")]
    return _jupyterhub_image(
        "hub", HUB_REPOSITORY, jupyterhub_version, ca_bundle, spawner_files, duration="about two minutes cold"
    )


def node_image():
    """Build (or find) the Docker-in-Docker host image of the swarm test bed (testbed/node/)."""
    base = base_image()
    node_files = _tree_bytes(NODE_FILES)
    parts = [_image_id(base).encode()]
    for name, content in node_files:
        parts += [name.encode(), content]
    ref = "%s:%s" % (NODE_REPOSITORY, content_hash(*parts))
    if _image_exists(ref):
        return ref
    return _build(ref, NODE_FILES, {"BASE_IMAGE": base}, "swarm-node", "Debian's docker.io on %s" % base)


def user_images(jupyterhub_version=None, ca_bundle=HOST_CA_BUNDLE):
    """Build (or find) the notebook images of other shapes (testbed/user_images/):
    returns {shape: reference}. One build context; the targets share the venv layer."""
    if jupyterhub_version is None:
        import jupyterhub

        jupyterhub_version = jupyterhub.__version__
    base = base_image()
    files = _tree_bytes(USER_IMAGE_FILES)
    ca_bytes = _ca_bytes(ca_bundle)
    parts = [_image_id(base).encode(), jupyterhub_version.encode(), ca_bytes]
    for name, content in files:
        parts += [name.encode(), content]
    digest = content_hash(*parts)
    refs = {shape: "%s:%s-%s" % (USER_IMAGE_REPOSITORY, shape, digest) for shape in USER_IMAGE_SHAPES}
    missing = [shape for shape, ref in refs.items() if not _image_exists(ref)]
    if not missing:
        return refs
    with tempfile.TemporaryDirectory(prefix="hubfleet-build-") as context:
        context = Path(context)
        for name, content in files + [("ca-bundle.crt", ca_bytes)]:
            (context / name).write_bytes(content)
        for shape in missing:
            _log("building %s (target %s on %s)" % (refs[shape], shape, base))
            subprocess.run(
                ["docker", "build", "--quiet", "--target", shape, "--label", "org.hubfleet.image=test-" + shape,
                 "--build-arg", "BASE_IMAGE=" + base, "--build-arg", "JUPYTERHUB_VERSION=" + jupyterhub_version,
                 "--tag", refs[shape], str(context)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
    return refs


def _ca_bytes(ca_bundle):
    return ca_bundle.read_bytes() if ca_bundle and Path(ca_bundle).exists() else b""


BUILDERS = {
    "singleuser": singleuser_image,
    "hub": hub_image,
    "node": node_image,
    "base": base_image,
    "user-images": user_images,
}

if __name__ == "__main__":
    for name in sys.argv[1:] or ["singleuser"]:
        if name not in BUILDERS:
            sys.exit("unknown image %r; choose from %s" % (name, ", ".join(sorted(BUILDERS))))
        print(BUILDERS[name]())
