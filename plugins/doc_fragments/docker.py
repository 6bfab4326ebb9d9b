# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Connection options of every hubfleet.jupyterhub module (module_utils/docker_common.py)."""

    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker daemon to talk to, for example V(unix:///var/run/docker.sock) or V(tcp://192.0.2.10:2376).
      - If not given, the E(DOCKER_HOST) environment variable is used, else the local socket.
    type: str
    default: unix:///var/run/docker.sock
    aliases: [docker_url]
  tls:
    description:
      - Talk to the daemon over TLS without verifying its certificate.
      - If not given, the E(DOCKER_TLS) environment variable is used.
    type: bool
    default: false
  validate_certs:
    description:
      - Talk to the daemon over TLS and verify its certificate against O(ca_path).
      - If not given, the E(DOCKER_TLS_VERIFY) environment variable is used.
    type: bool
    default: false
    aliases: [tls_verify]
  ca_path:
    description:
      - CA certificate that signed the daemon's certificate.
      - Defaults to C(ca.pem) in the E(DOCKER_CERT_PATH) directory when that file exists.
    type: path
    aliases: [ca_cert, tls_ca_cert]
  client_cert:
    description:
      - Client certificate presented to the daemon. Requires O(client_key).
      - Defaults to C(cert.pem) in the E(DOCKER_CERT_PATH) directory when that file exists.
    type: path
    aliases: [tls_client_cert, cert_path]
  client_key:
    description:
      - Private key of O(client_cert).
      - Defaults to C(key.pem) in the E(DOCKER_CERT_PATH) directory when that file exists.
    type: path
    aliases: [tls_client_key, key_path]
  timeout:
    description:
      - Seconds to wait for an answer from the daemon.
      - If not given, the E(DOCKER_TIMEOUT) environment variable is used.
    type: int
    default: 60
  api_version:
    description:
      - Docker API version to use; V(auto) asks the daemon.
      - If not given, the E(DOCKER_API_VERSION) environment variable is used.
    type: str
    default: auto
    aliases: [docker_api_version]
requirements:
  - Docker SDK for Python (C(docker)) 7.1 or newer.
notes:
  - The modules talk to the daemon through the Docker API; run them on a host that can reach O(docker_host).
"""
