"""Downloading MNIST against a simulated network: a local HTTP server plays the mirrors (or a
captive portal answering every request with an HTML page), and urllib's opener is replaced
where the network itself fails. A failed download leaves the data folder exactly as it was,
and every run in a row gives the same one-line cause."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_data import HTML, assert_loads_the_fixture, mnist_bytes, snapshot
from typer.testing import CliRunner

from actbench import datasets, download
from actbench.cli import app
from actbench.data import DataError, load_mnist

GZ = {role: gzip.compress(data, mtime=0) for role, data in mnist_bytes().items()}
NAMES = {f.role: f.download_name for f in datasets.MNIST.files}


class Server:
    """A local HTTP server answering each path from `routes`: path -> (status, type, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.default: tuple[int, str, bytes] = (404, "text/plain", b"not found")
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                status, kind, body = server.routes.get(self.path, server.default)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve_mnist(self, mirror: str, roles: list[str] | None = None) -> None:
        for role in roles or list(NAMES):
            self.routes[f"/{mirror}/{NAMES[role]}"] = (200, "application/x-gzip", GZ[role])

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """Two mirrors on this machine (hosts 127.0.0.1 and localhost), with the tiny files' md5s."""
    local = Server()
    monkeypatch.setenv("no_proxy", "*")  # never send the local requests through a proxy
    files = tuple(
        dataclasses.replace(f, md5=hashlib.md5(GZ[f.role]).hexdigest())
        for f in datasets.MNIST.files
    )
    mirrors = (f"http://127.0.0.1:{local.port}/a/", f"http://localhost:{local.port}/b/")
    monkeypatch.setattr(
        datasets, "MNIST", dataclasses.replace(datasets.MNIST, mirrors=mirrors, files=files)
    )
    yield local
    local.close()


def three_failures(folder: Path, root: Path) -> str:
    """Run the loader three times in a row; each must fail alike and leave `root` untouched."""
    before = snapshot(root)
    messages = set()
    for _ in range(3):
        with pytest.raises(DataError) as caught:
            load_mnist(folder, download=True)
        messages.add(str(caught.value))
        assert snapshot(root) == before
    (message,) = messages
    assert "\n" not in message and "nothing was written there" in message
    assert "--data-dir / ACTBENCH_DATA_DIR" in message
    return message


def test_the_table_is_torchvisions():
    from torchvision.datasets import MNIST

    assert datasets.MNIST.mirrors == tuple(MNIST.mirrors)
    assert [(f.download_name, f.md5) for f in datasets.MNIST.files] == list(MNIST.resources)


def test_downloads_are_checked_then_moved_into_place(server, tmp_path):
    server.serve_mnist("b")  # the first mirror answers 404: the second one serves the files
    folder = tmp_path / "data"
    assert_loads_the_fixture(folder)
    raw = folder / "MNIST" / "raw"
    assert sorted(p.name for p in folder.iterdir()) == ["MNIST"]  # no temporary folder left
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == {NAMES[r]: GZ[r] for r in NAMES}
    assert sum(p.startswith("/a/") for p in server.requests) == 4
    server.requests.clear()
    assert_loads_the_fixture(folder)  # the second run reads them and asks for nothing
    assert server.requests == []


@pytest.mark.parametrize("existing", [False, True])
def test_html_pages_everywhere_leave_nothing_and_say_so(server, tmp_path, existing):
    """A captive portal answers every request with a 64-byte page, three runs in a row."""
    server.default = (200, "text/html", HTML)
    folder = tmp_path / "data"
    if existing:
        folder.mkdir()
    message = three_failures(folder, tmp_path)
    assert f"could not download MNIST's {NAMES['train_images']}: an HTML page instead of MNIST" in (
        message
    )
    assert f"from 127.0.0.1:{server.port} and localhost:{server.port}" in message
    assert folder.exists() == existing


def test_an_http_status_is_named(server, tmp_path):
    server.default = (403, "text/html", HTML)
    message = three_failures(tmp_path / "data", tmp_path)
    assert f"HTTP 403 Forbidden from 127.0.0.1:{server.port} and localhost" in message


def test_each_mirror_s_cause_is_named(server, tmp_path):
    server.routes[f"/b/{NAMES['train_images']}"] = (200, "text/html", HTML)
    message = three_failures(tmp_path / "data", tmp_path)
    assert f"HTTP 404 Not Found from 127.0.0.1:{server.port}; an HTML page instead" in message


def test_a_file_that_is_not_the_published_one_is_refused(server, tmp_path):
    server.serve_mnist("a")
    server.serve_mnist("b")
    wrong = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02\x07\x07", mtime=0)
    for mirror in "ab":
        server.routes[f"/{mirror}/{NAMES['test_labels']}"] = (200, "application/x-gzip", wrong)
    message = three_failures(tmp_path / "data", tmp_path)
    md5 = hashlib.md5(wrong).hexdigest()
    assert f"{NAMES['test_labels']}: a file that is not MNIST's (md5 {md5}, expected" in message


def test_a_failure_after_some_files_arrived_leaves_none_of_them(server, tmp_path):
    server.serve_mnist("a", ["train_images", "train_labels"])
    three_failures(tmp_path / "data", tmp_path)
    assert len(server.requests) == 3 * 4  # two files, then the third from both mirrors


NETWORK_FAILURES = [
    (
        urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")),
        "no network (Temporary failure in name resolution) from ossci-datasets.s3.amazonaws.com "
        "and yann.lecun.com",
    ),
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "no network"),
    (urllib.error.URLError(TimeoutError("timed out")), "no network (timed out)"),
    (
        urllib.error.URLError(OSError("Tunnel connection failed: 403 Forbidden")),
        "the proxy refused the connection (403 Forbidden)",
    ),
    (
        urllib.error.URLError(ssl.SSLCertVerificationError(1, "certificate verify failed")),
        "TLS certificate is not trusted (a captive portal or a proxy?)",
    ),
    (
        urllib.error.URLError(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")),
        "the TLS connection failed (",
    ),
    (ConnectionResetError(104, "Connection reset by peer"), "the connection broke off"),
]


@pytest.mark.parametrize(("error", "cause"), NETWORK_FAILURES, ids=lambda v: str(v)[:30])
def test_no_network_is_named(tmp_path, monkeypatch, error, cause):
    asked = []

    def fail(request, timeout=None):
        asked.append(request.full_url)
        raise error

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    message = three_failures(tmp_path / "data", tmp_path)
    assert cause in message
    first = datasets.MNIST.files[0].download_name
    assert asked[:2] == [m + first for m in datasets.MNIST.mirrors]  # every mirror was tried


def test_an_interrupted_download_leaves_nothing(server, tmp_path, monkeypatch):
    server.serve_mnist("a")
    real_urlopen, calls = urllib.request.urlopen, []

    def interrupted(request, timeout=None):
        calls.append(request)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_urlopen(request, timeout=timeout)

    monkeypatch.setattr(urllib.request, "urlopen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_mnist(tmp_path / "data" / "mnist", download=True)
    assert not (tmp_path / "data").exists()  # not even the folders it had to create


def test_a_failed_move_leaves_nothing(server, tmp_path, monkeypatch):
    server.serve_mnist("a")
    (tmp_path / "data").mkdir()
    real_replace, moves = os.replace, []

    def full_disk(src, dst):
        moves.append(dst)
        if len(moves) % 4 == 3:  # the third file of each run
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(download.os, "replace", full_disk)
    message = three_failures(tmp_path / "data", tmp_path)
    assert "cannot write the download into" in message and "No space left on device" in message


def test_the_command_line_gives_one_line_three_times(server, tmp_path, monkeypatch):
    """The reported case as a user runs it: `actbench run` behind a captive portal."""
    server.default = (200, "text/html", HTML)
    monkeypatch.chdir(tmp_path)
    lines = set()
    for _ in range(3):
        result = CliRunner().invoke(app, ["run", "--epochs", "1"])
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("Error")]
        lines.add(line)
        assert sorted(p.name for p in tmp_path.iterdir()) == []  # no data/, no results/
    (line,) = lines
    assert line.startswith("Error: MNIST is not in data and could not download MNIST's")
    assert "an HTML page instead of MNIST" in line


def _closed_port() -> int:
    """A port on this machine where nothing listens: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_failed_download_prints_its_error_line_alone(tmp_path, monkeypatch):
    """No network (every mirror unreachable): no 'Downloading ...' line before the error."""
    mirrors = tuple(f"http://127.0.0.1:{_closed_port()}/{m}/" for m in "ab")
    monkeypatch.setattr(datasets, "MNIST", dataclasses.replace(datasets.MNIST, mirrors=mirrors))
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "--epochs", "1"])
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: MNIST is not in data and could not download MNIST's")
    assert "no network (Connection refused) from 127.0.0.1:" in line
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_download_says_where_the_files_went_in_one_line(server, tmp_path, capsys):
    server.serve_mnist("a")
    folder = tmp_path / "data"
    assert_loads_the_fixture(folder)
    captured = capsys.readouterr()
    assert captured.err == f"Downloaded MNIST into {folder / 'MNIST' / 'raw'}\n"
    assert captured.out == ""
