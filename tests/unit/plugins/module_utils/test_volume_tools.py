# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of volume_tools: archive entry names, fingerprints and manifests."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import tarfile

import pytest

from ansible_collections.hubfleet.jupyterhub.plugins.module_utils import volume_tools
from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.volume_tools import (
    archive_manifest,
    entry_fingerprint,
    manifest_contains,
)


@pytest.mark.parametrize(
    "api_name, relative",
    [
        ("hubfleet-volume", "."),
        ("hubfleet-volume/", "."),
        ("hubfleet-volume/a.txt", "./a.txt"),
        ("hubfleet-volume/dir/sub/file", "./dir/sub/file"),
    ],
)
def test_archive_api_names_become_volume_relative(api_name, relative):
    assert volume_tools._relative_name(api_name) == relative


@pytest.mark.parametrize("name, key", [(".", "."), ("./", "."), ("./a", "./a"), ("a/b", "./a/b"), ("./d/", "./d")])
def test_backup_entry_names_are_normalised(name, key):
    assert volume_tools._entry_key(name) == key


def test_chunk_reader_reads_across_chunks():
    reader = volume_tools._ChunkReader([b"ab", b"", b"cde", b"f"])
    assert reader.read(3) == b"abc"
    assert reader.read(1) == b"d"
    assert reader.read() == b"ef"
    assert reader.read(5) == b""


def _member(name, data=None, mode=0o644, uid=0, gid=0, mtime=1000, kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
    if data is not None:
        info.size = len(data)
    return info


def _fingerprint(data=b"x", **kwargs):
    return entry_fingerprint(_member("f", data, **kwargs), io.BytesIO(data))


def test_fingerprint_sees_content_owner_mode_and_time():
    base = _fingerprint()
    assert _fingerprint() == base
    assert _fingerprint(b"y") != base
    assert _fingerprint(uid=1000) != base
    assert _fingerprint(gid=100) != base
    assert _fingerprint(mode=0o600) != base
    assert _fingerprint(mtime=2000) != base


def test_fingerprint_ignores_file_type_bits_in_mode():
    # The archive API puts S_IFREG into the mode; Python's tarfile does not.
    assert _fingerprint(mode=0o100644) == _fingerprint(mode=0o644)


def test_directory_time_is_not_compared():
    one = entry_fingerprint(_member("d", kind=tarfile.DIRTYPE, mtime=1))
    two = entry_fingerprint(_member("d", kind=tarfile.DIRTYPE, mtime=2))
    assert one == two


def _write_archive(path, entries):
    with tarfile.open(str(path), "w:gz") as archive:
        for name, data, kwargs in entries:
            if data is None:
                archive.addfile(_member(name, kind=tarfile.DIRTYPE, mode=0o755, **kwargs))
            else:
                archive.addfile(_member(name, data, **kwargs), io.BytesIO(data))


def test_archive_manifest_keys_by_relative_name(tmp_path):
    path = tmp_path / "b.tar.gz"
    _write_archive(path, [(".", None, {}), ("./a", b"1", {"uid": 1000}), ("dir", None, {})])
    manifest = archive_manifest(str(path))
    assert sorted(manifest) == [".", "./a", "./dir"]
    assert manifest["./a"][2] == 1000


def test_archive_manifest_rejects_non_archives(tmp_path):
    path = tmp_path / "not.tar.gz"
    path.write_bytes(b"plain text, not a tar")
    with pytest.raises(tarfile.TarError):
        archive_manifest(str(path))


def test_volume_contains_archive_when_every_entry_matches():
    archive = {".": ("d",), "./a": ("f", 1)}
    assert manifest_contains({".": ("d",), "./a": ("f", 1), "./extra": ("f", 2)}, archive)
    assert not manifest_contains({".": ("d",), "./a": ("f", 2)}, archive)
    assert not manifest_contains({".": ("d",)}, archive)
    assert manifest_contains({}, {})
