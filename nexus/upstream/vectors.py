"""Embeddings asked for in base64 that a backend answered as floats (Ollama ignores
``encoding_format``): the answer is re-encoded as OpenAI encodes it, every other byte of the
document kept, so the openai SDKs (which ask for base64 by default) get the vectors."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import orjson

from nexus.upstream.openai_wire import base64_vector
from nexus.upstream.reply import Reply

#: An embedding written as a JSON array: only then is the answer parsed at all.
_FLOAT_VECTOR = re.compile(rb'"embedding"\s*:\s*\[')


def floats_as_base64(content: bytes) -> bytes | None:
    """``content`` with each ``data[].embedding`` float array as a base64 string; None when there
    is nothing to convert (already base64, not an embeddings list, not JSON)."""
    if _FLOAT_VECTOR.search(content) is None:
        return None
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    entries = document.get("data") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return None
    converted = False
    for entry in entries:
        vector = entry.get("embedding") if isinstance(entry, dict) else None
        if isinstance(vector, list) and all(isinstance(v, int | float) for v in vector):
            entry["embedding"] = base64_vector(vector)
            converted = True
    return orjson.dumps(document) if converted else None


class Base64Vectors:
    """A :class:`Reply` whose successful JSON body has its float vectors in base64."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply

    @property
    def status_code(self) -> int:
        return self._reply.status_code

    @property
    def content_type(self) -> str | None:
        return self._reply.content_type

    async def chunks(self) -> AsyncIterator[bytes]:
        yield await self.read()

    async def read(self) -> bytes:
        content = await self._reply.read()
        if self._reply.status_code >= 300:
            return content
        return floats_as_base64(content) or content

    async def aclose(self) -> None:
        await self._reply.aclose()
