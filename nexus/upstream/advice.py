"""LiteLLM's words for a request it refused, turned into what a Nexus client can act on.

LiteLLM writes its 400s for LiteLLM users ("set ``litellm.drop_params=True``", "send
``allowed_openai_params``", "check ``user_url_allowed_hosts`` in litellm_settings"); a Nexus client
can do none of that. An unsupported parameter becomes a message naming the parameter and the
provider (and ``param`` names it), and any other message loses the LiteLLM-only advice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNSUPPORTED = re.compile(r"does not support parameters: \[([^\]]*)\]")
_NAME = re.compile(r"'([^']+)'|\"([^\"]+)\"")
#: Where LiteLLM's own advice starts; everything from there on is cut.
_ADVICE = re.compile(
    r"\s*(To drop these|If you want to use these params|[^.]*litellm_settings|"
    r"[^.;]*an admin can check|[^.]*`?litellm\.\w+)",
    re.IGNORECASE,
)
_PREFIX = re.compile(r"^litellm\.\w+(Error|Exception): ")


@dataclass(frozen=True, slots=True)
class Refusal:
    """A provider's refusal in the client's terms; ``param`` names the field when known."""

    message: str
    param: str | None = None


def client_refusal(text: str, *, backend: str, provider: str, model: str) -> Refusal:
    """The client's view of LiteLLM's refusal ``text`` for ``backend`` (``provider``)."""
    unsupported = _UNSUPPORTED.search(text)
    if unsupported is not None:
        names = [a or b for a, b in _NAME.findall(unsupported.group(1))]
        if names:
            listed = ", ".join(names)
            noun = "parameter" if len(names) == 1 else "parameters"
            return Refusal(
                f"backend '{backend}' ({provider}) cannot honour the {noun} {listed} for "
                f"model {model!r}: remove {'it' if len(names) == 1 else 'them'} from the request, "
                "or ask for a model whose backend supports "
                f"{'it' if len(names) == 1 else 'them'}",
                names[0],
            )
    reason = _PREFIX.sub("", text.strip())
    cut = _ADVICE.search(reason)
    if cut is not None and cut.start() > 0:
        reason = reason[: cut.start()].rstrip(" .;:\n")
    return Refusal(f"backend '{backend}' ({provider}) rejected the request: {reason}")
