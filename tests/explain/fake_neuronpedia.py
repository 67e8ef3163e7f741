"""A loopback HTTP server shaped like Neuronpedia's REST API, with scripted failures and a request log.

Real HTTP on 127.0.0.1 (a free port, a ThreadingHTTPServer in a thread): the client under test runs unmodified.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeNeuronpedia", "RecordedRequest", "Reply", "free_port", "make_row"]


def free_port() -> int:
    """A port that nothing listens on right now (so connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_row(model_id: str, sae_id: str, index: int, n_acts: int = 8, n_tokens: int = 40) -> dict[str, Any]:
    """A feature row like Neuronpedia's: explanations, density, logits, activation examples, and bulk we drop."""
    activations = []
    for k in range(n_acts):
        peak = (7 * k + 20) % n_tokens
        values = [0.0] * n_tokens
        values[peak] = round(10.0 - k + 0.123456, 6)
        values[max(0, peak - 1)] = 1.5
        activations.append(
            {
                "id": f"act-{index}-{k}",
                "tokens": [f"▁tok{j}" for j in range(n_tokens)],
                "values": values,
                "maxValue": values[peak],
                "maxValueTokenIndex": peak,
                "dataIndex": str(1000 + k),
            }
        )
    return {
        "modelId": model_id,
        "layer": sae_id,
        "index": str(index),
        "sourceSetName": sae_id.split("-", 1)[-1],
        "explanations": [
            {"id": "e1", "description": f" mentions of topic {index}", "typeName": "oai_token-act-pair"},
            {"id": "e2", "description": "a second opinion", "typeName": "np_max-act-logits"},
            {"id": "e3", "description": f"mentions of topic {index}", "typeName": "duplicate"},
        ],
        "frac_nonzero": 0.000123456789,
        "pos_str": [f"pos{j}" for j in range(15)],
        "pos_values": [1.0 - j * 0.05 for j in range(15)],
        "neg_str": ["neg0", "neg1", "neg2"],
        "neg_values": [-0.9, -0.8, -0.7],
        "activations": activations,
        "maxActApprox": 10.123456,
        "vector": [0.01] * 64,
        "topkCosSimIndices": list(range(20)),
        "freq_hist_data_bar_heights": [3.0] * 50,
    }


@dataclass
class Reply:
    """A scripted answer: status, JSON-able body (or raw bytes), extra headers, a delay before answering.

    Misbehaviour on demand: ``trickle`` sends the body one byte every that many seconds (the status line and
    headers too with ``trickle_headers``); ``endless`` streams filler without a length until the client hangs up
    (the bytes that got out are counted in ``FakeNeuronpedia.streamed``).
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    trickle: float = 0.0
    trickle_headers: bool = False
    endless: bool = False


_ENDLESS_CAP = 256 * 2**20  # an endless reply stops here even if nobody hangs up


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeNeuronpedia:
    """Serves rows from ``features`` (keyed by (model_id, sae_id, index)); ``script`` queues replies for a
    path (consumed one per request), ``always`` answers a path the same way forever."""

    def __init__(self, port: int = 0) -> None:
        self.features: dict[tuple[str, str, int], dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.streamed: list[int] = []  # bytes of each endless reply that reached the client's socket
        self._queued: dict[str, deque[Reply]] = {}
        self._always: dict[str, Reply] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, model_id: str, sae_id: str, index: int, **kw: Any) -> dict[str, Any]:
        row = make_row(model_id, sae_id, index, **kw)
        self.features[(model_id, sae_id, index)] = row
        return row

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._queued.setdefault(path, deque()).extend(replies)

    def always(self, path: str, reply: Reply) -> None:
        self._always[path] = reply

    def count(self, method: str | None = None) -> int:
        return sum(1 for r in self.requests if method is None or r.method == method)

    def __enter__(self) -> FakeNeuronpedia:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _reply_for(self, method: str, path: str, body: Any) -> Reply:
        with self._lock:
            queue = self._queued.get(path)
            if queue:
                return queue.popleft()
        if path in self._always:
            return self._always[path]
        parts = path.strip("/").split("/")
        if method == "GET" and len(parts) == 5 and parts[:2] == ["api", "feature"] and parts[4].isdigit():
            row = self.features.get((parts[2], parts[3], int(parts[4])))
            return Reply(200, row) if row else Reply(404, {"error": "Feature Not Found"})
        if method == "POST" and path == "/api/features" and isinstance(body, list):
            rows = [self.features.get((q["modelId"], q["layer"], int(q["index"]))) for q in body]
            return Reply(200, [r for r in rows if r is not None])
        return Reply(404, {"error": "Not Found"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                fake.requests.append(RecordedRequest(self.command, self.path, dict(self.headers.items()), body))
                reply = fake._reply_for(self.command, self.path, body)
                time.sleep(reply.delay)
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    if reply.trickle_headers:
                        self._trickle(self._raw_head(reply, data), reply.trickle)
                    else:
                        self.send_response(reply.status)
                        self.send_header("Content-Type", "application/json")
                        if not reply.endless:
                            self.send_header("Content-Length", str(len(data)))
                        for name, value in reply.headers.items():
                            self.send_header(name, value)
                        self.end_headers()
                    if reply.endless:
                        self._endless()
                    elif reply.trickle:
                        self._trickle(data, reply.trickle)
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def _raw_head(self, reply: Reply, data: bytes) -> bytes:
                lines = [f"HTTP/1.0 {reply.status} OK", "Content-Type: application/json"]
                lines += [f"Content-Length: {len(data)}"] + [f"{k}: {v}" for k, v in reply.headers.items()]
                return ("\r\n".join(lines) + "\r\n\r\n").encode()

            def _trickle(self, data: bytes, every: float) -> None:
                for byte in data:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(every)

            def _endless(self) -> None:
                chunk, sent = b" " * (1 << 16), 0
                try:
                    while sent < _ENDLESS_CAP:
                        self.wfile.write(chunk)
                        sent += len(chunk)
                finally:
                    fake.streamed.append(sent)

            do_GET = _serve
            do_POST = _serve

        return Handler
