# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The content hash that tags Hubfleet's images: what changes it and what does not."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.image_hash import (
    context_files, context_hash, entries_hash, file_reader, root_entries)


def write(root, path, content):
    full = os.path.join(str(root), path)
    if not os.path.isdir(os.path.dirname(full)):
        os.makedirs(os.path.dirname(full))
    with open(full, "wb") as handle:
        handle.write(content)


@pytest.fixture
def context(tmp_path):
    write(tmp_path, "Dockerfile", b"FROM base\n")
    write(tmp_path, "spawner/pkg/module.py", b"x = 1\n")
    return tmp_path


def test_the_hash_is_sixteen_hex_digits_and_stable(context):
    first = context_hash(str(context), {"A": "1"}, {"l": "v"})
    assert len(first) == 16 and int(first, 16) >= 0
    assert context_hash(str(context), {"A": "1"}, {"l": "v"}) == first


@pytest.mark.parametrize("change", [
    lambda root: write(root, "Dockerfile", b"FROM other\n"),
    lambda root: write(root, "new-file", b""),
    lambda root: os.rename(os.path.join(str(root), "spawner/pkg/module.py"), os.path.join(str(root), "spawner/pkg/moved.py")),
])
def test_any_file_change_changes_the_hash(context, change):
    before = context_hash(str(context))
    change(context)
    assert context_hash(str(context)) != before


def test_build_args_labels_and_extra_are_inputs(context):
    plain = context_hash(str(context))
    assert context_hash(str(context), {"A": "1"}) != plain
    assert context_hash(str(context), labels={"A": "1"}) != plain
    assert context_hash(str(context), {"A": "1"}) != context_hash(str(context), labels={"A": "1"})
    assert context_hash(str(context), extra="sha256:abc") != plain
    # Order of the dicts does not matter.
    assert context_hash(str(context), {"A": "1", "B": "2"}) == context_hash(str(context), {"B": "2", "A": "1"})


def test_byte_code_and_packaging_leftovers_are_no_input(context):
    before = context_hash(str(context))
    write(context, "spawner/pkg/__pycache__/module.cpython-311.pyc", b"\0")
    write(context, "spawner/pkg/stray.pyc", b"\0")
    write(context, "spawner/pkg.egg-info/PKG-INFO", b"Name: pkg\n")
    write(context, "spawner/.pytest_cache/v", b"")
    assert context_hash(str(context)) == before
    assert context_files(str(context)) == ["Dockerfile", "spawner/pkg/module.py"]


def test_a_boundary_between_path_and_content_counts(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    write(one, "ab", b"c")
    write(two, "a", b"bc")
    assert context_hash(str(one)) != context_hash(str(two))


def test_a_context_not_laid_out_yet_hashes_as_the_assembled_directory(tmp_path, context):
    """The role hashes on the controller before copying anything: the definition directory,
    further files placed below a destination, and content given inline."""
    source = tmp_path / "source"
    write(source, "pkg/module.py", b"x = 1\n")
    write(source, "pkg/__pycache__/module.cpython-311.pyc", b"\0")
    entries = root_entries(str(context))
    # The assembled context already holds spawner/pkg/module.py; the rest arrives as entries.
    write(context, "ca-bundle.crt", b"-----BEGIN CERTIFICATE-----\n")
    assembled = context_hash(str(context), {"A": "1"}, {"l": "v"})
    entries = [entry for entry in entries if entry[0] != "spawner/pkg/module.py"]
    entries += [("spawner/pkg/module.py", file_reader(str(source / "pkg/module.py"))),
                ("spawner/pkg/__pycache__/module.cpython-311.pyc",
                 file_reader(str(source / "pkg/__pycache__/module.cpython-311.pyc"))),
                ("ca-bundle.crt", lambda: b"-----BEGIN CERTIFICATE-----\n")]
    assert entries_hash(entries, {"A": "1"}, {"l": "v"}) == assembled
    assert entries_hash(entries[:-1], {"A": "1"}, {"l": "v"}) != assembled


def test_two_files_at_one_path_are_refused(context):
    entries = root_entries(str(context)) + [("Dockerfile", lambda: b"FROM other\n")]
    with pytest.raises(ValueError, match="two files at Dockerfile"):
        entries_hash(entries)
