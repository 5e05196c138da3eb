"""Serving the web app with uvicorn until SIGTERM or SIGINT, then stopping gracefully.

Start-up binds the port itself and serves at once: there is no self-check over localhost that could time out on a
busy host (Gradio's ``launch()`` gives up after 3 s and asks for ``share=True``; it is not used). A port in use is
reported naming ``--port``.

On SIGTERM or SIGINT the server first keeps serving for :data:`FLUSH_SECONDS`, so that what readers typed just
before the signal reaches it (a page sends typing about a second late, ``studyapp/ui/autosave.js``); then it stops
accepting connections, refuses new work on the connections it has (503), waits until every user action it
accepted (a save, a submission; queued or running) is done, at most ``drain_seconds``, closes the remaining
connections and exits with status 0. A second SIGINT stops at once. The sign-in sessions are in the database: the
open pages reload themselves when the next server answers (Gradio's reconnection) and are still signed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
import sys
import threading

import uvicorn

from studyapp.services.errors import StudyError
from studyapp.ui.context import UIContext
from studyapp.web.app import build_web_app, gradio_apps

#: Seconds the server keeps serving after the signal, for text typed just before it.
FLUSH_SECONDS = 3.0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (IPv4 or IPv6, whichever the address is).

    Raises:
        StudyError: the port is in use or the address cannot be bound (the message names ``--port``).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise StudyError(f"cannot serve on {host!r}: {error.strerror} (choose the address with --host or "
                         "GRADIO_SERVER_NAME)") from error
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise StudyError(f"port {port} on {host} is already in use (another server running?); choose another "
                             "port with --port N (or GRADIO_SERVER_PORT)") from error
        raise StudyError(f"cannot serve on {host}:{port}: {error.strerror}") from error
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class GracefulServer(uvicorn.Server):
    """uvicorn's server that drains the app's work before closing connections, and exits 0 on a signal."""

    def __init__(self, config: uvicorn.Config, ctx: UIContext, apps: list):
        super().__init__(config)
        self.ctx = ctx
        self.apps = apps

    @contextlib.contextmanager
    def capture_signals(self):
        # uvicorn re-raises the signal after its shutdown (exit status 143 or 130); a drained stop is a success
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets=None) -> None:
        if not self.force_exit:
            print(f"stopping: taking what was typed before the signal ({FLUSH_SECONDS:g} s)", file=sys.stderr,
                  flush=True)
            for _ in range(int(FLUSH_SECONDS * 10)):
                if self.force_exit:
                    break
                await asyncio.sleep(0.1)
        self.ctx.work.draining = True  # new work is refused from now on
        for server in getattr(self, "servers", []):
            server.close()  # no new connections
        running = self.ctx.work.running + self._queued()
        print(f"stopping: waiting for {running} action(s) in progress (at most {self.ctx.settings.drain_seconds:g} s)",
              file=sys.stderr, flush=True)
        done = await asyncio.to_thread(self.ctx.work.drain, 0 if self.force_exit else self.ctx.settings.drain_seconds,
                                       self._queued)
        print("stopping: every action finished" if done else
              f"stopping: {self.ctx.work.running + self._queued()} action(s) still running after "
              f"{self.ctx.settings.drain_seconds:g} s are cut off", file=sys.stderr, flush=True)
        for app in self.apps:
            app.stop_event.set()  # ends the pages' heartbeat streams now (they reconnect to the next server)
        await super().shutdown(sockets)

    def _queued(self) -> int:
        """Events accepted by the Gradio queues and not finished (Gradio 6 ``Queue`` attributes)."""
        total = 0
        for app in self.apps:
            queue = app.get_blocks()._queue
            total += sum(len(q.queue) for q in queue.event_queue_per_concurrency_id.values())
            total += sum(1 for job in queue.active_jobs if job)
        return total


def serve(ctx: UIContext, host: str, port: int) -> int:
    """Serve the web app on ``host``:``port`` until SIGTERM or SIGINT; returns 0 after a graceful stop.

    Raises:
        StudyError: the port is in use or the address cannot be used.
    """
    sock = bind(host, port)
    app = build_web_app(ctx)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, proxy_headers=True)
    server = GracefulServer(config, ctx, gradio_apps(app))
    print(f"serving on http://{host}:{port} (stop with Ctrl-C or SIGTERM: saves in progress finish first)",
          flush=True)
    server.run(sockets=[sock])
    return 0
