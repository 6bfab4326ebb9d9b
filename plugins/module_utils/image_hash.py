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
    return entries_hash(root_entries(root), build_args, labels, extra)


def root_entries(root):
    """The files below ``root`` as (relative path, reader) pairs for ``entries_hash``."""
    return [(path, file_reader(os.path.join(root, path))) for path in context_files(root)]


def is_input(path):
    """Whether a file at this ``/``-separated path in a context is an input of the image."""
    return not any(_skipped(part) for part in path.split("/"))


def entries_hash(entries, build_args=None, labels=None, extra=""):
    """``context_hash`` of a context not laid out yet: ``entries`` are (relative path, reader)
    pairs, a reader being a function returning the file's bytes. The same files at the same
    paths give the same tag as the assembled directory does; paths that are no input
    (``is_input``) are left out, as the directory walk leaves them out.
    """
    digest = hashlib.sha256()

    def part(data):
        # Each part hashed on its own, so the boundary between parts counts.
        digest.update(hashlib.sha256(data).digest())

    kept = sorted(((path, read) for path, read in entries if is_input(path)), key=lambda entry: entry[0])
    for index, (path, read) in enumerate(kept):
        if index and kept[index - 1][0] == path:
            raise ValueError("two files at %s in one build context" % path)
        part(path.encode("utf-8"))
        part(read())
    part(json.dumps(build_args or {}, sort_keys=True).encode("utf-8"))
    part(json.dumps(labels or {}, sort_keys=True).encode("utf-8"))
    if extra:
        part(extra.encode("utf-8"))
    return digest.hexdigest()[:HASH_LENGTH]


def file_reader(path):
    """A reader for ``entries_hash``: a function returning the bytes of the file at ``path``."""
    def read():
        with open(path, "rb") as handle:
            return handle.read()
    return read
