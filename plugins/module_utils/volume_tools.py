# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volume helpers shared by hub_volume and user_volumes.

Backup and restore go through the Docker archive API (what ``docker cp`` uses) on a
helper container that is created but never started: the container only has to
exist so the daemon mounts the volume for the copy. So the helper image needs no
shell, tar or gzip — any image already on the engine works (no registry is needed)
— the daemon keeps owners, modes and times, and it works the same for a remote
``docker_host``. The archive file itself is written/read on the host running the
module.

A backup is a ``tar.gz`` whose entries are relative to the volume root (``.``,
``./file``...). A restore sends it back as is; the daemon unpacks gzip itself and
refuses entries that would leave the volume.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import tarfile
import tempfile

from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.docker_common import HAS_DOCKER

if HAS_DOCKER:
    from docker.types import Mount

HELPER_MOUNT = "/hubfleet-volume"
HELPER_LABEL = "hubfleet.helper"


def containers_using_volume(client, name):
    """Names of all containers (running or not) that mount volume ``name``."""
    return sorted(
        (container.get("Names") or [container["Id"][:12]])[0].lstrip("/")
        for container in client.containers(all=True, filters={"volume": name})
    )


def check_image_present(client, image):
    """Raise ``ValueError`` naming ``image`` if it is not on the engine (nothing is pulled)."""
    if not image:
        raise ValueError("image is required for backup and restore: name an image already present on the engine.")
    if not client.images(name=image, quiet=True):
        try:
            client.inspect_image(image)
        except Exception:
            raise ValueError(
                "image: %r is not present on the Docker engine; it is never pulled, build or load it first." % image
            )


class _ChunkReader(object):
    """A read()-able file over an iterator of byte chunks (the archive API's stream)."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size=-1):
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _relative_name(name):
    """``volume/a/b`` (as the archive API names entries) -> ``./a/b``; the root -> ``.``."""
    parts = name.lstrip("./").split("/", 1)
    return "./" + parts[1] if len(parts) > 1 and parts[1] else "."


def _entry_key(name):
    """A backup entry's name as ``_relative_name`` writes it."""
    name = name.rstrip("/")
    if name in ("", "."):
        return "."
    return name if name.startswith("./") else "./" + name


def entry_fingerprint(member, fileobj=None):
    """What must match for two archive entries to hold the same data and metadata."""
    digest = None
    if member.isreg() and fileobj is not None:
        sha = hashlib.sha256()
        for chunk in iter(lambda: fileobj.read(1 << 20), b""):
            sha.update(chunk)
        digest = sha.hexdigest()
    return (
        member.type if member.type != tarfile.AREGTYPE else tarfile.REGTYPE,
        member.mode & 0o7777,
        member.uid,
        member.gid,
        member.size if member.isreg() else 0,
        member.linkname,
        digest,
        # A directory's time changes whenever an entry is written into it.
        None if member.isdir() else int(member.mtime),
    )


def archive_manifest(path):
    """``{entry: fingerprint}`` of a backup file; raises ``tarfile.TarError``/``OSError``."""
    manifest = {}
    with tarfile.open(path, mode="r:*") as archive:
        for member in archive:
            fileobj = archive.extractfile(member) if member.isreg() else None
            manifest[_entry_key(member.name)] = entry_fingerprint(member, fileobj)
    return manifest


class VolumeArchiver(object):
    """Reads and writes one volume's contents through a never-started helper container."""

    def __init__(self, client, volume, image, labels=None):
        self.client = client
        self.volume = volume
        self.image = image
        self.labels = dict(labels or {})
        self.labels[HELPER_LABEL] = "volume-archive"
        self._container = None

    def __enter__(self):
        check_image_present(self.client, self.image)
        host_config = self.client.create_host_config(
            # no_copy: never copy image content into the volume.
            mounts=[Mount(HELPER_MOUNT, self.volume, type="volume", no_copy=True)],
        )
        self._container = self.client.create_container(
            self.image, command=["/hubfleet-never-started"], labels=self.labels,
            host_config=host_config, network_disabled=True,
        )["Id"]
        return self

    def __exit__(self, *exc_info):
        if self._container:
            self.client.remove_container(self._container, force=True)
            self._container = None
        return False

    def _open_stream(self):
        stream, dummy_stat = self.client.get_archive(self._container, HELPER_MOUNT)
        return tarfile.open(fileobj=_ChunkReader(stream), mode="r|")

    def is_empty(self):
        """Whether the volume holds no entry besides its root (reads at most two)."""
        with self._open_stream() as archive:
            for count, dummy_member in enumerate(archive):
                if count >= 1:
                    return False
        return True

    def manifest(self):
        """``{entry: fingerprint}`` of the volume's contents."""
        manifest = {}
        with self._open_stream() as archive:
            for member in archive:
                fileobj = archive.extractfile(member) if member.isreg() else None
                manifest[_relative_name(member.name)] = entry_fingerprint(member, fileobj)
        return manifest

    def backup(self, path):
        """Write the volume to ``path`` (tar.gz, mode 0600, atomic).

        Returns ``(changed, manifest)``; an existing file with the same contents is
        kept as it is (``changed`` false).
        """
        directory = os.path.dirname(os.path.abspath(path))
        handle, temporary = tempfile.mkstemp(prefix=".hubfleet-backup-", suffix=".tar.gz", dir=directory)
        os.close(handle)
        os.chmod(temporary, 0o600)
        try:
            with self._open_stream() as source:
                with tarfile.open(temporary, mode="w:gz", format=tarfile.PAX_FORMAT) as target:
                    for member in source:
                        member.name = _relative_name(member.name)
                        member.mode &= 0o7777
                        if member.isreg():
                            target.addfile(member, source.extractfile(member))
                        else:
                            target.addfile(member)
            manifest = archive_manifest(temporary)
            if os.path.isfile(path) and archive_manifest(path) == manifest:
                os.unlink(temporary)
                return False, manifest
            os.rename(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return True, manifest

    def restore(self, path):
        """Unpack the backup at ``path`` into the volume, keeping owners and modes."""
        with open(path, "rb") as data:
            self.client.put_archive(self._container, HELPER_MOUNT, data)


def manifest_contains(volume_manifest, archive_manifest_):
    """Whether every entry of the archive is in the volume, identical (the root's times aside)."""
    return all(volume_manifest.get(name) == fingerprint for name, fingerprint in archive_manifest_.items())
