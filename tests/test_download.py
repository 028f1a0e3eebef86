"""ganaug.data.download against local archives served from files (no host is reachable here)."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from ganaug.data import KeywordDataset, download
from ganaug.data.download import REMOTES


def _fsdd_archive(path, fsdd_root, n=30):
    with tarfile.open(path, "w:gz") as tar:
        for wav in sorted(fsdd_root.glob("*.wav"))[:n]:
            tar.add(wav, arcname=f"free-spoken-digit-dataset-1.0.9/recordings/{wav.name}")
        readme = b"FSDD"
        info = tarfile.TarInfo("free-spoken-digit-dataset-1.0.9/README.md")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_real_remotes_are_pinned():
    sc = REMOTES["speech_commands_v2"]
    assert sc.url.endswith("speech_commands_v0.02.tar.gz") and len(sc.sha256) == 64
    assert REMOTES["fsdd"].url.endswith("v1.0.9.tar.gz") and len(REMOTES["fsdd"].sha256) == 64


def test_download_from_local_file_extracts_atomically_and_caches(tmp_path, fsdd_root, monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    archive = tmp_path / "v1.0.9.tar.gz"
    digest = _fsdd_archive(archive, fsdd_root)
    folder = download("fsdd", tmp_path / "data", url=archive.as_uri(), sha256=digest)
    assert folder == tmp_path / "data" / "fsdd"
    assert len(list(folder.glob("*.wav"))) == 30 and not (folder / "README.md").exists()
    assert (tmp_path / "cache" / "v1.0.9.tar.gz").is_file()
    ds = KeywordDataset(folder)
    assert len(ds) == 30 and ds[0]["wav"].shape == (16384,)
    archive.unlink()  # a second call needs neither the network nor the archive
    assert download("fsdd", tmp_path / "data", url=archive.as_uri(), sha256=digest) == folder
    assert not list((tmp_path / "data").glob(".fsdd.tmp-*"))


class _RangeServer:
    """A loopback HTTP server that honours Range requests and records them."""

    def __init__(self, payload: bytes):
        import http.server
        import threading

        ranges = self.ranges = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                start = 0
                if self.headers.get("Range"):
                    ranges.append(self.headers["Range"])
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                body = payload[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1.0.9.tar.gz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_resumes_a_partial_download_with_http_range(tmp_path, fsdd_root, monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    archive = tmp_path / "v1.0.9.tar.gz"
    digest = _fsdd_archive(archive, fsdd_root, n=5)
    payload = archive.read_bytes()
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "v1.0.9.tar.gz.part").write_bytes(payload[:1000])  # an interrupted run
    server = _RangeServer(payload)
    try:
        folder = download("fsdd", tmp_path / "data", url=server.url, sha256=digest)
    finally:
        server.close()
    assert server.ranges == ["bytes=1000-"]
    assert len(list(folder.glob("*.wav"))) == 5


def test_checksum_mismatch_is_reported_and_nothing_extracted(tmp_path, fsdd_root, monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    archive = tmp_path / "v1.0.9.tar.gz"
    _fsdd_archive(archive, fsdd_root, n=3)
    with pytest.raises(ValueError, match="checksum mismatch"):
        download("fsdd", tmp_path / "data", url=archive.as_uri())  # the official sha256 cannot match
    assert not (tmp_path / "data" / "fsdd").exists()
    assert (tmp_path / "cache" / "v1.0.9.tar.gz.bad").exists()


def test_offline_fails_at_once_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConnectionError, match="point data_folder at an extracted copy"):
        download("speech_commands_v2", tmp_path / "data", url="http://nonexistent.invalid/speech_commands_v0.02.tar.gz")
    with pytest.raises(ValueError, match="unknown dataset"):
        download("timit", tmp_path)
