"""Credentials for remote IPFS endpoints: a gateway's Kubo RPC API or a pinning service.

A light device publishes through someone else's node, which wants a token. The token is
read from a file, never taken from the command line (every user sees arguments in
``ps``), and is sent only where nobody on the path can read it: over HTTPS, or over plain
HTTP to this machine (a loopback address, as a local TLS-terminating proxy would be).
"""

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

from flare.errors import ConfigError

MAX_CREDENTIAL_FILE_BYTES = 16 * 1024
"""Far above any header or token; a larger file is a wrong path, not a credential."""


def read_header_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The HTTP headers a file holds, one ``Name: value`` a line (e.g.
    ``Authorization: Bearer …``); blank lines and lines starting with ``#`` are skipped.

    Refuses a file without any header, a malformed line and a value with control
    characters, which could smuggle a second header into the request.
    """
    headers: dict[str, str] = {}
    for number, line in enumerate(_read_credential_file(path).splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, colon, value = stripped.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not _is_header_name(name) or not value or not value.isprintable():
            raise ConfigError(
                f"header file {path}, line {number}: expected 'Name: value' in printable "
                "characters (the value is not shown)"
            )
        headers[name] = value
    if not headers:
        raise ConfigError(f"header file {path} holds no 'Name: value' line")
    return headers


def read_token_file(path: str | os.PathLike[str]) -> str:
    """A bearer token: the file's one non-empty line, without its line break."""
    token = _read_credential_file(path).strip()
    if not token or not token.isprintable() or any(char.isspace() for char in token):
        raise ConfigError(f"token file {path} must hold one token: printable, no spaces")
    return token


def check_credential_transport(url: str, what: str) -> None:
    """Refuse to send credentials to ``url`` unless HTTPS or a loopback HTTP address."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and _is_loopback(parts.hostname or ""):
        return
    raise ConfigError(
        f"{what} {url}: credentials go only over https:// (or http:// to this machine), "
        "where nobody on the way can read them"
    )


def _read_credential_file(path: str | os.PathLike[str]) -> str:
    source = Path(path)
    try:
        with source.open("rb") as file:
            raw = file.read(MAX_CREDENTIAL_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CREDENTIAL_FILE_BYTES:
        raise ConfigError(f"{source} is over {MAX_CREDENTIAL_FILE_BYTES} bytes; not a credential")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(f"{source} is not ASCII text, as HTTP headers are") from None


def _is_header_name(name: str) -> bool:
    """An RFC 9110 token: the characters a header name may have."""
    allowed = "!#$%&'*+-.^_`|~"
    return bool(name) and all(char.isalnum() or char in allowed for char in name)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
