"""From one resolved mDNS service to one :class:`BackendConfig`, and the name and URL rules
discovery applies: pure functions, no I/O.

Unlike the reference project (its defect 18), a discovered URL never gets ``/v1`` appended:
Nexus adds the version path itself, so a TXT ``api_path`` ending in ``/v1`` is trimmed.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Collection, Mapping
from urllib.parse import quote, urlsplit

from pydantic import ValidationError
from zeroconf import IPVersion, ServiceInfo

from nexus.config.model import BackendConfig

NAME_MAX = 64
#: TXT ``type`` values understood; any other value means ``generic``.
TXT_TYPES = {
    "ollama": "ollama",
    "vllm": "vllm",
    "llamacpp": "llamacpp",
    "llama.cpp": "llamacpp",
    "llama-cpp": "llamacpp",
    "lmstudio": "lmstudio",
    "exo": "exo",
    "generic": "generic",
}
_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9 ._:@/+-]")
_PATH_SAFE = "/-._~!$&'()*+,;=:@"


def backend_from_service(service_type: str, info: ServiceInfo) -> BackendConfig | None:
    """The backend a resolved mDNS service announces, or None when it has no usable address/port.

    - type: TXT ``type`` (ollama, vllm, llamacpp/llama.cpp, lmstudio, exo; any other value is
      generic), else ``ollama`` for ``_ollama._tcp.local.`` and ``generic`` for other types;
    - url: ``http://<ip>:<port>``, IPv4 preferred, then global IPv6, bracketed; plus TXT
      ``api_path`` when given, with a trailing ``/v1`` removed (Nexus adds version paths);
    - name: the instance label ("Studio Mac" from "Studio Mac._ollama._tcp.local.") reduced to
      the allowed characters and 64 characters, else the host name, else ``ip:port``;
    - zone and tier: the defaults of the type (local types are restricted, tier 1).
    """
    host = _address(info)
    if host is None or not info.port:
        return None
    txt = {key.lower(): (value or "").strip() for key, value in info.decoded_properties.items()}
    netloc = f"[{host.replace('%', '%25')}]" if ":" in host else host
    url = f"http://{netloc}:{info.port}{_path_suffix(txt.get('api_path', ''))}"
    name = (
        _sanitised(_instance_label(service_type, info.name))
        or _sanitised((info.server or "").rstrip("."))
        or _sanitised(f"{host}:{info.port}")
    )
    try:
        return BackendConfig(name=name, url=url, type=_backend_type(service_type, txt))
    except ValidationError:
        return None


def _address(info: ServiceInfo) -> str | None:
    """The first IPv4 address, else the first IPv6 one, global before link-local."""
    v4 = info.parsed_addresses(IPVersion.V4Only)
    if v4:
        return v4[0]
    v6 = info.parsed_scoped_addresses(IPVersion.V6Only)
    v6.sort(key=lambda address: ipaddress.ip_address(address).is_link_local)
    return v6[0] if v6 else None


def _backend_type(service_type: str, txt: Mapping[str, str]) -> str:
    announced = txt.get("type", "").lower()
    if announced:
        return TXT_TYPES.get(announced, "generic")
    return "ollama" if service_type.lower().startswith("_ollama.") else "generic"


def _path_suffix(api_path: str) -> str:
    """``api_path`` as a URL path suffix without a trailing ``/`` or ``/v1`` ('' when empty)."""
    path = api_path.strip().strip("/")
    if path.lower() == "v1" or path.lower().endswith("/v1"):
        path = path[:-2].rstrip("/")
    return "/" + quote(path, safe=_PATH_SAFE) if path else ""


def _instance_label(service_type: str, name: str) -> str:
    """The instance part of a service name, dots included, else its first label."""
    suffix = "." + service_type
    if name.lower().endswith(suffix.lower()):
        return name[: -len(suffix)]
    return name.split(".", 1)[0]


def _sanitised(label: str) -> str:
    """``label`` in the backend name charset: accents dropped, ``_`` as space, others as ``-``."""
    text = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    text = _NOT_IN_NAMES.sub("-", text.replace("_", " "))
    text = re.sub(r" +", " ", text)
    text = re.sub(r"^[^A-Za-z0-9]+", "", text)
    return text[:NAME_MAX].rstrip(" -")


def normalized_url(url: str) -> str:
    """``url`` for comparison: scheme and host lower-cased, a trailing ``/`` or ``/v1`` ignored."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    if path.lower().endswith("/v1"):
        path = path[:-3].rstrip("/")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


def unique_name(base: str, taken: Collection[str]) -> str:
    """``base``, or ``base-2``, ``base-3``, ... (shortened to 64 characters), whichever is free."""
    candidate, number = base, 2
    while candidate in taken:
        suffix = f"-{number}"
        candidate = base[: NAME_MAX - len(suffix)].rstrip() + suffix
        number += 1
    return candidate
