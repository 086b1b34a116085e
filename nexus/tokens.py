"""Counting input tokens offline.

tiktoken downloads its encoding files at first use; Nexus never lets it. The LiteLLM wheel ships
the files for ``cl100k_base`` and ``o200k_base`` under ``litellm/litellm_core_utils/tokenizers/``,
named the way tiktoken's cache names them. :func:`encoding` points ``TIKTOKEN_CACHE_DIR`` at that
folder (found through the installed package's spec, without importing LiteLLM) and asks tiktoken
for an encoding only after checking that the file is there and has the SHA-256 tiktoken expects,
so tiktoken reads it from disk and has no reason to fetch anything. When the file is missing or
damaged, counting falls back to the estimate; it never touches the network.

Exact counts follow OpenAI's published recipe for chat (3 tokens per message, 1 per ``name``, 3
to prime the reply). The estimate, used for models whose tokenizer Nexus does not have, is
``ceil(characters / 4)`` per text plus the same per-message overheads.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tiktoken import Encoding

_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
#: SHA-256 of each encoding file, as tiktoken verifies it (tiktoken_ext.openai_public).
_EXPECTED_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
#: Model-name prefixes and their encoding; the first match wins, so longer families come first.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A token count; ``exact`` is False when it is the characters/4 estimate."""

    tokens: int
    exact: bool


def encoding_name_for(model: str) -> str | None:
    """The tiktoken encoding of ``model`` (a ``provider/`` prefix is ignored), or None."""
    name = model.rsplit("/", 1)[-1].lower()
    for prefix, encoding_name in _PREFIXES:
        if name.startswith(prefix):
            return encoding_name
    return None


def bundled_encodings_dir() -> Path | None:
    """The folder of encoding files inside the installed LiteLLM wheel (LiteLLM is not imported)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"
    return folder if folder.is_dir() else None


def cache_file(folder: Path, encoding_name: str) -> Path:
    """Where tiktoken looks for ``encoding_name`` in its cache folder ``folder``."""
    key = hashlib.sha1(_BLOB_URL.format(encoding_name).encode()).hexdigest()
    return folder / key


@functools.cache
def encoding(encoding_name: str) -> Encoding | None:
    """The tiktoken encoding, read from the bundled files only; None when they are unusable."""
    expected = _EXPECTED_SHA256.get(encoding_name)
    folder = bundled_encodings_dir()
    if expected is None or folder is None:
        return None
    path = cache_file(folder, encoding_name)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != expected:
        return None  # tiktoken would delete it and download a fresh copy
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    import tiktoken

    return tiktoken.get_encoding(encoding_name)


def estimate(text: str) -> int:
    """The estimate for one text: ``ceil(len(text) / 4)``."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def count_texts(texts: Iterable[str], model: str) -> TokenCount:
    """Tokens of ``texts`` for ``model``: exact when its encoding is available, else estimated."""
    name = encoding_name_for(model)
    enc = encoding(name) if name is not None else None
    if enc is None:
        return TokenCount(sum(estimate(text) for text in texts), exact=False)
    return TokenCount(sum(len(enc.encode_ordinary(text)) for text in texts), exact=True)
