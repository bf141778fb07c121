"""Decode a request body into plain JSON data that can be stored and answered again.

`json.loads` accepts more than JSON: NaN and Infinity, lone UTF-16 surrogates ("\\ud800"),
and nesting as deep as the stack. Stored in metadata, each of those fails every later
answer that carries the memory (Starlette renders with allow_nan=False and UTF-8), so they
are refused here, with the field that holds them, before anything is stored.
"""
from __future__ import annotations

import json
from typing import Any

from serve.errors import bad_request

MAX_DEPTH = 32  # objects and arrays within each other; metadata needs a handful


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object ({} when empty); a 400 naming the field otherwise."""
    try:
        data = json.loads(raw, parse_constant=_refuse_constant) if raw.strip() else {}
    except RecursionError:
        raise bad_request("body", f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, huge integers, NaN
        raise bad_request("body", f"malformed JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise bad_request("body", "expected a JSON object")
    _check(data, "", 0)
    return data


def _check(value: Any, path: str, depth: int) -> None:
    if isinstance(value, str):
        _check_text(value, path or "body")
    elif isinstance(value, (dict, list)):
        if depth >= MAX_DEPTH:
            raise bad_request(path or "body", f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, path or "body", is_key=True)  # never named: it is the bad part
                _check(item, f"{path}.{key}" if path else key, depth + 1)
        else:
            for i, item in enumerate(value):
                _check(item, f"{path}[{i}]", depth + 1)


def _check_text(text: str, path: str, is_key: bool = False) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        what = "a key" if is_key else "text"
        raise bad_request(path, f"{what} holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is "
                          "not Unicode text: encode the text as UTF-8") from None

