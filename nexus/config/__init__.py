"""Configuration: the settings tree, its loading and its credentials."""

from nexus.config.credentials import Credential, read_credential
from nexus.config.loader import DEFAULT_CONFIG_PATH, load_config
from nexus.config.model import BackendConfig, NexusConfig

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "BackendConfig",
    "Credential",
    "NexusConfig",
    "load_config",
    "read_credential",
]
