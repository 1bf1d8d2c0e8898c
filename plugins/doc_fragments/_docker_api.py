# -*- coding: utf-8 -*-
# Copyright: inference.deepseek_v4 maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

# PRIVATE to this collection: the Docker connection options of its modules (module_utils/_docker_api.py). May
# change without notice; other collections must not use it.

from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker daemon's address, C(unix:///path/to/docker.sock) or C(tcp://host:port).
      - Unset, the value of the E(DOCKER_HOST) environment variable, else the default.
    type: str
    default: unix:///var/run/docker.sock
    aliases: [docker_url]
  api_version:
    description:
      - The Docker API version to speak, for example V(1.43). V(auto) speaks the daemon's own version.
      - Unset, the value of E(DOCKER_API_VERSION), else the default.
    type: str
    default: auto
    aliases: [docker_api_version]
  timeout:
    description:
      - Seconds to wait for each answer of the daemon. Unset, the value of E(DOCKER_TIMEOUT), else the default.
    type: int
    default: 60
  tls:
    description:
      - Talk TLS to a C(tcp://) daemon without checking its certificate (Docker's C(--tls)).
      - Unset, the value of E(DOCKER_TLS), else the default.
    type: bool
    default: false
  validate_certs:
    description:
      - Talk TLS to a C(tcp://) daemon and check its certificate against O(ca_path) (Docker's C(--tlsverify)).
      - Unset, the value of E(DOCKER_TLS_VERIFY), else the default.
    type: bool
    default: false
    aliases: [tls_verify]
  ca_path:
    description:
      - The CA certificate that signs the daemon's certificate. Unset, C(ca.pem) in E(DOCKER_CERT_PATH) where that
        exists, else the system's CA certificates.
    type: path
    aliases: [ca_cert, tls_ca_cert, cacert_path]
  client_cert:
    description: The client certificate. Unset, C(cert.pem) in E(DOCKER_CERT_PATH) where that exists.
    type: path
    aliases: [tls_client_cert, cert_path]
  client_key:
    description: The client certificate's key. Unset, C(key.pem) in E(DOCKER_CERT_PATH) where that exists.
    type: path
    aliases: [tls_client_key, key_path]
  tls_hostname:
    description:
      - The name the daemon's certificate must carry where it differs from the host of O(docker_host).
      - Unset, the value of E(DOCKER_TLS_HOSTNAME).
    type: str
notes:
  - The module talks to the Docker Engine API itself with Python's standard library; the host needs neither the
    Docker SDK for Python nor C(requests). The connection options, their aliases and environment variables are those
    of the community.docker modules; connections over SSH (C(ssh://)) are not supported.
"""
