"""Fake upstream servers for tests: real HTTP on 127.0.0.1, real wire formats, programmable.

=================  ======================================================================
``FakeOllama``     ``GET /api/tags``, ``POST /api/show``, ``GET /v1/models``
``FakeOpenAI``     ``GET /v1/models`` (OpenAI, vLLM, llama.cpp, LM Studio shapes), ``GET /health``
``FakeAnthropic``  ``GET /v1/models`` (``x-api-key``, ``anthropic-version``, pagination)
``FakeGemini``     ``GET /v1beta/models`` (``x-goog-api-key``, ``pageToken`` pagination)
=================  ======================================================================

Every fake (see :class:`tests.fakes.server.FakeUpstream`)::

    fake.set_models("llama3:8b", FakeModel("llava", vision=True, context_length=4096))
    fake.respond(503)                      # every path; or path="/api/show", times=1
    fake.respond(body=b"not json")         # 200 with a broken body
    fake.hang()                            # never answer (released when the fake stops)
    fake.delay(0.2, path="/v1/models")
    fake.requests / fake.requests_to("/api/show")   # RecordedRequest(method, path, query,
                                                    # headers, body) in arrival order
    fake.url                               # http://127.0.0.1:<port>

Fixtures (:mod:`tests.fakes.fixtures`, registered per test package through its conftest):
``fake_ollama``, ``fake_openai``, ``fake_anthropic``, ``fake_gemini`` (one started fake each),
``start_fake`` (a factory: ``start_fake(FakeOpenAI)`` starts more, all stopped at teardown) and
``refused_url`` (a 127.0.0.1 URL nothing listens on).

Extending: a fake is a Starlette router. To serve e.g. ``POST /v1/chat/completions``, add an async
handler method to the provider's class and a ``Route`` for it in its ``routes()``; recording and the
forced behaviours (status, hang, delay) apply to new routes without further work. Responses may be
any Starlette response, including ``StreamingResponse`` for SSE. New knobs are plain attributes set
by the test (e.g. ``fake.api_key``), read by the handlers.
"""

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.gemini import FakeGemini
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeModel, FakeUpstream, RecordedRequest

__all__ = [
    "FakeAnthropic",
    "FakeGemini",
    "FakeModel",
    "FakeOllama",
    "FakeOpenAI",
    "FakeUpstream",
    "RecordedRequest",
]
