"""HttpEnricher against the local enrichment stand-in, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.standins.enrichment_api import DEFAULT_API_KEY, EnrichmentStandin
from touchflow.adapters.enrichment.http_enricher import (
    HttpEnricher,
    MemoryCache,
    SqliteCache,
    TokenBucket,
    classify,
)
from touchflow.domain.enrich import Firmographics
from touchflow.errors import FatalError, RateLimited, RetryableError

ACME = Firmographics(
    domain="acme.com",
    name="Acme",
    industry="software",
    employees=250,
    revenue_band="10-50M",
    country="US",
    technologies=("salesforce", "aws"),
)
GLOBEX = Firmographics(domain="globex.io", name="Globex", industry="fintech", employees=5000)
COMPANIES = [ACME, GLOBEX] + [
    Firmographics(domain=f"co{i}.example", name=f"Co {i}", country="DE") for i in range(40)
]


@pytest.fixture
def standin() -> Iterator[EnrichmentStandin]:
    with EnrichmentStandin(COMPANIES) as running:
        yield running


def make(standin: EnrichmentStandin, **kw) -> HttpEnricher:
    options = {
        "api_key": DEFAULT_API_KEY,
        "max_per_second": 1000,
        "backoff_s": 0.01,
        "timeout_s": 2.0,
    } | kw
    return HttpEnricher(standin.url, **options)


def test_maps_the_nested_answer_to_firmographics(standin):
    with make(standin) as enricher:
        found = enricher.lookup(["www.ACME.com", "globex.io", "unknown.org"])
    assert set(found) == {"www.ACME.com", "globex.io"}
    acme = found["www.ACME.com"]
    assert acme == ACME
    assert acme.source == "http"
    assert found["globex.io"].employees == 5000
    assert found["globex.io"].revenue_band is None
    assert standin.requests == 3


def test_a_custom_field_map_reads_other_paths(standin):
    with make(standin, field_map={"name": "company.domain", "employees": "company.tech.1"}) as e:
        firm = e.lookup(["acme.com"])["acme.com"]
    assert firm.name == "acme.com"
    assert firm.employees is None  # "aws" is not a number: unknown, not an error
    assert firm.industry is None


def test_keep_alive_one_connection_for_sequential_lookups(standin):
    with make(standin, concurrency=1) as enricher:
        for i in range(5):
            enricher.lookup([f"co{i}.example"])
    assert standin.requests == 5
    assert standin.connections == 1


def test_a_batch_runs_concurrently(standin):
    standin.latency_s = 0.05
    with make(standin, concurrency=8) as enricher:
        found = enricher.lookup([f"co{i}.example" for i in range(16)])
    assert len(found) == 16
    # Concurrent, and never more than the setting allows (how much faster: bench/intake.py).
    assert 1 < standin.most_in_flight <= 8


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_cache_hit_sends_no_second_request(standin, tmp_path, kind):
    def cache():
        return MemoryCache() if kind == "memory" else SqliteCache(tmp_path / "c.sqlite")

    shared = cache()
    with make(standin, cache=shared) as enricher:
        first = enricher.lookup(["acme.com", "globex.io"])
        again = enricher.lookup(["acme.com", "globex.io"])
        assert enricher.stats["cache_hits"] == 2
    assert first == again
    assert standin.requests == 2
    if kind == "sqlite":
        shared.close()
        # A new run (new process, same file) does not call the provider either.
        reopened = SqliteCache(tmp_path / "c.sqlite")
        with make(standin, cache=reopened) as enricher:
            assert enricher.lookup(["acme.com"])["acme.com"] == ACME
        reopened.close()
        assert standin.requests == 2


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_not_found_is_cached_for_the_shorter_ttl(standin, tmp_path, kind):
    now = [1_000_000.0]

    def clock():
        return now[0]

    if kind == "memory":
        cache = MemoryCache(ttl_s=3600, negative_ttl_s=60, clock=clock)
    else:
        cache = SqliteCache(tmp_path / "c.sqlite", ttl_s=3600, negative_ttl_s=60, clock=clock)
    with make(standin, cache=cache) as enricher:
        assert enricher.lookup(["unknown.org", "acme.com"]) == {"acme.com": ACME}
        assert enricher.lookup(["unknown.org", "acme.com"]) == {"acme.com": ACME}
        assert standin.requests == 2
        now[0] += 61  # the negative expired, the hit did not
        standin.add(Firmographics(domain="unknown.org", name="Now Known"))
        found = enricher.lookup(["unknown.org", "acme.com"])
        assert found["unknown.org"].name == "Now Known"
        assert standin.requests == 3
        now[0] += 3600
        enricher.lookup(["acme.com"])
        assert standin.requests == 4
    cache.close()


def test_429_waits_retry_after_then_succeeds(standin):
    standin.fail_next(429, retry_after=0.4)
    with make(standin) as enricher:
        start = time.perf_counter()
        found = enricher.lookup(["acme.com"])
        elapsed = time.perf_counter() - start
        assert enricher.stats["retries"] == 1
    assert found == {"acme.com": ACME}
    first, second = standin.recorded
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.35
    assert elapsed >= 0.35


def test_429_holds_every_thread(standin):
    standin.fail_next(429, retry_after=0.4)
    with make(standin, max_per_second=20, concurrency=4) as enricher:
        found = enricher.lookup([f"co{i}.example" for i in range(6)])
    assert len(found) == 6
    first_429 = next(r.at for r in standin.recorded if r.status == 429)
    # Threads already waiting for a token wait out Retry-After as well.
    early = [r for r in standin.recorded if first_429 < r.at < first_429 + 0.35]
    assert early == []
    assert standin.requests == 7


def test_a_long_retry_after_goes_to_the_caller(standin):
    standin.fail_next(429, retry_after=120)
    with make(standin, max_retry_after_s=5) as enricher, pytest.raises(RateLimited) as info:
        enricher.lookup(["acme.com"])
    assert info.value.retry_after == 120
    assert standin.requests == 1


def test_500_is_retried_then_succeeds(standin):
    standin.fail_next(500, times=2)
    with make(standin, retries=3) as enricher:
        assert enricher.lookup(["acme.com"]) == {"acme.com": ACME}
        assert enricher.stats["retries"] == 2
    assert [r.status for r in standin.recorded] == [500, 500, 200]


def test_a_timeout_is_retried(standin):
    standin.fail_next("timeout", delay_s=1.0)
    with make(standin, timeout_s=0.2) as enricher:
        assert enricher.lookup(["acme.com"]) == {"acme.com": ACME}
    assert standin.requests == 2


def test_a_dropped_connection_is_retried(standin):
    standin.fail_next("drop")
    with make(standin) as enricher:
        assert enricher.lookup(["acme.com"]) == {"acme.com": ACME}


def test_retries_exhausted_raise_retryable_error(standin):
    standin.fail_next(503, times=10)
    with make(standin, retries=2) as enricher, pytest.raises(RetryableError) as info:
        enricher.lookup(["acme.com"])
    err = info.value
    assert not isinstance(err, RateLimited)
    assert (err.connector, err.operation, err.status) == ("enrichment", "lookup", 503)
    assert standin.requests == 3  # the first try and two retries


@pytest.mark.parametrize("key", ["wrong-key", None])
def test_401_is_fatal_and_not_retried(standin, key):
    with make(standin, api_key=key) as enricher, pytest.raises(FatalError) as info:
        enricher.lookup(["acme.com"])
    assert info.value.status == 401
    assert "Invalid API key" in str(info.value)
    assert standin.requests == 1


def test_403_and_other_4xx_are_fatal(standin):
    standin.fail_next(403)
    with make(standin) as enricher, pytest.raises(FatalError):
        enricher.lookup(["acme.com"])
    standin.clear()
    standin.fail_next(422)
    with make(standin) as enricher, pytest.raises(FatalError) as info:
        enricher.lookup(["acme.com"])
    assert info.value.status == 422
    assert standin.requests == 1


def test_a_failed_batch_keeps_the_answers_it_got_in_the_cache(standin):
    cache = MemoryCache()
    with make(standin, cache=cache, concurrency=1, retries=0) as enricher:
        enricher.lookup(["acme.com"])
        standin.fail_next(500)
        with pytest.raises(RetryableError):
            enricher.lookup(["globex.io", "acme.com"])
        assert enricher.lookup(["acme.com"]) == {"acme.com": ACME}
    assert standin.requests == 2


def test_refused_connection_is_retryable_and_vendor_errors_stay_inside(closed_port):
    enricher = HttpEnricher(f"http://127.0.0.1:{closed_port}", retries=1, backoff_s=0.01)
    with enricher, pytest.raises(RetryableError) as info:
        enricher.lookup(["acme.com"])
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_the_rate_limit_holds_across_threads(standin):
    rate = 20
    with make(standin, max_per_second=rate, concurrency=4) as enricher:
        enricher.lookup([f"co{i}.example" for i in range(30)])
    times = sorted(standin.request_times)
    assert len(times) == 30
    span = times[-1] - times[0]
    # 30 requests at 20/s need 29 intervals of 50 ms: 1.45 s; allow scheduling slack.
    assert span >= (30 - 1) / rate * 0.85
    # No one-second window holds more than the rate (plus one for the burst edge).
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t - start < 1.0)
        assert in_window <= rate + 1


def test_token_bucket_spacing_with_a_fake_clock():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(4, burst=2, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(6)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2:] == pytest.approx([0.25] * 4)
    bucket.hold(2.0)
    assert bucket.acquire() == pytest.approx(2.0)


def test_classify_maps_statuses():
    request = httpx.Request("GET", "http://x/v1/companies/a.com")
    ok = httpx.Response(200, json={"company": {}}, request=request)
    assert classify(ok) == {"company": {}}
    assert classify(httpx.Response(404, request=request)) is None
    limited = httpx.Response(429, headers={"Retry-After": "7"}, request=request)
    with pytest.raises(RateLimited) as info:
        classify(limited)
    assert info.value.retry_after == 7
    with pytest.raises(RetryableError):
        classify(httpx.Response(200, text="<html>", request=request))
    with pytest.raises(FatalError):
        classify(httpx.Response(200, json=[1], request=request))
    with pytest.raises(RetryableError) as timeout:
        classify(httpx.ReadTimeout("slow", request=request))
    assert isinstance(timeout.value.__cause__, httpx.ReadTimeout)


def test_202_queued_is_not_found_and_not_cached():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(202, json={"status": "queued"})

    cache = MemoryCache()
    enricher = HttpEnricher(
        "http://provider.test", transport=httpx.MockTransport(handler), cache=cache
    )
    with enricher:
        assert enricher.lookup(["a.com"]) == {}
        assert enricher.lookup(["a.com"]) == {}
    assert calls == ["/v1/companies/a.com"] * 2
    assert len(cache) == 0


def test_the_stand_in_loads_the_shipped_csv():
    with EnrichmentStandin() as standin, make(standin) as enricher:
        found = enricher.lookup(["outreach.io"])
    assert found["outreach.io"].industry == "sales engagement"
    assert standin.size > 60


def test_bad_configuration_is_refused(tmp_path: Path):
    from touchflow.errors import ConfigError

    with pytest.raises(ConfigError, match="http"):
        HttpEnricher("provider.test")
    with pytest.raises(ConfigError, match="unknown field"):
        HttpEnricher("http://provider.test", field_map={"revenue": "a.b"})
    with pytest.raises(ConfigError, match="domain"):
        HttpEnricher("http://provider.test", path_template="/v1/companies")
