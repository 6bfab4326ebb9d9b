"""Build the images the tests need, from Debian packages, cached by content hash.

    python -m testbed.images          # prints the singleuser image reference

The base image comes from roles/images/files/build-base-image.sh (debootstrap, no
registry); the singleuser image from roles/images/files/singleuser/Dockerfile — the
same definitions the `images` role deploys, so tests run what operators run. The
tag hashes every input (Dockerfile, base image id, build args, CA bundle), so a
rerun with the same inputs does not build again.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE_FILES = ROOT / "roles" / "images" / "files"
HOST_CA_BUNDLE = Path(os.environ.get("HUBFLEET_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
SINGLEUSER_REPOSITORY = "hubfleet/singleuser"
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


def singleuser_image(jupyterhub_version=None, ca_bundle=HOST_CA_BUNDLE):
    """Build (or find) the singleuser image matching the hub's JupyterHub version."""
    if jupyterhub_version is None:
        import jupyterhub

        jupyterhub_version = jupyterhub.__version__
    base = base_image()
    dockerfile = (IMAGE_FILES / "singleuser" / "Dockerfile").read_bytes()
    ca_bytes = ca_bundle.read_bytes() if ca_bundle and ca_bundle.exists() else b""
    digest = hashlib.sha256()
    for part in (dockerfile, _image_id(base).encode(), jupyterhub_version.encode(), ca_bytes):
        digest.update(hashlib.sha256(part).digest())
    ref = "%s:%s" % (SINGLEUSER_REPOSITORY, digest.hexdigest()[:16])
    if _image_exists(ref):
        return ref
    _log("building %s (jupyterhub %s on %s, about a minute)" % (ref, jupyterhub_version, base))
    with tempfile.TemporaryDirectory(prefix="hubfleet-build-") as context:
        shutil.copy(IMAGE_FILES / "singleuser" / "Dockerfile", Path(context) / "Dockerfile")
        (Path(context) / "ca-bundle.crt").write_bytes(ca_bytes)
        subprocess.run(
            [
                "docker", "build", "--quiet",
                "--build-arg", "BASE_IMAGE=%s" % base,
                "--build-arg", "JUPYTERHUB_VERSION=%s" % jupyterhub_version,
                "--label", "org.hubfleet.image=singleuser",
                "--tag", ref,
                context,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return ref


if __name__ == "__main__":
    print(singleuser_image())
