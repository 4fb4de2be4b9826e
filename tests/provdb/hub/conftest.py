"""A real gunicorn hub for the whole session (stopped at the end)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hubkit import MAX_UPLOAD, HubFixture

from provdb.hub import Hub
from provdb.server.testing import HubServer


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubFixture]:
    """One gunicorn hub (2 workers, embedded graph) with users alice, bob, admin and the
    organisation ``team`` (alice is a member); tokens ``alice`` (write), ``alice-read``,
    ``bob`` (write)."""
    root = tmp_path_factory.mktemp("hub")
    h = Hub.init(root, max_upload_bytes=MAX_UPLOAD)
    accounts = h.accounts
    for user in ("alice", "bob"):
        accounts.add_user(user)
    accounts.add_user("team", org=True)
    accounts.add_member("team", "alice")
    tokens = {
        "alice": accounts.create_token("alice", "write")["token"],
        "alice-read": accounts.create_token("alice", "read")["token"],
        "bob": accounts.create_token("bob", "write")["token"],
    }
    server = HubServer(root, workers=2).start()
    try:
        yield HubFixture(root, server, tokens)
    finally:
        server.stop()
