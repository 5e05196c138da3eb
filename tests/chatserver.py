"""A local OpenAI-compatible chat-completions server on 127.0.0.1 (http.server in a thread) that answers from a
script, for tests of the LLM judge: recorded answers (valid, malformed), raw HTTP replies (an error status, a
body that is not a chat completion) and replies that hang until the server closes."""

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Union

import pytest


@dataclass(frozen=True)
class Raw:
    """A reply sent as is: HTTP ``status`` with ``body`` (text/html)."""

    status: int
    body: str


@dataclass(frozen=True)
class Hang:
    """No reply until the server closes (a client timeout is the only way out)."""


Reply = Union[str, Raw, Hang]


class ChatServer:
    """Loopback server; ``answer(messages) -> reply`` decides each reply: a ``str`` becomes the assistant message
    of a chat completion (usage 100 prompt + 20 completion tokens), :class:`Raw` and :class:`Hang` as documented.
    With ``json_mode`` False, a request with ``response_format`` gets HTTP 400 naming it (as some local servers).

    Attributes:
        url: base URL to give the judge (``http://127.0.0.1:PORT/v1``).
        requests: every request body received, in order (see :meth:`wait_for_requests`).
        max_in_flight: most requests handled at once.
    """

    def __init__(self, answer: Callable[[list[dict]], Reply], delay_s: float = 0.0, json_mode: bool = True):
        self.answer = answer
        self.json_mode = json_mode
        self.delay_s = delay_s
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Condition()
        self.closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.lock.notify_all()
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = server.answer(body["messages"])
                    if "response_format" in body and not server.json_mode:
                        reply = Raw(400, '{"error": "unsupported parameter: response_format"}')
                    if server.delay_s:
                        server.closing.wait(server.delay_s)
                    if isinstance(reply, Hang):
                        server.closing.wait()
                        return
                    if isinstance(reply, Raw):
                        status, payload, kind = reply.status, reply.body.encode(), "text/html"
                    else:
                        status, kind = 200, "application/json"
                        payload = json.dumps({
                            "choices": [{"message": {"role": "assistant", "content": reply}}],
                            "usage": {"prompt_tokens": 100, "completion_tokens": 20},
                        }).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for_requests(self, n: int, timeout_s: float = 60.0) -> list[dict]:
        """The requests once at least ``n`` have arrived (a client that timed out may return before the server
        thread has read its request).

        Raises:
            AssertionError: fewer than ``n`` within ``timeout_s``.
        """
        with self.lock:
            assert self.lock.wait_for(lambda: len(self.requests) >= n, timeout_s), (
                f"{len(self.requests)} request(s) within {timeout_s} s, expected {n}")
            return list(self.requests)

    def close(self) -> None:
        """Release hanging replies, stop serving and close the socket."""
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def pair_prompt(messages: list[dict]) -> str:
    """The user message holding the pair being judged (after the system prompt and the worked examples)."""
    from analysis.judges.llm import FEW_SHOT

    return messages[1 + 2 * len(FEW_SHOT)]["content"]


@pytest.fixture()
def chat_server():
    """Call with ``answer`` (and ``delay_s``, ``json_mode``) to start a :class:`ChatServer`; all are closed after the test."""
    servers: list[ChatServer] = []

    def start(answer: Callable[[list[dict]], Reply], delay_s: float = 0.0, json_mode: bool = True) -> ChatServer:
        servers.append(ChatServer(answer, delay_s, json_mode))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
