# SPDX-License-Identifier: Apache-2.0
"""CURVE key files as ``orbit keygen`` writes them (config/curve_keys.hpp):
``NAME.key`` (``public-key = "..."`` and ``secret-key = "..."``, mode 0600) and
``NAME.pub`` (the public key). Keys are Z85 text, 40 characters.

A client under CURVE needs orbitd's public key and its own key pair:
``OrbitClient(curve_server_key=..., curve_key=...)``, or ``$ORBIT_CURVE_SERVER_KEY``
and ``$ORBIT_CURVE_KEY`` naming the files.
"""
from __future__ import annotations

import os
import stat
from typing import Dict, Optional, Tuple

Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
ENV_SERVER_KEY = "ORBIT_CURVE_SERVER_KEY"
ENV_CLIENT_KEY = "ORBIT_CURVE_KEY"


def is_z85_key(text: str) -> bool:
    return len(text) == 40 and all(c in Z85 for c in text)


def _read_fields(path: str) -> Dict[str, str]:
    fields: Dict[str, str] = {}
    with open(path, encoding="ascii") as f:
        for number, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, value = line.partition("=")
            value = value.strip()
            if not sep or len(value) < 2 or value[0] != '"' or value[-1] != '"':
                raise ValueError(f'{path}:{number}: expected NAME = "Z85 KEY"')
            key = value[1:-1]
            if not is_z85_key(key):
                raise ValueError(f"{path}:{number}: not a CURVE key (40 Z85 characters; "
                                 "`orbit keygen` writes them)")
            fields[name.strip()] = key
    return fields


def read_key_pair(path: str) -> Tuple[str, str]:
    """(public, secret) from a NAME.key file; refused when group or others may read it."""
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"CURVE secret key {path}: group or others may read it; chmod 600 it")
    fields = _read_fields(path)
    if "public-key" not in fields or "secret-key" not in fields:
        raise ValueError(f"CURVE secret key {path}: needs public-key and secret-key lines "
                         "(orbit keygen writes NAME.key)")
    return fields["public-key"], fields["secret-key"]


def read_public_key(path_or_key: str) -> str:
    """A Z85 public key given as itself, or read from a NAME.pub (or NAME.key) file."""
    if is_z85_key(path_or_key) and not os.path.exists(path_or_key):
        return path_or_key
    fields = _read_fields(path_or_key)
    if "public-key" not in fields:
        raise ValueError(f"CURVE public key {path_or_key}: no public-key line")
    return fields["public-key"]


def client_keys(server_key: Optional[str], own_key: Optional[object]
                ) -> Optional[Tuple[str, str, str]]:
    """(server public, client public, client secret), or None for a plain connection.

    server_key: orbitd's public key (Z85) or its NAME.pub; own_key: the client's
    NAME.key path or a (public, secret) pair. Either left None falls back to the
    environment; exactly one of the two given is an error.
    """
    server_key = server_key or os.environ.get(ENV_SERVER_KEY) or None
    own_key = own_key or os.environ.get(ENV_CLIENT_KEY) or None
    if server_key is None and own_key is None:
        return None
    if server_key is None or own_key is None:
        missing = "the server's public key (curve_server_key / $ORBIT_CURVE_SERVER_KEY)" \
            if server_key is None else "the client's key pair (curve_key / $ORBIT_CURVE_KEY)"
        raise ValueError(f"CURVE needs both keys; {missing} is missing")
    if isinstance(own_key, (tuple, list)):
        public, secret = own_key
        if not (is_z85_key(public) and is_z85_key(secret)):
            raise ValueError("curve_key pair must be two 40-character Z85 keys")
    else:
        public, secret = read_key_pair(str(own_key))
    return read_public_key(str(server_key)), public, secret
