"""Rate limits against a small gunicorn hub of their own (2 workers, tiny limits): 429 with
``Retry-After`` and the ``rate_limited`` code on the dlv and HF routes, one bucket shared by
both workers, the client waiting out a short ``Retry-After`` and failing (exit 75) on a long one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from hubkit import HubFixture, dlv

from provdb.errors import InvalidInput
from provdb.hub import Hub
from provdb.hub.client import HubClient
from provdb.hub.ratelimit import Limits
from provdb.server.testing import HubServer

#: Tokens: 1 request/s, burst 5 (a short Retry-After); anonymous: burst 6, then ~100 s.
LIMIT = "1/5,0.01/6"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubFixture]:
    root = tmp_path_factory.mktemp("limited")
    h = Hub.init(root)
    h.accounts.add_user("alice")
    tokens = {f"t{i}": h.accounts.create_token("alice", "read")["token"] for i in range(3)}
    server = HubServer(root, workers=2, env={"DLV_HUB_RATE_LIMIT": LIMIT}).start()
    try:
        yield HubFixture(root, server, tokens)
    finally:
        server.stop()


def _get(hub: HubFixture, path: str, who: str | None = None) -> requests.Response:
    return requests.get(hub.url + path, headers=hub.headers(who), timeout=30)


def test_anonymous_bucket_is_shared_by_both_workers_and_answers_429(limited: HubFixture) -> None:
    with ThreadPoolExecutor(8) as pool:  # concurrent: both sync workers take requests
        answers = list(pool.map(lambda _: _get(limited, "/api/models/alice/x"), range(24)))
    codes = [r.status_code for r in answers]
    assert codes.count(404) == 6  # the burst, once across the workers (not 6 per worker)
    assert codes.count(429) == 18
    r = _get(limited, "/api/models/alice/x")
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert 60 < int(r.headers["Retry-After"]) <= 100
    hf = _get(limited, "/alice/x/resolve/main/model.safetensors")  # the HF routes too
    assert hf.status_code == 429
    assert int(hf.headers["Retry-After"]) > 60
    assert _get(limited, "/api/whoami", "t0").status_code == 200  # a token has its own bucket
    assert _get(limited, "/api/health").status_code == 200  # liveness is never limited
    # a refused token counts against the address
    bad = requests.get(
        limited.url + "/api/whoami", headers={"Authorization": "Bearer nope"}, timeout=30
    )
    assert bad.status_code == 429


def test_client_waits_out_retry_after_then_succeeds(limited: HubFixture) -> None:
    for _ in range(5):
        assert _get(limited, "/api/whoami", "t1").status_code == 200
    r = _get(limited, "/api/whoami", "t1")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"
    client = HubClient(limited.url, limited.tokens["t1"])
    t0 = time.monotonic()
    assert client.whoami()["name"] == "alice"  # 429, sleep 1 s, the same request again
    assert time.monotonic() - t0 >= 0.5
    client.close()


def test_long_retry_after_fails_at_once_with_exit_75(limited: HubFixture) -> None:
    env = {"DLV_HUB_URL": limited.url, "DLV_HUB_TOKEN": ""}
    for _ in range(8):  # the anonymous bucket is empty (or emptied here); refill is ~100 s
        _get(limited, "/api/models/alice/x")
    t0 = time.monotonic()
    result = dlv("search", "x", env=env, ok=False)
    assert time.monotonic() - t0 < 10  # over the client's longest wait: no sleeping
    assert result.exit_code == 75, result.output
    assert "too many requests" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_limit_settings() -> None:
    assert not Limits.from_config(None, "off").enabled
    lim = Limits.from_config({"per_second": 2, "burst": 10}, None)
    assert (lim.per_second, lim.burst, lim.anonymous_burst) == (2, 10, Limits().anonymous_burst)
    assert Limits.from_config(None, "3/30,1/10") == Limits(True, 3, 30, 1, 10)
    assert Limits.from_config(None, "3/30") == Limits(True, 3, 30, 3, 30)
    for bad in ("fast", "1/2/3", "0/10"):
        with pytest.raises(InvalidInput):
            Limits.from_config(None, bad)
    with pytest.raises(InvalidInput):
        Limits.from_config({"per_secnd": 1}, None)


def test_serve_refuses_a_bad_limit(tmp_path: Path) -> None:
    Hub.init(tmp_path / "h")
    result = dlv("serve", str(tmp_path / "h"), "--rate-limit", "lots", ok=False)
    assert result.exit_code == 1
    assert "rate limit" in result.output
