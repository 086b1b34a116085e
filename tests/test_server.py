"""Start-up checks of `nexus serve`."""

from __future__ import annotations

from nexus.config import NexusConfig
from nexus.server import exposure_warning

CLOUD = {"name": "openai", "url": "https://api.openai.com", "type": "openai", "api_key_env": "K"}
LOCAL = {"name": "gpu", "url": "http://10.0.0.2:8000", "type": "vllm"}


def config(host: str, *backends: dict[str, str], keys: str | None = None) -> NexusConfig:
    server: dict[str, object] = {"host": host}
    if keys:
        server["api_keys_env"] = keys
    return NexusConfig.model_validate({"server": server, "backends": list(backends)})


def test_warns_when_cloud_keys_are_exposed_to_the_network() -> None:
    warning = exposure_warning(config("0.0.0.0", CLOUD, LOCAL))
    assert warning is not None
    assert "cloud backend(s) openai" in warning and "api_keys_env" in warning


def test_no_warning_on_loopback_with_client_keys_or_local_only() -> None:
    assert exposure_warning(config("127.0.0.1", CLOUD)) is None
    assert exposure_warning(config("::1", CLOUD)) is None
    assert exposure_warning(config("0.0.0.0", CLOUD, keys="NEXUS_KEYS")) is None
    assert exposure_warning(config("0.0.0.0", LOCAL)) is None
