"""A real OTLP/HTTP trace receiver on 127.0.0.1: what a collector (or Jaeger) would get.

``POST /v1/traces`` takes the protobuf body the OpenTelemetry exporter sends (optionally gzip),
decodes it with ``opentelemetry-proto`` into an ``ExportTraceServiceRequest`` and keeps every
span as a :class:`ReceivedSpan`. It runs like the fake upstreams (:class:`FakeUpstream`, on its
own thread), so the gateway's exporter thread posts to it over a real socket.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tests.fakes.server import FakeUpstream

PROTOBUF = "application/x-protobuf"

#: ``Span.SpanKind`` numbers of the OTLP protocol.
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
#: ``Status.StatusCode`` numbers.
STATUSES = {0: "unset", 1: "ok", 2: "error"}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver decoded it; ids are lower-case hex, as in ``traceparent``."""

    name: str
    kind: str  # "server", "client", ...
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    attributes: dict[str, Any]
    status: str  # "unset", "ok" or "error"
    start_ns: int
    end_ns: int
    resource: dict[str, Any]


def _value(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    if field == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, field) if field else None


class OtlpReceiver(FakeUpstream):
    """Collects the spans of every export; ``spans`` in arrival order, ``exports`` counts the
    POSTs."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[ReceivedSpan] = []
        self.exports = 0
        self._spans_lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"{self.url}/v1/traces"

    def routes(self) -> list[BaseRoute]:
        return [Route("/v1/traces", self.traces, methods=["POST"])]

    async def traces(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if request.headers.get("content-type") != PROTOBUF:
            return Response(b"", status_code=415)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        received = []
        for resource_spans in export.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                received += [_span(span, resource) for span in scope_spans.spans]
        with self._spans_lock:
            self.spans += received
            self.exports += 1
        answer = ExportTraceServiceResponse().SerializeToString()
        return Response(answer, media_type=PROTOBUF)

    def named(self, name: str) -> list[ReceivedSpan]:
        with self._spans_lock:
            return [span for span in self.spans if span.name == name]

    def of_kind(self, kind: str) -> list[ReceivedSpan]:
        with self._spans_lock:
            return [span for span in self.spans if span.kind == kind]


def _span(span: Any, resource: dict[str, Any]) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name,
        kind=KINDS[span.kind],
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        attributes={a.key: _value(a.value) for a in span.attributes},
        status=STATUSES[span.status.code],
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        resource=resource,
    )
