"""X-Nexus-* header values."""

from __future__ import annotations

from nexus.headers import NexusHeaders, header_safe, request_id


def test_no_backend_chosen() -> None:
    assert NexusHeaders(request_id="r1").as_dict() == {
        "x-nexus-backend": "none",
        "x-nexus-backend-type": "none",
        "x-nexus-route-reason": "none",
        "x-nexus-privacy-zone": "none",
        "x-request-id": "r1",
    }


def test_served_by_a_cloud_backend_with_cost_and_fallback() -> None:
    headers = NexusHeaders(
        request_id="r2",
        backend="openai",
        location="cloud",
        route_reason="failover",
        zone="open",
        cost_usd=0.00421,
        fallback_model="gpt-4o-mini",
    ).as_dict()
    assert headers["x-nexus-cost-estimated"] == "0.0042"
    assert headers["x-nexus-fallback-model"] == "gpt-4o-mini"
    assert headers["x-nexus-backend-type"] == "cloud"


def test_cost_absent_when_unknown() -> None:
    assert "x-nexus-cost-estimated" not in NexusHeaders(request_id="r", backend="b").as_dict()


def test_header_injection_is_impossible() -> None:
    assert header_safe("evil\r\nSet-Cookie: x=1") == "evil%0D%0ASet-Cookie%3A%20x%3D1"
    assert header_safe("qwen2.5:7b") == "qwen2.5:7b"
    assert header_safe("modèle") == "mod%C3%A8le"


def test_request_id_keeps_plain_client_ids_only() -> None:
    assert request_id("abc-123_X.y:z") == "abc-123_X.y:z"
    generated = request_id("bad id\r\n")
    assert len(generated) == 32 and generated.isalnum()
    assert request_id(None) != request_id(None)
    assert request_id("x" * 129) != "x" * 129
