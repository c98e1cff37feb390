"""A local OpenAI-compatible embeddings server for tests and benches: a real HTTP server
on 127.0.0.1 (stdlib, in a thread), answering `POST .../embeddings` as OpenAI does.

Vectors are bags of hashed words (each word adds 1 to one of `dim` axes), so texts that
share words are similar and the same text always gets the same vector. `mode` makes it
misbehave: "down" (connection refused), "slow" (answers after `delay_s`), "busy" (503
with Retry-After), "error" (400 with OpenAI's error body), "garbage" (200, not a list).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def word_vector(text: str, dim: int) -> list[float]:
    v = [0.0] * dim
    for word in text.lower().split():
        word = word.strip(".,;:!?\"'")
        if word:
            v[int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest()) % dim] += 1
    if not any(v):
        v[0] = 1.0
    return v


@dataclass
class FakeOpenAI:
    dim: int = 64
    mode: str = "ok"
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                if fake.mode == "slow" or fake.delay_s:
                    time.sleep(fake.delay_s or 5.0)
                if fake.mode == "down":
                    self.connection.close()
                    return
                if fake.mode == "busy":
                    return self._send(503, {"error": {"message": "overloaded"}}, retry="7")
                if fake.mode == "error":
                    return self._send(
                        400, {"error": {"message": "model 'nope' does not exist", "code": None}}
                    )
                if fake.mode == "garbage":
                    return self._send(200, {"object": "list", "data": "not vectors"})
                if not self.path.split("?")[0].endswith("/embeddings"):
                    return self._send(404, {"error": {"message": "not found"}})
                dim = int(body.get("dimensions") or fake.dim)
                data = [
                    {"object": "embedding", "index": i, "embedding": word_vector(t, dim)}
                    for i, t in enumerate(body["input"])
                ]
                data.reverse()  # the index, not the order, says which text a vector is
                self._send(200, {"object": "list", "data": data, "model": body["model"]})

            def _send(self, status: int, payload: Any, retry: str | None = None) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                if retry:
                    self.send_header("Retry-After", retry)
                self.end_headers()
                self.wfile.write(raw)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a "slow" answer still asleep is not waited for
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
