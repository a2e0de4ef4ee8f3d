"""Downloading a data set's files: into a temporary folder, checked, then moved into place.

Each file is fetched from the data set's mirrors in turn into a temporary folder inside the
data folder (the same file system, so the final move is an atomic rename), and its md5 is
checked against the published one. Only when every file has arrived intact are they moved
into `<data folder>/<data set>/raw`. A failed download leaves the data folder exactly as it
was (folders it had to create are removed again) and says why in one line: no network, an
HTTP status, or a reply that is not the data set (an HTML page from a captive portal or a
blocking proxy, say). Proxies are taken from the usual environment variables (urllib's).

While the files arrive, a terminal shows a transient line saying what is downloaded where;
it is erased when the download ends, so that a failure leaves its one-line error alone and a
success one line saying where the files went.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import ssl
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from actbench.datasets import DataSet, FileSpec
from actbench.locate import DataError, is_html
from actbench.terminal import Terminal

TIMEOUT = 30  # seconds a mirror may take to answer, or to send the next block
USER_AGENT = "actbench (python urllib)"
_CHUNK = 1 << 16


def _network_cause(reason: object) -> str:
    """A URLError's reason in words, naming the kind of failure first."""
    if isinstance(reason, ssl.SSLCertVerificationError):
        return "the server's TLS certificate is not trusted (a captive portal or a proxy?)"
    if isinstance(reason, ssl.SSLError):
        detail = getattr(reason, "reason", None) or reason
        return f"the TLS connection failed ({detail}; a captive portal or a proxy?)"
    text = str(reason)
    if "Tunnel connection failed" in text:  # the proxy answered CONNECT with an error status
        return f"the proxy refused the connection ({text.split(': ', 1)[-1]})"
    if isinstance(reason, TimeoutError):
        return "no network (timed out)"
    if isinstance(reason, OSError) and reason.strerror:
        return f"no network ({reason.strerror})"
    return f"no network ({text})"


def _fetch_one(url: str, dest: Path, file: FileSpec, spec: DataSet) -> str | None:
    """Download `url` into `dest`; None when its md5 is the published one, else the cause.

    Errors writing `dest` (a full disk, say) are raised as OSError.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    digest, head = hashlib.md5(), b""
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response, dest.open("wb") as out:
            while chunk := response.read(_CHUNK):
                head += chunk[: max(0, 512 - len(head))]
                digest.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as err:
        err.close()
        return f"HTTP {err.code} {err.reason}"
    except urllib.error.URLError as err:
        return _network_cause(err.reason)
    except (TimeoutError, ConnectionError, ssl.SSLError, http.client.HTTPException) as err:
        return f"the connection broke off ({getattr(err, 'strerror', None) or type(err).__name__})"
    if digest.hexdigest() == file.md5:
        return None
    if is_html(head):
        return f"an HTML page instead of {spec.name} (a captive portal or a blocking proxy?)"
    return f"a file that is not {spec.name}'s (md5 {digest.hexdigest()}, expected {file.md5})"


def _fetch(file: FileSpec, dest: Path, spec: DataSet) -> None:
    """Download one file from the first mirror that serves it intact, or raise DataError."""
    causes: dict[str, list[str]] = {}  # cause -> the mirrors' hosts that gave it
    for mirror in spec.mirrors:
        url = mirror + file.download_name
        cause = _fetch_one(url, dest, file, spec)
        if cause is None:
            return
        causes.setdefault(cause, []).append(urlsplit(url).netloc)
    said = "; ".join(f"{cause} from {' and '.join(hosts)}" for cause, hosts in causes.items())
    raise DataError(f"could not download {spec.name}'s {file.download_name}: {said}")


def _make_dirs(folder: Path) -> list[Path]:
    """Create `folder` and its missing parents; return those created, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    created = []
    for path in reversed(missing):
        path.mkdir()
        created.append(path)
    return created


def download(spec: DataSet, data_dir: Path) -> Path:
    """Fetch every file of `spec` into `data_dir/<spec.folder>/raw`; return that folder.

    Raises DataError with one line naming the cause when any file cannot be fetched intact,
    or when the data folder cannot be written; nothing is left behind then.
    """
    target = data_dir / spec.folder / "raw"
    created: list[Path] = []
    moved: list[Path] = []
    try:
        created += _make_dirs(data_dir)
        with tempfile.TemporaryDirectory(prefix=".actbench-download-", dir=data_dir) as tmp:
            status = _console().status(f"Downloading {spec.name} into {target} ...")
            with status:  # transient: erased however the download ends
                for file in spec.files:
                    _fetch(file, Path(tmp) / file.download_name, spec)
            created += _make_dirs(target)
            for file in spec.files:
                dest = target / file.download_name
                if dest.exists():  # looked for before downloading: only a concurrent writer
                    raise DataError(f"{dest} appeared during the download; run again")
                os.replace(Path(tmp) / file.download_name, dest)
                moved.append(dest)
    except BaseException as err:
        for path in moved:
            path.unlink(missing_ok=True)
        for folder in reversed(created):
            with contextlib.suppress(OSError):  # not empty: someone else wrote there meanwhile
                folder.rmdir()
        if isinstance(err, OSError):
            raise DataError(
                f"cannot write the download into {data_dir} "
                f"({err.strerror or err}); check the folder and the free disk space"
            ) from None
        raise
    _console().print(f"Downloaded {spec.name} into {target}", soft_wrap=True)
    return target


def _console() -> Terminal:
    """Standard error as it is now (a test or a caller may have replaced `sys.stderr`)."""
    return Terminal(file=sys.stderr, highlight=False)
