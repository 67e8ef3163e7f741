"""One HTTP exchange with Neuronpedia: throttled, with timeouts and bounded retries, returning an outcome.

Nothing here raises for network or server trouble; :func:`send` classifies it so the client can answer
"offline" (the host cannot be reached at all), "not_found" (404) or "error" (everything else, after retries).
Request headers (the API key among them) never appear in messages or logs, and the key is never sent to a host
a redirect points at. A reply is bounded in time (a total deadline, however slowly it trickles: deadline.py) and
in size (read in chunks and abandoned past ``max_bytes``).
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import ConnectTimeoutError

from corrsteer_core.explain.http_bounds import ReplyTooLarge, deadline, origin, read_capped
from corrsteer_core.limits import (
    NEURONPEDIA_DEADLINE_S,
    NEURONPEDIA_MAX_REDIRECTS,
    NEURONPEDIA_MAX_REPLY_BYTES,
    loads_json,
)

__all__ = ["Outcome", "RateLimiter", "RetryPolicy", "send", "shared_rate_limiter"]

log = logging.getLogger(__name__)

NEURONPEDIA_REQUESTS_PER_HOUR = 25_000  # Neuronpedia's documented per-IP limit
_REDIRECTS = (301, 302, 303, 307, 308)


class RateLimiter:
    """Token bucket that keeps any one-hour window at or under ``per_hour`` requests (``burst`` at once)."""

    def __init__(self, per_hour: float = NEURONPEDIA_REQUESTS_PER_HOUR, burst: int = 100) -> None:
        if per_hour <= burst or burst < 1:
            raise ValueError(f"need per_hour > burst >= 1, got per_hour={per_hour}, burst={burst}")
        # burst + rate * 3600 == per_hour, so even a full bucket spent at once cannot exceed the hourly limit.
        self.rate = (per_hour - burst) / 3600.0  # tokens per second
        self.capacity = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is available; returns the seconds slept."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0  # reserve now, so concurrent callers queue behind each other
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)
        return wait


_SHARED: dict[str, RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_rate_limiter(base_url: str) -> RateLimiter:
    """One limiter per host for the whole process: Neuronpedia limits per IP, not per client object."""
    host = urlsplit(base_url).netloc.lower()
    with _SHARED_LOCK:
        return _SHARED.setdefault(host, RateLimiter())


@dataclass(frozen=True)
class RetryPolicy:
    """Timeouts and retries. Waits double from ``backoff`` unless the server sends Retry-After;
    once the waits would add up past ``max_wait`` seconds the request is given up."""

    timeout: float = 10.0
    connect_timeout: float = 5.0
    max_retries: int = 3
    backoff: float = 1.0
    max_wait: float = 30.0
    deadline: float = NEURONPEDIA_DEADLINE_S  # the whole request, retries and slow replies included
    max_bytes: int = NEURONPEDIA_MAX_REPLY_BYTES  # a longer reply is abandoned, never read whole

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.connect_timeout <= 0 or self.deadline <= 0:
            raise ValueError(
                f"timeouts must be > 0, got {self.timeout}, {self.connect_timeout} and deadline {self.deadline}"
            )
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {self.max_bytes}")
        if self.max_retries < 0 or self.backoff < 0 or self.max_wait < 0:
            raise ValueError("max_retries, backoff and max_wait must be >= 0")


OutcomeKind = Literal["ok", "not_found", "unreachable", "error"]


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    data: Any = None
    message: str = ""
    http_status: int | None = None


def _server_message(body: bytes) -> str:
    """The short reason a JSON error body gives ({"error": ...} or {"message": ...}), if any."""
    try:
        parsed = loads_json(body)
    except ValueError:
        return ""
    if isinstance(parsed, dict):
        for key in ("error", "message"):
            if isinstance(parsed.get(key), str):
                return parsed[key].strip()[:200]
    return ""


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), or None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_unreachable(exc: requests.ConnectionError) -> bool:
    """DNS failure, refused or timed-out connect, proxy failure: the host cannot be reached at all."""
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.ProxyError):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, ConnectTimeoutError)  # NewConnectionError and NameResolutionError derive from it


def _follow(
    session: requests.Session,
    method: str,
    url: str,
    body: Any,
    headers: dict[str, str],
    timeout: tuple[float, float],
) -> requests.Response | Outcome:
    """Send, following at most NEURONPEDIA_MAX_REDIRECTS redirects by hand: the API key goes only to the origin
    it was given for (requests would forward a custom header such as x-api-key to any host)."""
    first = origin(url)
    for _ in range(NEURONPEDIA_MAX_REDIRECTS + 1):
        response = session.request(
            method, url, json=body, headers=headers, timeout=timeout, stream=True, allow_redirects=False
        )
        location = response.headers.get("Location")
        if response.status_code not in _REDIRECTS or not location:
            return response
        response.close()
        url = urljoin(url, location)
        if urlsplit(url).scheme not in ("http", "https"):
            return Outcome(
                "error", message=f"Neuronpedia redirected to a non-HTTP address ({urlsplit(url).scheme})"
            )
        if origin(url) != first:
            headers = {k: v for k, v in headers.items() if k.lower() != "x-api-key"}
        if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
            method, body = "GET", None
    return Outcome("error", message=f"Neuronpedia redirected more than {NEURONPEDIA_MAX_REDIRECTS} times")


def _exchange(
    session: requests.Session, method: str, url: str, body: Any, headers: dict[str, str], policy: RetryPolicy,
    time_left: float,
) -> tuple[int, bytes, requests.Response] | Outcome:  # fmt: skip
    """Status and capped body of one request (redirects followed), or a final Outcome."""
    read_timeout = max(0.001, min(policy.timeout, time_left))
    followed = _follow(
        session, method, url, body, headers, (min(policy.connect_timeout, read_timeout), read_timeout)
    )
    if isinstance(followed, Outcome):
        return followed
    with followed:
        try:
            return followed.status_code, read_capped(followed, policy.max_bytes), followed
        except ReplyTooLarge:
            most = policy.max_bytes / 2**20
            return Outcome(
                "error", message=f"Neuronpedia's reply is larger than {most:g} MiB; it was not read further"
            )


def _attempt(
    session: requests.Session,
    method: str,
    url: str,
    body: Any,
    headers: dict[str, str],
    policy: RetryPolicy,
    time_left: float,
) -> Outcome | tuple[str, float | None]:
    """One try, cut when ``time_left`` runs out: a final Outcome, or (why, server-requested delay) for a try
    worth repeating."""
    host = urlsplit(url).netloc
    with deadline(time_left) as armed:
        try:
            exchanged = _exchange(session, method, url, body, headers, policy, time_left)
        except requests.RequestException as exc:
            if armed.expired:
                return Outcome("error", message=_late(policy))
            return _failure(exc, host, policy)
    if isinstance(exchanged, Outcome):
        return exchanged
    status, content, response = exchanged
    if status == 429:
        return ("rate limited by Neuronpedia", _retry_after(response))
    if status >= 500:
        return (f"Neuronpedia server error (HTTP {status})", _retry_after(response))
    if status == 404:
        return Outcome("not_found", message=_server_message(content), http_status=status)
    if status >= 400 or status < 200:
        detail = _server_message(content)
        message = f"Neuronpedia refused the request (HTTP {status}{': ' + detail if detail else ''})"
        return Outcome("error", message=message, http_status=status)
    try:
        return Outcome("ok", data=loads_json(content), http_status=status)
    except ValueError:
        message = f"Neuronpedia sent malformed JSON (HTTP {status}, {len(content)} bytes)"
        return Outcome("error", message=message, http_status=status)


def _late(policy: RetryPolicy) -> str:
    return f"Neuronpedia did not finish answering within {policy.deadline:g} s"


def _failure(exc: requests.RequestException, host: str, policy: RetryPolicy) -> Outcome | tuple[str, None]:
    """What a transport exception means: unreachable, a final error, or a try worth repeating."""
    if isinstance(exc, requests.ConnectionError):
        if _is_unreachable(exc):
            return Outcome("unreachable", message=f"cannot reach {host} ({type(exc).__name__})")
        if isinstance(exc, requests.exceptions.SSLError):
            return Outcome("error", message=f"TLS error talking to {host}")
        return ("the connection was dropped", None)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return ("the response was cut off", None)
    if isinstance(exc, requests.Timeout):
        return Outcome("error", message=f"Neuronpedia did not answer within {policy.timeout:g} s")
    return Outcome("error", message=f"request failed ({type(exc).__name__})")


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    body: Any = None,
    headers: dict[str, str],
    policy: RetryPolicy,
    limiter: RateLimiter,
) -> Outcome:
    """Make a request, repeating it on 429, 5xx and dropped connections within the policy's limits; the whole
    of it (tries, waits, redirects, slow replies) ends by the policy's deadline."""
    waited = 0.0
    ends = time.monotonic() + policy.deadline
    for attempt in range(policy.max_retries + 1):
        limiter.acquire()
        time_left = ends - time.monotonic()
        if time_left <= 0:
            return Outcome("error", message=_late(policy))
        result = _attempt(session, method, url, body, headers, policy, time_left)
        if isinstance(result, Outcome):
            return result
        why, requested = result
        if attempt == policy.max_retries:
            return Outcome("error", message=f"{why}; gave up after {attempt + 1} tries, retry later")
        delay = requested if requested is not None else policy.backoff * 2**attempt
        if waited + delay > policy.max_wait or time.monotonic() + delay > ends:
            asked = f"the server asks to wait {delay:.0f} s" if requested is not None else "waited long enough"
            return Outcome("error", message=f"{why}; {asked}, retry later")
        log.info("%s %s: %s; retrying in %.2f s", method, urlsplit(url).path, why, delay)
        time.sleep(delay)
        waited += delay
    raise AssertionError("unreachable")  # the loop always returns
