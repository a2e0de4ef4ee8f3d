"""The MNIST loader: both layouts, plain and gzip, and every broken-file case, through real files."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
import torch
from conftest import TEST, TRAIN, idx_bytes, make_split, write_mnist

from actbench.data import FILES, MEAN, STD, DataError, load_mnist, prepare, subset_indices
from actbench.datafiles import prefetch
from actbench.errors import UsageError


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


def test_failed_download_is_one_sentence(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(
        DataError, match=r"could not be downloaded .*--data-dir / ACTBENCH_DATA_DIR"
    ):
        load_mnist(tmp_path / "nothing", download=True)


def test_partial_set_names_the_missing_file(mnist_dir):
    (mnist_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_mnist(mnist_dir, download=False)


def test_truncated_file_is_named(tmp_path):
    folder = write_mnist(tmp_path / "d")
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is truncated"):
        load_mnist(folder, download=False)


def test_truncated_gzip_is_named(mnist_dir):
    path = mnist_dir / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz is corrupt"):
        load_mnist(mnist_dir, download=False)


def test_garbage_gzip_is_named(mnist_dir):
    (mnist_dir / "t10k-images-idx3-ubyte.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz is corrupt"):
        load_mnist(mnist_dir, download=False)


def test_bad_header_is_named(mnist_dir):
    (mnist_dir / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04" * 8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz is not an MNIST IDX file"):
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
    (mnist_dir / "t10k-images-idx3-ubyte.gz").write_bytes(b"this is not gzip at all")
    _prefetched(mnist_dir)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz is corrupt"):
        load_mnist(mnist_dir, download=False)


def test_prefetch_of_a_missing_or_partial_folder_does_nothing(tmp_path, mnist_dir):
    assert prefetch(tmp_path / "absent") is None
    (mnist_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    assert prefetch(mnist_dir) is None
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_mnist(mnist_dir, download=False)
