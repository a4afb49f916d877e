"""JSON request bodies parsed under a size and a nesting bound: the one parse every route and the
passthrough fast path use (L0). `json.loads` recurses once per nesting level, so a few thousand `[` end
in a RecursionError (a 500); here such a body is a 400 before the parser sees it."""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any

from service.errors import InvalidRequest, PayloadTooLarge

_OPEN_CLOSE = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_JSON_CONTAINER = re.compile(rb"\s*[\[{]")


class NestedTooDeep(InvalidRequest):
    """A JSON body nested past the bound (400)."""

    code = "json_too_deep"


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in `raw`, brackets inside strings not counted; linear, no
    recursion. Exact for valid JSON; of malformed JSON, at least as deep as a parser goes before the first
    error stops it."""
    # drop escaped backslashes, then escaped quotes: every quote left opens or closes a string, so every
    # other piece between quotes lies outside the strings
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2]).translate(None, _NOT_BRACKETS)
    return max(accumulate(array("b", outside.translate(_OPEN_CLOSE))), default=0)


def looks_like_json(raw: bytes) -> bool:
    """Whether a body starts like a JSON object or array (the only JSON that nests); a multipart upload
    does not, and is never scanned."""
    return _JSON_CONTAINER.match(raw) is not None


def parse_json(raw: bytes, *, max_depth: int, max_bytes: int) -> Any:
    """`raw` parsed, or a typed error in the OpenAI envelope: 413 over `max_bytes`, 400 nested deeper
    than `max_depth` (`json_too_deep`) or not valid JSON."""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"request body over {max_bytes} bytes")
    # fewer brackets than the bound cannot nest past it: most bodies are never scanned
    if raw.count(b"[") + raw.count(b"{") > max_depth and nesting_depth(raw) > max_depth:
        raise NestedTooDeep(f"request body nests deeper than {max_depth} levels")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: a deep stack above a body under the bound
        raise InvalidRequest("request body is not valid JSON") from None
