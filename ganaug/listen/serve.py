"""The local server of a listening test: the page, its clips, and the answers it posts.

Binds 127.0.0.1 only (the standard library's ThreadingHTTPServer). It serves ``index.html``,
``listen.js``, ``listen.css`` and ``clips/<id>.wav`` of the test folder and nothing else: not
``key.json``, not ``answers/``. The API:

``GET /api/state?listener=ID``
    the test for this listener: labels, choices, the clip order (blocks of ten, shuffled per
    listener, the same on every reload) and which clips and blocks this listener has answered.
``POST /api/answer``
    ``{"listener", "kind": "clip", "id", "label", "quality", "intelligibility"}`` or
    ``{"listener", "kind": "diversity", "block", "diversity"}``; validated, then appended to
    ``answers/<listener>.jsonl`` and fsynced before the reply.
"""

from __future__ import annotations

import json
import random
import re
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ganaug.listen.build import ANSWERS_DIR, PAGE_FILES, ListenError
from ganaug.listen.store import answer_path, append_answer, latest, read_answers, read_test

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


def _rating(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise ListenError(f"{name}={value!r}: give a whole number from 1 to 5")
    return value


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
        if urlsplit(self.path).path != "/api/answer":
            return self._json(404, {"error": f"{self.path}: POST answers to /api/answer"})
        length = self.headers.get("Content-Length") or "0"
        length = int(length) if length.isdigit() else 0
        if not 0 < length <= MAX_BODY:
            return self._json(400, {"error": "send one JSON answer (at most 16 KiB)"})
        try:
            record = self.server.save(json.loads(self.rfile.read(length)))
        except (ListenError, json.JSONDecodeError, TypeError, AttributeError) as err:
            return self._json(400, {"error": str(err)})
        self._json(200, {"ok": True, "saved": record})


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

    def state(self, listener: str) -> dict:
        path = answer_path(self.folder, listener)
        with self.lock:
            records, _ = read_answers([path] if path.is_file() else [])
        done = latest(records)
        return {
            "listener": listener, "labels": self.test["labels"], "choices": self.choices,
            "block_size": self.test["block_size"], "items": listener_order(self.test, listener),
            "answered": sorted(k[2] for k in done if k[1] == "clip"),
            "rated_blocks": sorted(k[2] for k in done if k[1] == "diversity"),
        }

    def save(self, answer: dict) -> dict:
        """Validate one answer, append it to the listener's file (fsynced) and return the stored record."""
        listener = answer.get("listener", "")
        path = answer_path(self.folder, listener)
        kind = answer.get("kind")
        record = {"listener": listener, "kind": kind, "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        if kind == "clip":
            if answer.get("id") not in self.item_ids:
                raise ListenError(f"id={answer.get('id')!r}: not a clip of this test")
            if answer.get("label") not in self.choices:
                raise ListenError(f"label={answer.get('label')!r}: choose one of {self.choices}")
            record.update(id=answer["id"], label=answer["label"], quality=_rating(answer.get("quality"), "quality"),
                          intelligibility=_rating(answer.get("intelligibility"), "intelligibility"))
            for extra in ("plays", "elapsed_ms"):
                if isinstance(answer.get(extra), (int, float)) and not isinstance(answer.get(extra), bool):
                    record[extra] = answer[extra]
        elif kind == "diversity":
            if answer.get("block") not in self.block_ids:
                raise ListenError(f"block={answer.get('block')!r}: not a block of this test")
            record.update(block=answer["block"], diversity=_rating(answer.get("diversity"), "diversity"))
        else:
            raise ListenError(f"kind={kind!r}: answers are of kind 'clip' or 'diversity'")
        with self.lock:
            append_answer(path, record)
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
