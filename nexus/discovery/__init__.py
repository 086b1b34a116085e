"""Discovery of local backends announced over mDNS.

The app builds one :class:`MdnsDiscovery` from ``config.discovery`` with its callbacks, awaits
``start()`` in the lifespan start-up and ``stop()`` at shutdown.
"""

from nexus.discovery.mdns import MdnsDiscovery
from nexus.discovery.service import backend_from_service, normalized_url, unique_name

__all__ = ["MdnsDiscovery", "backend_from_service", "normalized_url", "unique_name"]
