"""The MNIST loader: files recognised by content as people really have them, every broken-file
case, and nothing written into the data folder when loading fails, all through real files."""

from __future__ import annotations

import gzip
import os
import urllib.request
from pathlib import Path

import pytest
import torch
from conftest import TEST, TRAIN, idx_bytes, make_split, write_mnist
from typer.testing import CliRunner

from actbench.cli import app
from actbench.data import FILES, MEAN, STD, DataError, load_mnist, prepare, subset_indices
from actbench.datafiles import prefetch
from actbench.errors import UsageError

DOTTED = {role: name.replace("-idx", ".idx") for role, name in FILES.items()}  # archive names
HTML = b"<html><head><title>Sign in</title></head><body>Wi-Fi login</body></html>\n"[:64]


def mnist_bytes(train_seed: int = 1) -> dict[str, bytes]:
    """The four tiny IDX files by role (the same content `write_mnist` writes by default)."""
    train_x, train_y = make_split(TRAIN, seed=train_seed)
    test_x, test_y = make_split(TEST, seed=2)
    tensors = {"train_images": train_x, "train_labels": train_y}
    tensors |= {"test_images": test_x, "test_labels": test_y}
    return {role: idx_bytes(tensor) for role, tensor in tensors.items()}


def write_named(folder: Path, names: dict[str, str], gz: frozenset[str] = frozenset()) -> Path:
    """Write the files of the roles in `names` under those names (gzipped for roles in `gz`)."""
    folder.mkdir(parents=True, exist_ok=True)
    content = mnist_bytes()
    for role, name in names.items():
        data = content[role]
        (folder / name).write_bytes(gzip.compress(data) if role in gz else data)
    return folder


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` (folders as None, files by content), to compare before and after."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    } | {".": None}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to download fails the test: these folders must never need one."""

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


def assert_loads_the_fixture(folder: Path) -> None:
    mnist = load_mnist(folder, download=True)
    expected = mnist_bytes()
    for role, tensor in (
        ("train_images", mnist.train_images),
        ("test_images", mnist.test_images),
    ):
        assert idx_bytes(tensor)[16:] == expected[role][16:], role
    assert idx_bytes(mnist.train_labels.to(torch.uint8)) == expected["train_labels"]
    assert idx_bytes(mnist.test_labels.to(torch.uint8)) == expected["test_labels"]
    assert mnist.md5.keys() == set(FILES.values())


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("raw_layout", [False, True])
def test_loads_every_layout(tmp_path, gz, raw_layout):
    folder = write_mnist(tmp_path / "d", gz=gz, raw_layout=raw_layout)
    mnist = load_mnist(folder, download=False)
    images, labels = make_split(TRAIN, seed=1)
    assert mnist.train_images.shape == (TRAIN, 28, 28)
    assert mnist.test_images.shape == (TEST, 28, 28)
    assert torch.equal(mnist.train_images, images)
    assert torch.equal(mnist.train_labels, labels.long())
    assert mnist.train_labels.dtype == torch.int64
    assert set(mnist.md5) == set(FILES.values())


def test_idx_header_is_decoded_by_hand():
    data = idx_bytes(torch.arange(6, dtype=torch.uint8).reshape(2, 3))
    assert data[:4] == b"\x00\x00\x08\x02"
    assert data[4:12] == b"\x00\x00\x00\x02\x00\x00\x00\x03"


def test_missing_files_without_download_say_where_to_put_them(tmp_path):
    with pytest.raises(DataError, match=r"MNIST is not in .*empty; put the four files"):
        load_mnist(tmp_path / "empty", download=False)


def test_a_missing_folder_is_not_created(tmp_path):
    with pytest.raises(DataError, match="MNIST is not in"):
        load_mnist(tmp_path / "absent" / "data", download=False)
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("gz", [False, True])
def test_dotted_names_as_archive_tools_hand_them_out(tmp_path, offline, gz):
    """train-images.idx3-ubyte and its three siblings: MNIST, read as it is, nothing added."""
    folder = write_named(tmp_path / "mnist", DOTTED, gz=frozenset(FILES) if gz else frozenset())
    before = snapshot(tmp_path)
    assert_loads_the_fixture(folder)
    assert snapshot(tmp_path) == before  # in particular no MNIST/raw skeleton


@pytest.mark.parametrize("inner", ["archive", "mnist", "archive/MNIST/raw", "MNIST"])
def test_one_folder_deeper_after_unpacking(tmp_path, offline, inner):
    write_named(tmp_path / "data" / inner, DOTTED)
    (tmp_path / "data" / "mnist.zip").write_bytes(b"PK\x03\x04" + bytes(60))  # the archive
    before = snapshot(tmp_path)
    assert_loads_the_fixture(tmp_path / "data")
    assert snapshot(tmp_path) == before


def test_copies_of_a_file_count_once(tmp_path, offline):
    """As one data-sharing site packs MNIST: each file twice, flat and in a folder of its own,
    plus torchvision's layout holding both a plain and a gzipped copy."""
    folder = write_named(tmp_path / "kaggle", DOTTED)
    for role, name in FILES.items():
        write_named(folder / name, {role: name})
    assert_loads_the_fixture(folder)
    raw = write_named(tmp_path / "tv" / "MNIST" / "raw", FILES)
    write_named(raw, {role: name + ".gz" for role, name in FILES.items()}, frozenset(FILES))
    assert_loads_the_fixture(tmp_path / "tv")


@pytest.mark.parametrize("case", ["gzip with a plain name", "plain with a .gz name"])
def test_compression_is_read_from_the_content_not_the_name(tmp_path, offline, case):
    gz = frozenset(FILES) if case.startswith("gzip") else frozenset()
    names = FILES if gz else {role: name + ".gz" for role, name in FILES.items()}
    assert_loads_the_fixture(write_named(tmp_path / "d", names, gz))


def test_files_named_anything_are_told_apart_by_their_headers(tmp_path, offline):
    """No name says train or test: the IDX header says images or labels, the larger is train."""
    names = {"test_images": "a", "train_labels": "b", "train_images": "c", "test_labels": "d"}
    assert_loads_the_fixture(write_named(tmp_path / "d", names))


def test_two_files_for_one_role_are_refused_naming_both(tmp_path, offline):
    folder = write_named(tmp_path / "d", FILES)
    other = make_split(TRAIN, seed=9)[0]
    (folder / DOTTED["train_images"]).write_bytes(idx_bytes(other))
    before = snapshot(tmp_path)
    with pytest.raises(DataError) as caught:
        load_mnist(folder, download=True)
    message = str(caught.value)
    assert "2 different files for train images: train-images-idx3-ubyte and " in message
    assert f"train-images.idx3-ubyte (images, {TRAIN}x28x28)" in message
    assert "\n" not in message
    assert snapshot(tmp_path) == before


def test_an_extra_file_of_a_kind_is_refused(tmp_path, offline):
    folder = write_named(tmp_path / "d", FILES)
    (folder / "more-digits").write_bytes(idx_bytes(make_split(10, seed=5)[0]))
    with pytest.raises(
        DataError, match=r"3 different images files where MNIST has 2: .*more-digits"
    ):
        load_mnist(folder)


def test_unnamed_files_of_the_same_size_are_refused(tmp_path, offline):
    folder = tmp_path / "d"
    folder.mkdir()
    content = mnist_bytes()
    for role, name in {"train_labels": "b", "test_labels": "d"}.items():
        (folder / name).write_bytes(content[role])
    (folder / "a").write_bytes(content["train_images"])
    (folder / "c").write_bytes(idx_bytes(make_split(TRAIN, seed=9)[0]))
    with pytest.raises(
        DataError, match=f"cannot tell train from test images: a and c hold {TRAIN}"
    ):
        load_mnist(folder)


def test_a_missing_file_is_named_with_what_was_found(tmp_path, offline):
    names = {role: name for role, name in DOTTED.items() if role != "test_labels"}
    folder = write_named(tmp_path / "d", names, gz=frozenset({"train_images"}))
    before = snapshot(tmp_path)
    with pytest.raises(DataError) as caught:
        load_mnist(folder, download=True)  # part of MNIST is there: nothing is downloaded
    message = str(caught.value)
    assert "no file holds the test labels" in message
    assert (
        f"found t10k-images.idx3-ubyte (test images, {TEST}x28x28), "
        f"train-images.idx3-ubyte (train images, {TRAIN}x28x28), "
        f"train-labels.idx1-ubyte (train labels, {TRAIN})" in message
    )
    assert "test labels (t10k-labels-idx1-ubyte[.gz], 10000 labels)" in message
    assert snapshot(tmp_path) == before


def test_a_lone_file_goes_with_its_pair(tmp_path, offline):
    names = {"train_images": "digits", "train_labels": "train-labels-idx1-ubyte"}
    folder = write_named(tmp_path / "d", names)
    with pytest.raises(DataError) as caught:
        load_mnist(folder)
    message = str(caught.value)
    assert f"digits (train images, {TRAIN}x28x28)" in message
    assert "no file holds the test images; no file holds the test labels" in message


def test_a_missing_file_is_one_line_and_exit_code_1_on_the_command_line(tmp_path, offline):
    folder = write_named(tmp_path / "d", {k: v for k, v in DOTTED.items() if k != "test_labels"})
    args = ["run", "--data-dir", str(folder), "--results-dir", str(tmp_path / "r")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    (line,) = [ln for ln in result.stderr.splitlines() if "MNIST" in ln]
    assert line.startswith("Error: MNIST in ") and "no file holds the test labels" in line
    assert "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("layout", ["MNIST/raw", "."])
def test_an_html_page_with_an_mnist_name_is_named(tmp_path, offline, layout):
    """What a failed download used to leave: three runs in a row give the same clear refusal."""
    folder = tmp_path / "data"
    raw = write_named(folder / layout, {k: v + ".gz" for k, v in FILES.items()}, frozenset(FILES))
    (raw / "train-images-idx3-ubyte.gz").write_bytes(HTML)
    before = snapshot(tmp_path)
    messages = set()
    for _ in range(3):
        with pytest.raises(DataError) as caught:
            load_mnist(folder, download=True)
        messages.add(str(caught.value))
    (message,) = messages
    where = "" if layout == "." else "MNIST/raw/"
    assert (
        f"{where}train-images-idx3-ubyte.gz is an HTML page, not data (a failed download?); "
        "replace it with a fresh copy" in message
    )
    assert snapshot(tmp_path) == before


def test_an_html_page_alone_is_named_and_nothing_is_downloaded(tmp_path, offline):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(HTML)
    with pytest.raises(DataError, match=r"is an HTML page.*no file holds the train labels"):
        load_mnist(tmp_path / "data", download=True)


def test_an_archive_is_named_when_mnist_is_not_there(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "mnist.zip").write_bytes(b"PK\x03\x04" + bytes(60))
    (folder / "notes.txt").write_text("where I got MNIST")
    with pytest.raises(DataError, match=r"not in .*data \(found mnist.zip \(a zip archive: unpack"):
        load_mnist(folder, download=False)


def test_truncated_file_is_named(tmp_path):
    folder = write_mnist(tmp_path / "d")
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is truncated"):
        load_mnist(folder, download=False)


def test_gzip_cut_short_in_its_header_is_named(mnist_dir):
    path = mnist_dir / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz is a damaged gzip file"):
        load_mnist(mnist_dir, download=False)


def test_gzip_cut_short_later_is_named(mnist_dir):
    path = mnist_dir / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz is corrupt"):
        load_mnist(mnist_dir, download=False)


def test_garbage_gzip_is_named(mnist_dir):
    (mnist_dir / "t10k-images-idx3-ubyte.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(
        DataError, match=r"t10k-images-idx3-ubyte.gz is corrupt: neither gzip nor IDX"
    ):
        load_mnist(mnist_dir, download=False)


def test_bad_header_is_named(mnist_dir):
    (mnist_dir / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04" * 8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz is gzipped, but not an IDX"):
        load_mnist(mnist_dir, download=False)


def test_idx_of_another_shape_is_named(mnist_dir):
    data = idx_bytes(torch.zeros(TEST, 32, 32, dtype=torch.uint8))
    (mnist_dir / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(data))
    with pytest.raises(DataError, match=rf"is an IDX file of shape {TEST}x32x32, not MNIST"):
        load_mnist(mnist_dir, download=False)


def test_mismatched_counts_are_named(mnist_dir):
    labels = torch.zeros(TEST - 1, dtype=torch.uint8)
    (mnist_dir / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(DataError, match=f"has {TEST} images but .* has {TEST - 1} labels"):
        load_mnist(mnist_dir, download=False)


def test_data_dir_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        load_mnist(path, download=False)


def test_prepare_normalises_and_flattens(mnist_dir):
    mnist = load_mnist(mnist_dir, download=False)
    data = prepare(mnist, None, 0, torch.device("cpu"))
    assert data.train_x.shape == (TRAIN, 784)
    assert data.train_x.dtype == torch.float32
    expected = (mnist.train_images[3].flatten().float() / 255 - MEAN) / STD
    torch.testing.assert_close(data.train_x[3], expected)


def test_subset_is_seeded_and_proportional(mnist_dir):
    mnist = load_mnist(mnist_dir, download=False)
    a = prepare(mnist, 128, 7, torch.device("cpu"))
    b = prepare(mnist, 128, 7, torch.device("cpu"))
    c = prepare(mnist, 128, 8, torch.device("cpu"))
    assert len(a.train_x) == 128
    assert len(a.test_x) == round(TEST * 128 / TRAIN)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)


def test_subset_larger_than_data_is_refused():
    with pytest.raises(UsageError, match="subset 100 is larger than the 50 training samples"):
        subset_indices(50, 100, 0)


def test_unreadable_file_is_named(mnist_dir, monkeypatch):
    """Permission bits do not stop root, so the refusal the OS would give is injected."""
    real_read = Path.read_bytes

    def refuse(self):
        if self.name.startswith("t10k-labels"):
            raise PermissionError(13, "Permission denied")
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(DataError, match=r"cannot read .*t10k-labels.*Permission denied.*perm"):
        load_mnist(mnist_dir, download=False)


def test_unreadable_folder_is_named(mnist_dir, monkeypatch):
    """As for files: the refusal a non-root user would get is injected."""
    real_is_file = Path.is_file

    def refuse(self):
        if self.parent == mnist_dir:
            raise PermissionError(13, "Permission denied")
        return real_is_file(self)

    monkeypatch.setattr(Path, "is_file", refuse)
    with pytest.raises(DataError, match=r"cannot read data folder .*Permission denied.*--data-dir"):
        load_mnist(mnist_dir, download=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="file permissions do not bind the root user")
def test_unreadable_folder_for_real(mnist_dir):
    mnist_dir.chmod(0o000)
    try:
        with pytest.raises(DataError, match="cannot read"):
            load_mnist(mnist_dir, download=False)
    finally:
        mnist_dir.chmod(0o700)


def _prefetched(folder: Path) -> None:
    """Prefetch and wait until the files are read (the timeout only guards against a hang)."""
    thread = prefetch(folder)
    assert thread is not None
    thread.join(timeout=300)
    assert not thread.is_alive()  # else the test would go on racing the reading thread


@pytest.mark.parametrize("gz", [False, True])
def test_prefetched_files_are_the_ones_loaded(tmp_path, gz, monkeypatch):
    folder = write_mnist(tmp_path / "d", gz=gz)
    expected = load_mnist(folder, download=False)
    _prefetched(folder)

    def no_reading(self):
        raise AssertionError(f"{self} was read again")

    monkeypatch.setattr(Path, "read_bytes", no_reading)  # the loader must use the prefetch
    mnist = load_mnist(folder, download=False)
    assert torch.equal(mnist.train_images, expected.train_images)
    assert torch.equal(mnist.test_labels, expected.test_labels)
    assert mnist.md5 == expected.md5
    with pytest.raises(AssertionError, match="read again"):  # each prefetch is used once
        load_mnist(folder, download=False)


def test_a_file_changed_after_prefetch_is_read_again(mnist_dir):
    _prefetched(mnist_dir)
    labels = torch.full((TEST,), 7, dtype=torch.uint8)
    path = mnist_dir / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(labels)))
    assert torch.equal(load_mnist(mnist_dir, download=False).test_labels, labels.long())


def test_prefetch_errors_are_reported_by_the_loader(mnist_dir):
    path = mnist_dir / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])  # recognised by its header, broken further on
    _prefetched(mnist_dir)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz is corrupt"):
        load_mnist(mnist_dir, download=False)


def test_prefetch_of_a_missing_or_partial_folder_does_nothing(tmp_path, mnist_dir):
    assert prefetch(tmp_path / "absent") is None
    (mnist_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    assert prefetch(mnist_dir) is None
    with pytest.raises(DataError, match="no file holds the test labels"):
        load_mnist(mnist_dir, download=False)
