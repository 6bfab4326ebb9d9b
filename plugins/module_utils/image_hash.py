# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one content hash that names Hubfleet's images.

An image is tagged with a digest of everything that goes into its build: every file of the
build context (path and bytes), the build arguments and the labels. The ``images`` role
(through the ``image_hash`` module) and the test bed (``testbed/images.py``) both tag with
``context_hash()``, so the same inputs give the same tag wherever they are built, and a
build whose tag exists is skipped.

Pure standard library: no Ansible, no Docker.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os

HASH_LENGTH = 16
# Never inputs of an image: byte code and packaging leftovers of a Python source tree.
SKIPPED_DIRS = ("__pycache__", ".pytest_cache")
SKIPPED_SUFFIXES = (".pyc", ".egg-info")


def _skipped(name):
    return name in SKIPPED_DIRS or name.endswith(SKIPPED_SUFFIXES)


def context_files(root):
    """Every file below ``root`` as sorted ``/``-separated relative paths (symlinks followed)."""
    found = []
    for directory, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [name for name in dirnames if not _skipped(name)]
        relative = os.path.relpath(directory, root)
        for name in filenames:
            if not _skipped(name):
                path = name if relative == "." else os.path.join(relative, name)
                found.append(path.replace(os.sep, "/"))
    return sorted(found)


def context_hash(root, build_args=None, labels=None, extra=""):
    """The tag of the image built from the context directory ``root`` with these arguments and labels.

    ``extra``: any other input that is not a file of the context (e.g. the digest of a pulled
    ``FROM`` image); left out of the hash when empty.
    """
    digest = hashlib.sha256()

    def part(data):
        # Each part hashed on its own, so the boundary between parts counts.
        digest.update(hashlib.sha256(data).digest())

    for path in context_files(root):
        part(path.encode("utf-8"))
        with open(os.path.join(root, path), "rb") as handle:
            part(handle.read())
    part(json.dumps(build_args or {}, sort_keys=True).encode("utf-8"))
    part(json.dumps(labels or {}, sort_keys=True).encode("utf-8"))
    if extra:
        part(extra.encode("utf-8"))
    return digest.hexdigest()[:HASH_LENGTH]
