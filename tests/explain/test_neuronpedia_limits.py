"""The Neuronpedia client against misbehaving loopback servers: redirects to other hosts, replies trickled byte by
byte, replies too large to hold, and two servers sharing one cache folder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corrsteer_core.explain import NeuronpediaClient
from corrsteer_core.limits import NEURONPEDIA_MAX_REPLY_BYTES

from .fake_neuronpedia import FakeNeuronpedia, Reply
from .test_neuronpedia import _clean_env  # noqa: F401  # autouse: no offline switch, no key from the env

MODEL, SAE = "gemma-2-2b", "3-gemmascope-res-16k"
FEATURE = f"/api/feature/{MODEL}/{SAE}/5"


@pytest.fixture
def servers() -> Iterator[tuple[FakeNeuronpedia, FakeNeuronpedia]]:
    with FakeNeuronpedia() as first, FakeNeuronpedia() as second:
        for fake in (first, second):
            fake.add(MODEL, SAE, 5)
        yield first, second


def client(base_url: str, cache: Path, **kw: Any) -> NeuronpediaClient:
    return NeuronpediaClient(base_url=base_url, cache_dir=cache, **{"offline": False, "backoff": 0.01, **kw})


def test_the_api_key_stays_with_the_host_it_was_given_for(servers, tmp_path: Path) -> None:
    home, elsewhere = servers
    home.script(FEATURE, Reply(302, {}, {"Location": f"{elsewhere.base_url}{FEATURE}"}))
    lookup = client(home.base_url, tmp_path, api_key="sk-np-secret").get_feature(MODEL, SAE, 5)
    assert lookup.ok  # the redirect is followed ...
    assert home.requests[0].headers.get("x-api-key") == "sk-np-secret"
    assert [r.path for r in elsewhere.requests] == [FEATURE]
    assert "x-api-key" not in {k.lower() for k in elsewhere.requests[0].headers}  # ... without the key


def test_a_redirect_on_the_same_host_keeps_the_key(servers, tmp_path: Path) -> None:
    home, _ = servers
    home.script("/api/features", Reply(307, {}, {"Location": "/api/features?moved=1"}))
    home.script("/api/features?moved=1", Reply(200, [home.features[(MODEL, SAE, 5)]]))
    lookups = client(home.base_url, tmp_path, api_key="sk-np-secret").get_features([(MODEL, SAE, 5)])
    assert lookups[0].ok and [r.method for r in home.requests] == ["POST", "POST"]
    assert [r.headers.get("x-api-key") for r in home.requests] == ["sk-np-secret"] * 2


def test_endless_redirects_end_in_an_error(servers, tmp_path: Path) -> None:
    home, _ = servers
    home.always(FEATURE, Reply(302, {}, {"Location": FEATURE}))
    lookup = client(home.base_url, tmp_path).get_feature(MODEL, SAE, 5)
    assert lookup.status == "error" and "redirected more than 3 times" in lookup.message


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "status-and-headers"])
def test_a_trickling_server_is_cut_off_at_the_deadline(servers, tmp_path: Path, headers_too: bool) -> None:
    home, _ = servers
    # one byte every 0.3 s: each read returns well within the 10 s read timeout, so only a total deadline ends it
    home.always(FEATURE, Reply(200, home.features[(MODEL, SAE, 5)], trickle=0.3, trickle_headers=headers_too))
    start = time.monotonic()
    lookup = client(home.base_url, tmp_path, timeout=10.0, deadline=1.5).get_feature(MODEL, SAE, 5)
    elapsed = time.monotonic() - start
    assert lookup.status == "error"
    assert lookup.message.endswith("Neuronpedia did not finish answering within 1.5 s")
    assert 1.4 < elapsed < 3.0
    assert home.count() == 1  # the deadline covers retries too: none is started after it


def test_a_reply_larger_than_the_bound_is_abandoned_unread(servers, tmp_path: Path) -> None:
    home, _ = servers
    home.always(FEATURE, Reply(200, b"", endless=True))  # no length: filler until the client hangs up
    lookup = client(home.base_url, tmp_path).get_feature(MODEL, SAE, 5)
    assert lookup.status == "error"
    assert "Neuronpedia's reply is larger than 16 MiB; it was not read further" in lookup.message
    deadline = time.monotonic() + 5
    while not home.streamed and time.monotonic() < deadline:
        time.sleep(0.05)
    # the server stops when the client hangs up: far less than its 256 MiB got out (socket buffers aside)
    assert home.streamed and home.streamed[0] < NEURONPEDIA_MAX_REPLY_BYTES + 32 * 2**20


def test_a_declared_length_over_the_bound_is_refused_before_reading(servers, tmp_path: Path) -> None:
    home, _ = servers
    home.always(FEATURE, Reply(200, b"x" * 2048))
    lookup = client(home.base_url, tmp_path, max_reply_bytes=1024).get_feature(MODEL, SAE, 5)
    assert lookup.status == "error" and "larger than 0.000976562 MiB" in lookup.message


def test_deeply_nested_json_is_a_malformed_reply(servers, tmp_path: Path) -> None:
    home, _ = servers
    home.always(FEATURE, Reply(200, b"[" * 50_000 + b"]" * 50_000))
    lookup = client(home.base_url, tmp_path).get_feature(MODEL, SAE, 5)
    assert lookup.status == "error" and "malformed JSON" in lookup.message


def test_each_server_has_its_own_cache(servers, tmp_path: Path) -> None:
    home, other = servers
    other.features[(MODEL, SAE, 5)]["explanations"][0]["description"] = "what the other server says"
    first = client(home.base_url, tmp_path).get_feature(MODEL, SAE, 5)
    second = client(other.base_url, tmp_path).get_feature(MODEL, SAE, 5)
    assert (first.from_cache, second.from_cache) == (False, False)  # not served from the first server's answer
    assert second.explanation is not None and second.explanation.description == "what the other server says"
    assert second.explanation.url.startswith(other.base_url)
    assert client("https://www.neuronpedia.org", tmp_path, offline=True).cached(MODEL, SAE, 5) is None
    again = client(home.base_url, tmp_path, offline=True).get_feature(MODEL, SAE, 5)
    assert again.from_cache and again.explanation == first.explanation
