"""ModelHub: share model versions between repositories (DESIGN.md §7, docs/hub.md).

:class:`Hub` is the service side (accounts, namespaces, have/want publishing, search, pull)
over a normal dlv repository; :mod:`provdb.hub.client` is the repository side that ``dlv
publish``, ``dlv search`` and ``dlv pull`` call; :mod:`provdb.hub.transfer` is what travels
between them.
"""

from provdb.hub.accounts import Accounts, Principal
from provdb.hub.service import Hub

__all__ = ["Accounts", "Hub", "Principal"]
