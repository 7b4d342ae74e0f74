"""Weights downloads against an HTTP server on 127.0.0.1 started here: good, corrupted, truncated and missing files,
a refused connection, a server that never answers, and --offline / EVALKIT_OFFLINE."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from evalkit.errors import EvalError, FeatureUnavailable
from evalkit.features import make_extractor
from evalkit.options import RunOptions
from evalkit.weights import WEIGHTS, WeightsFile, download, ensure
from tests.evalkit.support import random_inception_state
from tests.evalkit.test_features import write_keras_vgg16_notop


class Files(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (name -> bytes); ``/truncated/NAME`` declares the full length but sends half, then closes."""

    files: dict[str, bytes] = {}

    def do_GET(self) -> None:
        truncated = self.path.startswith("/truncated/")
        body = self.files.get(self.path.removeprefix("/truncated").lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if truncated else body)
        if truncated:
            self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch) -> Iterator[tuple[str, dict[str, bytes]]]:
    monkeypatch.delenv("EVALKIT_OFFLINE")
    files: dict[str, bytes] = {}
    handler = type("Handler", (Files,), {"files": files})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    httpd.shutdown()
    httpd.server_close()


def entry(url: str, folder: Path, check=None) -> WeightsFile:
    return WeightsFile("test", url, "test weights", lambda: folder, check)


def hub_name(body: bytes, stem: str = "weights") -> str:
    return f"{stem}-{hashlib.sha256(body).hexdigest()[:8]}.pth"


def test_download_checks_the_hash_prefix_and_renames_at_the_end(server, tmp_path):
    base, files = server
    body = bytes(range(256)) * 5000
    name = hub_name(body)
    files[name] = body
    path = download(entry(f"{base}/{name}", tmp_path / "hub"))
    assert path == tmp_path / "hub" / name and path.read_bytes() == body
    assert sorted(p.name for p in path.parent.iterdir()) == [name]  # no .partial left


def test_corrupted_download_is_refused_and_leaves_nothing(server, tmp_path):
    base, files = server
    body = b"real weights" * 1000
    name = hub_name(body)
    files[name] = b"X" + body[1:]  # one byte changed in transit
    with pytest.raises(EvalError, match="SHA-256"):
        download(entry(f"{base}/{name}", tmp_path / "hub"))
    assert list((tmp_path / "hub").iterdir()) == []


def test_truncated_download_is_refused_and_leaves_nothing(server, tmp_path):
    base, files = server
    body = b"0123456789" * 100_000
    name = hub_name(body)
    files[name] = body
    with pytest.raises(EvalError, match="truncated"):
        download(entry(f"{base}/truncated/{name}", tmp_path / "hub"))
    assert list((tmp_path / "hub").iterdir()) == []


def test_missing_file_refused_connection_and_silent_server_are_fast_unavailable(server, tmp_path):
    base, _ = server
    with pytest.raises(FeatureUnavailable, match="HTTP 404"):
        ensure(entry(f"{base}/absent-12345678.pth", tmp_path / "a"))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: refused at once
    with pytest.raises(FeatureUnavailable, match="download failed"):
        ensure(entry(f"http://127.0.0.1:{port}/w-12345678.pth", tmp_path / "b"))
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never answers
    start = time.monotonic()
    with pytest.raises(FeatureUnavailable, match="no answer within 0.5 s"):
        ensure(entry(f"http://127.0.0.1:{silent.getsockname()[1]}/w-12345678.pth", tmp_path / "c"), timeout=0.5)
    assert time.monotonic() - start < 5  # never a hang
    silent.close()


def test_offline_flag_and_environment_forbid_downloading(server, tmp_path, monkeypatch):
    base, files = server
    files["w-00000000.pth"] = b"never fetched"
    weights = entry(f"{base}/w-00000000.pth", tmp_path / "hub")
    with pytest.raises(FeatureUnavailable, match="downloads are off"):
        ensure(weights, offline=True)
    monkeypatch.setenv("EVALKIT_OFFLINE", "1")
    with pytest.raises(FeatureUnavailable, match="downloads are off") as err:
        ensure(weights)
    assert str(tmp_path / "hub") in str(err.value)


def test_inception_weights_are_fetched_into_the_torch_hub_cache_when_missing(server, tmp_path, monkeypatch):
    base, files = server
    saved = tmp_path / "state.pth"
    torch.save(random_inception_state(), saved)
    body = saved.read_bytes()
    name = hub_name(body, "pt_inception-test")
    files[name] = body
    monkeypatch.setitem(WEIGHTS, "inception", dataclasses.replace(WEIGHTS["inception"], url=f"{base}/{name}"))
    extractor = make_extractor("inception", RunOptions(device="cpu", inception_dims=64))
    hub = Path(torch.hub.get_dir()) / "checkpoints" / name
    assert extractor.provenance()["path"] == str(hub) and hub.read_bytes() == body
    with pytest.raises(FeatureUnavailable, match="downloads are off"):
        hub.unlink()
        make_extractor("inception", RunOptions(device="cpu", inception_dims=64, offline=True))


def test_weights_fetch_vggface_command(server, tmp_path, monkeypatch, evalkit_cli):
    base, files = server
    good = tmp_path / "good.h5"
    write_keras_vgg16_notop(good)
    files["rcmalli_vggface_tf_notop_vgg16.h5"] = good.read_bytes()
    files["rcmalli_vggface_tf_vgg16.h5"] = good.read_bytes()[:5000]  # a broken file
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    for key in ("vggface", "vggface-notop"):
        url = f"{base}/{WEIGHTS[key].name}"
        monkeypatch.setitem(WEIGHTS, key, dataclasses.replace(WEIGHTS[key], url=url))
    result = evalkit_cli("weights", "fetch", "vggface-notop")
    assert result.exit_code == 0, result.output
    target = tmp_path / "keras" / "models" / "vggface" / "rcmalli_vggface_tf_notop_vgg16.h5"
    assert target.read_bytes() == good.read_bytes()
    assert make_extractor("vggface", RunOptions(device="cpu", identity_backbone="vggface")).weights == target
    broken = evalkit_cli("weights", "fetch", "vggface")
    assert broken.exit_code == 2 and "error:" in broken.stderr and "Traceback" not in broken.output
    assert not (target.parent / "rcmalli_vggface_tf_vgg16.h5").exists()
    assert evalkit_cli("weights", "fetch", "nonsense").exit_code == 2
    listing = evalkit_cli("weights", "list")
    assert "vggface-notop" in listing.stdout and "(present)" in listing.stdout


def test_inception_url_is_pytorch_fids() -> None:
    """evalkit writes pytorch-fid's weights URL out (its import is slow); the two must not drift apart."""
    from pytorch_fid.inception import FID_WEIGHTS_URL

    assert WEIGHTS["inception"].url == FID_WEIGHTS_URL
