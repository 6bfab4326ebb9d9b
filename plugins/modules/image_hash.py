#!/usr/bin/python
# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: image_hash
short_description: The content hash that tags an image built from a context directory
version_added: 0.1.0
description:
  - Computes the digest of everything that goes into an image build, every file of the build context
    O(path) (its path and bytes), the O(build_args) and the O(labels), as 16 hex digits.
  - The context need not be laid out yet. O(sources) and O(contents) add files at the places they will
    have in it, so the tag can be known, and an existing image found, before any file is copied to the
    host that builds. The hash is the one of the assembled directory.
  - Hubfleet tags its images with it, so a build whose tag already exists on the engine can be skipped,
    and the test bed, which uses the same function, gets the same tag for the same inputs.
  - Byte code and packaging leftovers (C(__pycache__), C(.pytest_cache), C(*.pyc), C(*.egg-info)) are no input.
  - Reads files only; it never changes anything, in check mode or not.
author:
  - Hubfleet contributors (@hubfleet)
extends_documentation_fragment:
  - hubfleet.jupyterhub.attributes
attributes:
  check_mode:
    details: Computes the hash as in a normal run.
  diff_mode:
    support: N/A
    details: Nothing is changed, so there is no difference to show.
options:
  path:
    description: The build context directory on the host running the module.
    type: path
    required: true
  sources:
    description:
      - Further files of the context, keyed by their path relative to the context's root (with C(/)
        separators); each value is the file to read, on the host running the module.
    type: dict
    default: {}
  contents:
    description:
      - Further files of the context given by their content, base64-encoded (as C(ansible.builtin.slurp)
        returns it), keyed by their path relative to the context's root.
    type: dict
    default: {}
  build_args:
    description: The build arguments the image is built with.
    type: dict
    default: {}
  labels:
    description: The labels the image is built with.
    type: dict
    default: {}
  extra:
    description:
      - Any other input that is not a file of the context, for example the digest of a pulled C(FROM) image,
        so that a newer one changes the tag. Left out of the hash when empty.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Hash the hub image's build context
  hubfleet.jupyterhub.image_hash:
    path: /tmp/hub-context
    build_args:
      JUPYTERHUB_VERSION: "6.1.1"
  register: hub_hash

- name: Hash a context not laid out yet, on the controller where its files are
  hubfleet.jupyterhub.image_hash:
    path: "{{ role_path }}/files/hub"
    sources:
      spawner/pyproject.toml: /src/spawner/pyproject.toml
    contents:
      ca-bundle.crt: "{{ ca_bundle.content }}"
  delegate_to: localhost

- name: Build it unless that tag exists
  community.docker.docker_image:
    name: hubfleet/hub
    tag: "{{ hub_hash.hash }}"
    source: build
    build:
      path: /tmp/hub-context
      args:
        JUPYTERHUB_VERSION: "6.1.1"
"""

RETURN = r"""
hash:
  description: The content hash, 16 lowercase hex digits.
  returned: success
  type: str
  sample: 288fbd5ca7ea9e2d
files:
  description: How many files of the context went into the hash.
  returned: success
  type: int
  sample: 42
"""

import base64
import binascii
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.image_hash import entries_hash, file_reader, is_input, root_entries


def _entries(module):
    """The context's files as (path, reader) pairs; fails naming the bad parameter."""
    path = module.params["path"]
    if not os.path.isdir(path):
        module.fail_json(msg="path: %s is not a directory (the build context must exist)" % path)
    entries = root_entries(path)
    for option in ("sources", "contents"):
        for dest in module.params[option]:
            if not dest or dest.startswith("/") or ".." in dest.split("/"):
                module.fail_json(msg="%s: %r is not a relative path inside the context" % (option, dest))
    for dest, src in module.params["sources"].items():
        if not os.path.isfile(src):
            module.fail_json(msg="sources[%s]: %s is not a file" % (dest, src))
        entries.append((dest, file_reader(src)))
    for dest, encoded in module.params["contents"].items():
        try:
            data = base64.b64decode(encoded or "")
        except (binascii.Error, TypeError, ValueError) as exc:
            module.fail_json(msg="contents[%s]: not base64: %s" % (dest, exc))
        entries.append((dest, lambda data=data: data))
    return entries


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            build_args=dict(type="dict", default={}),
            labels=dict(type="dict", default={}),
            extra=dict(type="str", default=""),
            sources=dict(type="dict", default={}),
            contents=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    entries = _entries(module)
    # Build arguments and labels reach Docker as strings; hash them the way they are used.
    build_args = dict((str(k), str(v)) for k, v in module.params["build_args"].items())
    labels = dict((str(k), str(v)) for k, v in module.params["labels"].items())
    try:
        digest = entries_hash(entries, build_args, labels, module.params["extra"])
    except (IOError, OSError) as exc:
        module.fail_json(msg="path: cannot read the build context: %s" % exc)
    except ValueError as exc:
        module.fail_json(msg="sources: %s" % exc)
    module.exit_json(changed=False, hash=digest, files=len([entry for entry in entries if is_input(entry[0])]))


if __name__ == "__main__":
    main()
