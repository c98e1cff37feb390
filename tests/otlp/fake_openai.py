"""An OpenAI-compatible chat completions server on 127.0.0.1, for instrumentations to
call: it answers with usage (cached and reasoning tokens included), or 500 when the
request's first message says "fail"."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai

RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": RESPONSE_MODEL,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": text},
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 3,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 1},
        },
    }


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        first = request["messages"][0]["content"]
        status, answer = (
            (500, {"error": {"message": "the model is down", "type": "server_error"}})
            if first == "fail"
            else (200, completion(f"Answer to: {request['messages'][-1]['content']}"))
        )
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads what was stored, not the access log."""


@contextmanager
def fake_openai() -> Iterator[str]:
    """The base URL (`http://127.0.0.1:PORT/v1`) of a running fake server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def chat(base_url: str, question: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Answer briefly"},
            {"role": "user", "content": question},
        ],
    )
