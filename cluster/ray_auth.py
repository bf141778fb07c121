"""Ray's cluster token on the embedded default: found where Ray's CLIs look, created once if none.

Ray 2.5x turns token authentication on for `ray start`, and `ray start` refuses token mode
when no token exists yet: on a fresh machine (no ~/.ray) `make serve` failed there. The
token is what keeps Ray's own ports, which listen on the machine's address whatever one
asks, closed to anyone without it, so `make serve` keeps token mode and creates the token
the way `ray get-auth-token --generate` does: in ~/.ray/auth_token, where every Ray CLI
(`ray job submit`, `serve status`) finds it once RAY_AUTH_MODE=token is set.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

AUTH_MODE_VAR = "RAY_AUTH_MODE"


def token_mode(environ: Mapping[str, str]) -> bool:
    return environ.get(AUTH_MODE_VAR, "").lower() == "token"


def token_path(environ: Mapping[str, str]) -> Path:
    """Where Ray reads the token from a file: $RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token."""
    if environ.get("RAY_AUTH_TOKEN_PATH"):
        return Path(environ["RAY_AUTH_TOKEN_PATH"]).expanduser()
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".ray" / "auth_token"


def read_token(environ: Mapping[str, str]) -> str | None:
    """The token Ray's CLIs would send: $RAY_AUTH_TOKEN, else the file's; None if neither."""
    if environ.get("RAY_AUTH_TOKEN", "").strip():
        return environ["RAY_AUTH_TOKEN"].strip()
    path = token_path(environ)
    token = path.read_text().strip() if path.is_file() else ""
    return token or None


def has_token(environ: Mapping[str, str]) -> bool:
    return read_token(environ) is not None


def ensure_token(environ: Mapping[str, str]) -> Path | None:
    """Create the token file when token mode is on and Ray would find no token.

    Returns the path it created, or None when nothing was needed. The file is the owner's
    alone (0600), in a 0700 folder: it admits whoever holds it to run code on the cluster.
    """
    if not token_mode(environ) or has_token(environ):
        return None
    path = token_path(environ)
    if path.exists():
        raise RuntimeError(f"{path} holds no Ray token: delete it to have one created, or write "
                           "the cluster's token into it")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # O_EXCL: a token another process wrote meanwhile is kept, never overwritten.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))  # the shape of Ray's own generated tokens
    return path
