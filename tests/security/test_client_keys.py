"""Client keys (``[server] api_keys_env``): how a presented key is compared, and which paths a
request without a valid key reaches (in-process app, fake backend)."""

from __future__ import annotations

import hmac
from collections.abc import Iterator

import pytest

from nexus.api.auth import ClientKeys
from tests.api.gateway import CHAT, chat_body, gateway
from tests.fakes.openai import FakeOpenAI

KEYS = [f"nx-{i:04d}-{'k' * 24}" for i in range(1000)]
ENV = {"CLIENT_KEYS": " , ".join(KEYS) + ",,"}


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[bytes, bytes]]]:
    """Every ``hmac.compare_digest`` call the auth module makes."""
    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr("nexus.api.auth.hmac.compare_digest", counting)
    yield calls


def test_every_configured_key_is_accepted_and_blanks_are_ignored() -> None:
    keys = ClientKeys("CLIENT_KEYS", ENV)
    assert keys.configured
    assert all(keys.allows(f"Bearer {key}") for key in KEYS)
    assert keys.allows(f"bearer {KEYS[7]}"), "the scheme is case-insensitive"
    assert keys.allows(f"Bearer   {KEYS[7]}  "), "surrounding blanks do not count"
    assert not keys.allows("Bearer "), "an empty entry is no key"


@pytest.mark.parametrize(
    "presented",
    [
        None,
        "",
        "Bearer",
        KEYS[3],  # no scheme
        f"Basic {KEYS[3]}",
        f"Bearer {KEYS[3][:-1]}",  # a prefix
        f"Bearer {KEYS[3]}x",  # a longer key that starts with a real one
        f"Bearer {KEYS[3][1:]}",  # a suffix
        f"Bearer {KEYS[3].upper()}",  # keys are case-sensitive
        f"Bearer {KEYS[3]},{KEYS[4]}",  # the whole list
        "Bearer nx-",
        f"Bearer {KEYS[3]} {KEYS[4]}",
    ],
)
def test_near_misses_are_refused(presented: str | None) -> None:
    assert not ClientKeys("CLIENT_KEYS", ENV).allows(presented)


@pytest.mark.parametrize("which", [0, 499, 999, None])
def test_every_key_is_compared_whichever_matches(
    comparisons: list[tuple[bytes, bytes]], which: int | None
) -> None:
    """No early exit: one constant-time comparison per configured key, whether the first, a
    middle one, the last or none matches (timing itself is not measured: too noisy)."""
    presented = KEYS[which] if which is not None else "nx-none"
    allowed = ClientKeys("CLIENT_KEYS", ENV).allows(f"Bearer {presented}")
    assert allowed is (which is not None)
    assert len(comparisons) == len(KEYS)
    assert {offered for offered, _ in comparisons} == {presented.encode()}
    assert [key for _, key in comparisons] == [key.encode() for key in KEYS]


def test_a_refused_request_costs_no_comparison_when_malformed(
    comparisons: list[tuple[bytes, bytes]],
) -> None:
    assert not ClientKeys("CLIENT_KEYS", ENV).allows("Token abc")
    assert comparisons == []


CLOSED = [
    ("POST", CHAT),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("GET", "/v1/backends"),
    ("GET", "/v1/route?model=m"),
    ("GET", "/v1/stats"),
    ("GET", "/v1/history"),
    ("GET", "/v1/models/"),
    ("GET", "/v1/nothing-here"),
]
OPEN = ["/health", "/health/ready", "/metrics", "/"]


@pytest.mark.parametrize(
    "environ", [ENV, {"CLIENT_KEYS": " , "}, {}], ids=["set", "blank", "unset"]
)
async def test_v1_is_closed_without_a_valid_key(
    fake_openai: FakeOpenAI, environ: dict[str, str]
) -> None:
    fake_openai.set_models("m")
    backends = [{"name": "gpu", "url": fake_openai.url, "type": "vllm"}]
    async with gateway(backends, environ=environ, server={"api_keys_env": "CLIENT_KEYS"}) as gw:
        for method, path in CLOSED:
            for presented in ({}, {"authorization": "Bearer wrong"}, {"authorization": KEYS[0]}):
                body = chat_body("m") if method == "POST" else None
                response = await gw.client.request(method, path, json=body, headers=presented)
                assert response.status_code == 401, (path, presented)
                error = response.json()["error"]
                assert set(error) == {"message", "type", "param", "code"}
                assert error["code"] == "invalid_api_key"
                assert response.headers["www-authenticate"] == "Bearer"
                assert not any(key in response.text for key in KEYS)
                if environ is not ENV:
                    assert "CLIENT_KEYS" in error["message"], "fails closed and says why"
        for path in OPEN:
            assert (await gw.client.get(path)).status_code in (200, 503), path
        if environ is ENV:
            ok = await gw.client.post(
                CHAT, json=chat_body("m"), headers={"authorization": f"Bearer {KEYS[999]}"}
            )
            assert ok.status_code == 200
    assert fake_openai.requests_to(CHAT) == (
        [fake_openai.requests_to(CHAT)[0]] if environ is ENV else []
    )
