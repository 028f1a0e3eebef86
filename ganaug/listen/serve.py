"""The local server of a listening test: the page, its clips, and the answers it posts.

Binds 127.0.0.1 only (the standard library's ThreadingHTTPServer). It serves ``index.html``,
``listen.js``, ``listen.css`` and ``clips/<id>.wav`` of the test folder and nothing else: not
``key.json``, not ``answers/``. The API:

``GET /api/state?listener=ID``
    the test for this listener: labels, choices, the clip order (blocks of ten, shuffled per
    listener, the same on every reload) and which clips and blocks this listener has answered.
``POST /api/answer``
    ``{"listener", "kind": "clip", "id", "label", "quality", "intelligibility"}`` or
    ``{"listener", "kind": "diversity", "block", "diversity"}``; validated
    (:func:`ganaug.listen.store.check_answer`), then appended to ``answers/<listener>.jsonl`` and
    fsynced before the reply.

A bad request (not JSON, NaN, nested too deeply, a field out of range) is answered 400, an
answers folder that cannot be written 500, each with a JSON ``{"error"}`` and one line on stderr;
the connection is never dropped and no traceback is printed.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ganaug.io import write_error
from ganaug.listen.build import ANSWERS_DIR, PAGE_FILES, ListenError
from ganaug.listen.store import answer_path, append_answer, check_answer, latest, parse_json, read_answers, read_test

__all__ = ["make_server", "serve", "listener_order", "HOST"]

HOST = "127.0.0.1"
CLIP_RE = re.compile(r"^/clips/(c[0-9a-f]{10})\.wav$")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
MAX_BODY = 1 << 14


def listener_order(test: dict, listener: str) -> list[dict]:
    """The items in the order ``listener`` hears them: blocks shuffled, clips shuffled within a block.

    A pure function of (test token, listener), so a reload resumes the same sequence.
    """
    rng = random.Random(f"{test['token']}:{listener}")
    blocks: dict[str, list[dict]] = {}
    for item in test["items"]:
        blocks.setdefault(item["block"], []).append(item)
    names = sorted(blocks)
    rng.shuffle(names)
    order = []
    for name in names:
        members = sorted(blocks[name], key=lambda item: item["id"])
        rng.shuffle(members)
        order += members
    return order


class _Handler(BaseHTTPRequestHandler):
    server: "ListenServer"

    def log_message(self, format, *args):  # quiet: one line per request would bury the URL line
        pass

    def _send(self, status: int, body: bytes, content_type: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlsplit(self.path)
        folder = self.server.folder
        name = "index.html" if url.path in ("/", "/index.html") else url.path.lstrip("/")
        if name in PAGE_FILES:
            return self._send(200, (folder / name).read_bytes(), TYPES[Path(name).suffix])
        match = CLIP_RE.match(url.path)
        if match and match.group(1) in self.server.item_ids:
            return self._send(200, (folder / "clips" / f"{match.group(1)}.wav").read_bytes(), "audio/wav", cache=True)
        if url.path == "/api/state":
            listener = parse_qs(url.query).get("listener", [""])[0]
            try:
                return self._json(200, self.server.state(listener))
            except ListenError as err:
                return self._json(400, {"error": str(err)})
        self._json(404, {"error": f"{url.path}: not part of this listening test"})

    def do_POST(self):
        try:
            status, reply = self._post()
        except OSError as err:   # the answers folder cannot be written (read-only, full): the server's fault
            status, reply = 500, {"error": f"answer not saved: {write_error(err, self.server.folder / ANSWERS_DIR)}"}
        except Exception as err:  # a bug: one line and a reply, never a dropped connection the page cannot explain
            status, reply = 500, {"error": f"answer not saved: internal error ({type(err).__name__}: {err})"}
        if status != 200:
            print(f"ganaug listen: POST {self.path}: {status} {reply['error']}", file=sys.stderr, flush=True)
        self._json(status, reply)

    def _post(self) -> tuple[int, dict]:
        if urlsplit(self.path).path != "/api/answer":
            return 404, {"error": f"{self.path}: POST answers to /api/answer"}
        length = self.headers.get("Content-Length") or "0"
        length = int(length) if length.isdigit() else 0
        if not 0 < length <= MAX_BODY:
            return 400, {"error": "send one JSON answer (at most 16 KiB)"}
        try:
            return 200, {"ok": True, "saved": self.server.save(parse_json(self.rfile.read(length)))}
        except ValueError as err:   # ListenError, not JSON / UTF-8, NaN, nested too deeply
            return 400, {"error": str(err)}


class ListenServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path, port: int):
        self.folder = Path(folder)
        self.test = read_test(self.folder)
        missing = [name for name in PAGE_FILES if not (self.folder / name).is_file()]
        if missing:
            raise ListenError(f"{self.folder}: page files {missing} are missing; build the test again with ganaug listen")
        self.item_ids = {item["id"] for item in self.test["items"]}
        self.block_ids = set(self.test["blocks"])
        self.choices = list(self.test["choices"])
        self.lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def check(self, answer) -> dict:
        return check_answer(answer, self.item_ids, self.block_ids, self.choices)

    def state(self, listener: str) -> dict:
        path = answer_path(self.folder, listener)
        with self.lock:
            records, _ = read_answers([path] if path.is_file() else [], self.check)
        done = latest(records)
        return {
            "listener": listener, "labels": self.test["labels"], "choices": self.choices,
            "block_size": self.test["block_size"], "items": listener_order(self.test, listener),
            "answered": sorted(k[2] for k in done if k[1] == "clip"),
            "rated_blocks": sorted(k[2] for k in done if k[1] == "diversity"),
        }

    def save(self, answer) -> dict:
        """Validate one answer, append it to the listener's file (fsynced) and return the stored record."""
        record = {**self.check(answer), "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        with self.lock:
            append_answer(answer_path(self.folder, record["listener"]), record)
        return record


def make_server(folder, port: int = 8000) -> ListenServer:
    """A server for the test in ``folder`` bound to 127.0.0.1:``port`` (0: a free port); call ``serve_forever()``."""
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ListenError(f"--port {port!r}: give a port number from 1 to 65535 (0: any free port)")
    try:
        return ListenServer(Path(folder), port)
    except OSError as err:
        raise ListenError(f"--port {port}: cannot listen on {HOST}:{port} ({err.strerror}); choose another --port") from None


def serve(folder, port: int = 8000) -> int:
    """``ganaug listen --serve DIR [--port N]``: serve until Ctrl-C."""
    server = make_server(folder, port)
    host, port = server.server_address[:2]
    print(f"listening test at http://{host}:{port}/  (answers go to {Path(folder) / ANSWERS_DIR}/; Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
