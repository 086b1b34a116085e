"""The gateway core: one typed service that owns the request's way (see ``docs/architecture.md``).

:class:`Gateway` plans and forwards; :class:`Exchange` is one request on its way; the outcome of
a request is an :class:`Answer` or a :class:`Failed` value that a dialect renders.
"""

from nexus.gateway.drain import Drain
from nexus.gateway.exchange import Exchange
from nexus.gateway.opener import Call, Opener, UpstreamOpener
from nexus.gateway.outcome import PROBLEMS, Answer, AnswerStream, Failed, Outcome, Problem
from nexus.gateway.service import Gateway

__all__ = [
    "PROBLEMS",
    "Answer",
    "AnswerStream",
    "Call",
    "Drain",
    "Exchange",
    "Failed",
    "Gateway",
    "Opener",
    "Outcome",
    "Problem",
    "UpstreamOpener",
]
