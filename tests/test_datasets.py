"""Every data set `--dataset` names, through the real loading code: tiny files written in each
data set's own layout (IDX files, CIFAR-10 pickles and archive), MNIST-1D from its generator,
the files of one IDX data set never taken for another's, and downloads from a local server."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import pickle
import random
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import idx_bytes, make_split
from test_data import snapshot
from test_download import Server
from typer.testing import CliRunner

from actbench import cifar, datasets, mnist1d_data
from actbench.cli import app
from actbench.config import RunConfig, make_config
from actbench.data import DataError, load_dataset, prepare
from actbench.datafiles import prefetch
from actbench.errors import UsageError

runner = CliRunner()
TRAIN, TEST = 200, 50
IDX_NAMES = {f.role: f.name for f in datasets.MNIST.files}


def idx_set(seed: int) -> dict[str, bytes]:
    """Four tiny IDX files by role: learnable 28x28 images and labels 0-9."""
    train_x, train_y = make_split(TRAIN, seed=seed)
    test_x, test_y = make_split(TEST, seed=seed + 100)
    tensors = {"train_images": train_x, "train_labels": train_y}
    tensors |= {"test_images": test_x, "test_labels": test_y}
    return {role: idx_bytes(t) for role, t in tensors.items()}


def write_idx(folder: Path, seed: int, gz: bool = True) -> dict[str, bytes]:
    """Write `idx_set(seed)` under the canonical names into `folder`; return the content."""
    folder.mkdir(parents=True, exist_ok=True)
    content = idx_set(seed)
    for role, data in content.items():
        name = IDX_NAMES[role] + (".gz" if gz else "")
        (folder / name).write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return content


def labels_known_as(monkeypatch: pytest.MonkeyPatch, key: str, content: dict[str, bytes]):
    """Make `content`'s label files the published label files of data set `key`."""
    attribute = datasets._TABLES[key]
    spec = getattr(datasets, attribute)
    files = tuple(
        dataclasses.replace(f, content_md5=hashlib.md5(content[f.role]).hexdigest())
        if f.kind == "labels"
        else f
        for f in spec.files
    )
    monkeypatch.setattr(datasets, attribute, dataclasses.replace(spec, files=files))


def train_images_of(raw) -> bytes:
    return idx_bytes(raw.train_images)[16:]


# ---- the tables -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "name"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST"), ("kmnist", "KMNIST")]
)
def test_the_idx_tables_are_torchvisions(key, name):
    import torchvision.datasets as tv

    theirs = getattr(tv, name)
    mine = datasets.spec(key)
    assert mine.folder == name  # torchvision's folder: <data folder>/<name>/raw
    assert mine.mirrors == tuple(theirs.mirrors)
    assert [(f.download_name, f.md5) for f in mine.files] == list(theirs.resources)
    assert mine.classes == len(theirs.classes)


def test_the_cifar_table_is_torchvisions():
    from torchvision.datasets import CIFAR10

    table = datasets.CIFAR10
    assert (table.url, table.archive, table.archive_md5, table.folder) == (
        CIFAR10.url,
        CIFAR10.filename,
        CIFAR10.tgz_md5,
        CIFAR10.base_folder,
    )
    mine = [[b.name, b.md5] for b in table.batches]
    assert mine == [list(x) for x in (*CIFAR10.train_list, *CIFAR10.test_list)]


def test_label_checksums_tell_the_three_apart():
    """Each published label file's md5 belongs to one data set only (else none could be told)."""
    md5s = [f.content_md5 for s in datasets.idx_sets() for f in s.files if f.kind == "labels"]
    assert len(md5s) == 6 and None not in md5s and len(set(md5s)) == 6


# ---- Fashion-MNIST and KMNIST -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "folder"), [("fashion-mnist", "FashionMNIST"), ("kmnist", "KMNIST")]
)
@pytest.mark.parametrize("gz", [True, False])
def test_idx_sets_load_from_torchvisions_layout(tmp_path, key, folder, gz):
    content = write_idx(tmp_path / "data" / folder / "raw", seed=3, gz=gz)
    raw = load_dataset(key, tmp_path / "data", download=False)
    assert raw.dataset == key and raw.classes == 10
    assert train_images_of(raw) == content["train_images"][16:]
    assert raw.train_labels.dtype == torch.int64
    assert set(raw.md5) == set(IDX_NAMES.values())
    data = prepare(raw, None, 0, torch.device("cpu"))
    assert data.train_x.shape == (TRAIN, 784) and data.test_x.shape == (TEST, 784)
    assert data.inputs == 784 and data.classes == 10


def test_fashion_and_kmnist_are_normalised_by_their_own_training_pixels(tmp_path):
    write_idx(tmp_path / "FashionMNIST" / "raw", seed=5)
    raw = load_dataset("fashion-mnist", tmp_path, download=False)
    pixels = raw.train_images.double().numpy() / 255.0
    assert raw.mean == pytest.approx((pixels.mean(),), abs=1e-12)
    assert raw.std == pytest.approx((pixels.std(),), abs=1e-12)  # population std, as numpy's
    data = prepare(raw, None, 0, torch.device("cpu"))
    expected = (raw.train_images[7].flatten().double() / 255 - pixels.mean()) / pixels.std()
    torch.testing.assert_close(data.train_x[7].double(), expected, rtol=0, atol=1e-5)
    assert abs(float(data.train_x.double().mean())) < 1e-5
    assert float(data.train_x.double().std(unbiased=False)) == pytest.approx(1, abs=1e-5)
    record = data.record()
    assert record["dataset"] == "fashion-mnist" and record["inputs"] == 784
    assert record["normalisation"]["mean"] == [raw.mean[0]]


def test_each_idx_set_in_its_own_folder_is_its_own(tmp_path):
    """One data folder holding all three, as torchvision lays them out: each gets its own."""
    contents = {}
    for seed, key in enumerate(("mnist", "fashion-mnist", "kmnist")):
        folder = tmp_path / datasets.spec(key).folder / "raw"
        contents[key] = write_idx(folder, seed=10 + seed)
    for key, content in contents.items():
        raw = load_dataset(key, tmp_path, download=False)
        assert train_images_of(raw) == content["train_images"][16:], key


def test_published_mnist_files_are_never_taken_for_fashion_mnist(tmp_path, monkeypatch):
    """A folder holding MNIST (known by its label files' md5) has no Fashion-MNIST in it."""
    content = write_idx(tmp_path / "data", seed=1)
    labels_known_as(monkeypatch, "mnist", content)
    with pytest.raises(DataError) as caught:
        load_dataset("fashion-mnist", tmp_path / "data", download=False)
    message = str(caught.value)
    assert message.startswith("Fashion-MNIST is not in")
    assert "train-labels-idx1-ubyte.gz (MNIST's labels, 200)" in message
    assert "train-images-idx3-ubyte.gz (MNIST's images, 200x28x28)" in message  # its folder's
    assert "\n" not in message
    raw = load_dataset("mnist", tmp_path / "data", download=False)  # as MNIST they are used
    assert train_images_of(raw) == content["train_images"][16:]


def test_fashion_files_known_by_content_are_used_wherever_they_lie(tmp_path, monkeypatch):
    content = write_idx(tmp_path / "data" / "downloads", seed=2, gz=False)
    labels_known_as(monkeypatch, "fashion-mnist", content)
    raw = load_dataset("fashion-mnist", tmp_path / "data", download=False)
    assert train_images_of(raw) == content["train_images"][16:]
    with pytest.raises(DataError, match=r"^MNIST is not in .*Fashion-MNIST's labels"):
        load_dataset("mnist", tmp_path / "data", download=False)


def test_content_beats_the_folder(tmp_path, monkeypatch):
    """MNIST's files copied into FashionMNIST/raw are still MNIST's."""
    content = write_idx(tmp_path / "FashionMNIST" / "raw", seed=4)
    labels_known_as(monkeypatch, "mnist", content)
    with pytest.raises(DataError, match="MNIST's labels"):
        load_dataset("fashion-mnist", tmp_path, download=False)


@pytest.mark.parametrize("folder", ["kmnist", "KMNIST", "fashion_mnist", "Fashion-MNIST"])
def test_files_in_another_data_sets_folder_are_its_own(tmp_path, folder):
    """Files of unknown content one level down, in a folder named for KMNIST (or Fashion-MNIST),
    are not MNIST, though nothing in them says so."""
    content = write_idx(tmp_path / "data" / folder, seed=6)
    owner = "Fashion-MNIST" if "ashion" in folder else "KMNIST"
    with pytest.raises(DataError, match=rf"MNIST is not in .*{owner}'s labels"):
        load_dataset("mnist", tmp_path / "data", download=False)
    key = "fashion-mnist" if "ashion" in folder else "kmnist"
    raw = load_dataset(key, tmp_path / "data", download=False)
    assert train_images_of(raw) == content["train_images"][16:]


def test_a_data_folder_that_is_another_sets_torchvision_folder(tmp_path):
    """--data-dir pointing at FashionMNIST/: its raw/ is one level down, and not MNIST's."""
    write_idx(tmp_path / "FashionMNIST" / "raw", seed=7)
    with pytest.raises(DataError, match="Fashion-MNIST's images"):
        load_dataset("mnist", tmp_path / "FashionMNIST", download=False)
    assert load_dataset("fashion-mnist", tmp_path / "FashionMNIST", download=False)


def test_files_of_unknown_content_in_a_neutral_folder_serve_any_idx_set(tmp_path):
    """Nothing says whose they are: the data set asked for takes them (as MNIST always did)."""
    content = write_idx(tmp_path / "data", seed=8)
    for key in ("mnist", "fashion-mnist", "kmnist"):
        raw = load_dataset(key, tmp_path / "data", download=False)
        assert train_images_of(raw) == content["train_images"][16:]


def test_prefetch_reads_the_data_set_asked_for(tmp_path, monkeypatch):
    write_idx(tmp_path / "MNIST" / "raw", seed=1)
    fashion = write_idx(tmp_path / "FashionMNIST" / "raw", seed=2)
    thread = prefetch(tmp_path, "fashion-mnist")
    assert thread is not None
    thread.join()
    raw = load_dataset("fashion-mnist", tmp_path, download=False)
    assert train_images_of(raw) == fashion["train_images"][16:]
    assert prefetch(tmp_path, "mnist1d") is None and prefetch(tmp_path, "cifar10") is None


@pytest.fixture
def fashion_server(monkeypatch: pytest.MonkeyPatch):
    """Fashion-MNIST's tiny files on a local mirror, with their md5s as the published ones."""
    local = Server()
    monkeypatch.setenv("no_proxy", "*")
    gz = {role: gzip.compress(data, mtime=0) for role, data in idx_set(seed=9).items()}
    spec = datasets.FASHION_MNIST
    files = tuple(
        dataclasses.replace(f, md5=hashlib.md5(gz[f.role]).hexdigest()) for f in spec.files
    )
    mirror = f"http://127.0.0.1:{local.port}/f/"
    monkeypatch.setattr(
        datasets, "FASHION_MNIST", dataclasses.replace(spec, mirrors=(mirror,), files=files)
    )
    local.gz = gz
    yield local
    local.close()


def test_fashion_mnist_downloads_into_torchvisions_folder(fashion_server, tmp_path):
    for f in datasets.FASHION_MNIST.files:
        fashion_server.routes[f"/f/{f.download_name}"] = (
            200,
            "application/x-gzip",
            fashion_server.gz[f.role],
        )
    raw = load_dataset("fashion-mnist", tmp_path / "data", download=True)
    folder = tmp_path / "data" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["FashionMNIST"]
    assert {p.name for p in folder.iterdir()} == {
        f.download_name for f in datasets.FASHION_MNIST.files
    }
    assert train_images_of(raw) == idx_set(seed=9)["train_images"][16:]


def test_a_failed_fashion_download_leaves_nothing(fashion_server, tmp_path):
    first = datasets.FASHION_MNIST.files[0]
    fashion_server.routes[f"/f/{first.download_name}"] = (
        200,
        "application/x-gzip",
        fashion_server.gz[first.role],
    )
    (tmp_path / "data").mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(DataError) as caught:
        load_dataset("fashion-mnist", tmp_path / "data", download=True)
    message = str(caught.value)
    assert message.startswith("Fashion-MNIST is not in") and "HTTP 404" in message
    assert "nothing was written there" in message and "\n" not in message
    assert snapshot(tmp_path) == before


# ---- CIFAR-10 ---------------------------------------------------------------------------------

CIFAR_PER_BATCH, CIFAR_TEST = 12, 10


def cifar_batch(n: int, seed: int) -> dict:
    """A batch as the published pickles hold it: uint8 data (n, 3072), a list of int labels."""
    generator = np.random.default_rng(seed)
    data = generator.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    data[:, :1024] //= 2  # channels of different means, so per-channel normalisation shows
    data[:, 2048:] = 255 - data[:, 2048:] // 4
    labels = [int(v) for v in generator.integers(0, 10, size=n)]
    return {"batch_label": f"batch {seed}", "labels": labels, "data": data,
            "filenames": [f"img_{i}.png" for i in range(n)]}  # fmt: skip


def _text(value: bytes) -> bytes:
    return b"U" + bytes([len(value)]) + value  # SHORT_BINSTRING: a Python 2 str


def py2_pickle(batch: dict) -> bytes:
    """A batch pickled as the published files are: by Python 2 (protocol 2, str keys and data),
    an array as numpy 1 reduced it. Written opcode by opcode (see pickletools)."""
    data, labels = batch["data"], batch["labels"]
    ints = b"".join(b"K" + bytes([label]) for label in labels)
    parts = [
        b"\x80\x02}(",  # protocol 2, a dict, a mark
        _text(b"data"),
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _text(b"b"),
        b"\x87R(K\x01J" + struct.pack("<i", data.shape[0]) + b"M" + struct.pack("<H", 3072),
        b"\x86cnumpy\ndtype\n" + _text(b"u1") + b"K\x00K\x01\x87R(K\x03" + _text(b"|"),
        b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89",  # dtype state, not Fortran
        b"T" + struct.pack("<I", data.nbytes) + data.tobytes() + b"tb",  # the pixels as a str
        _text(b"labels") + b"](" + ints + b"e",
        _text(b"batch_label") + _text(batch["batch_label"].encode()),
        b"u.",
    ]
    return b"".join(parts)


def test_the_python2_pickle_is_what_plain_pickle_reads():
    """The fixture's premise: plain pickle, as torchvision calls it, reads it to the batch."""
    batch = cifar_batch(3, seed=0)
    read = pickle.loads(py2_pickle(batch), encoding="latin1")
    assert np.array_equal(read["data"], batch["data"]) and read["data"].dtype == np.uint8
    assert read["labels"] == batch["labels"] and read["batch_label"] == batch["batch_label"]


def cifar_files() -> dict[str, bytes]:
    """The six batch files by name, pickled as the published ones (see `py2_pickle`)."""
    files = {}
    for i, batch in enumerate(datasets.CIFAR10.batches):
        n = CIFAR_TEST if batch.split == "test" else CIFAR_PER_BATCH
        files[batch.name] = py2_pickle(cifar_batch(n, seed=i))
    files["batches.meta"] = pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}, protocol=2)
    return files


def write_cifar_folder(folder: Path, files: dict[str, bytes] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (files or cifar_files()).items():
        (folder / name).write_bytes(data)
    return folder


def cifar_archive(
    files: dict[str, bytes] | None = None,
    prefix: str = "cifar-10-batches-py/",
    extra: dict[str, bytes] | None = None,
) -> bytes:
    """The batches as the published archive holds them (`extra`: more members, full names)."""
    members = {prefix + name: data for name, data in (files or cifar_files()).items()}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (members | (extra or {})).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def expected_cifar() -> tuple[np.ndarray, np.ndarray]:
    batches = [cifar_batch(CIFAR_PER_BATCH, seed=i) for i in range(5)]
    return np.concatenate([b["data"] for b in batches]), np.concatenate(
        [b["labels"] for b in batches]
    )


@pytest.mark.parametrize("layout", ["torchvision", "flat", "archive"])
def test_cifar_loads_from_each_layout(tmp_path, layout):
    data_dir = tmp_path / "data"
    if layout == "torchvision":
        write_cifar_folder(data_dir / "cifar-10-batches-py")
    elif layout == "flat":
        write_cifar_folder(data_dir)
    else:
        data_dir.mkdir()
        (data_dir / "cifar-10-python.tar.gz").write_bytes(cifar_archive())
    before = snapshot(tmp_path)
    raw = load_dataset("cifar10", data_dir, download=False)
    assert snapshot(tmp_path) == before  # an archive is read, not unpacked
    images, labels = expected_cifar()
    assert raw.train_images.shape == (5 * CIFAR_PER_BATCH, 3, 32, 32)
    assert np.array_equal(raw.train_images.reshape(len(images), -1).numpy(), images)
    assert raw.train_labels.tolist() == labels.tolist() and raw.train_labels.dtype == torch.int64
    assert len(raw.test_labels) == CIFAR_TEST
    files = cifar_files()
    assert raw.md5 == {
        b.name: hashlib.md5(files[b.name]).hexdigest() for b in datasets.CIFAR10.batches
    }


@pytest.mark.parametrize("protocol", [2, 4])
def test_batches_pickled_by_python3_load_alike(tmp_path, protocol):
    published = load_dataset("cifar10", write_cifar_folder(tmp_path / "a"), download=False)
    files = cifar_files()
    for i, batch in enumerate(datasets.CIFAR10.batches):
        n = CIFAR_TEST if batch.split == "test" else CIFAR_PER_BATCH
        files[batch.name] = pickle.dumps(cifar_batch(n, seed=i), protocol=protocol)
    again = load_dataset("cifar10", write_cifar_folder(tmp_path / "b", files), download=False)
    assert torch.equal(again.train_images, published.train_images)
    assert torch.equal(again.test_labels, published.test_labels)


def test_cifar_is_normalised_per_channel_by_its_training_images(tmp_path):
    write_cifar_folder(tmp_path / "cifar-10-batches-py")
    raw = load_dataset("cifar10", tmp_path, download=False)
    images, _ = expected_cifar()
    channels = images.reshape(len(images), 3, 1024) / 255.0
    means, stds = channels.mean(axis=(0, 2)), channels.std(axis=(0, 2))
    assert raw.mean == pytest.approx(tuple(means), abs=1e-12)
    assert raw.std == pytest.approx(tuple(stds), abs=1e-12)
    assert len(set(np.round(means, 3))) == 3  # the fixture's channels differ
    data = prepare(raw, None, 0, torch.device("cpu"))
    assert data.train_x.shape == (len(images), 3072) and data.inputs == 3072
    expected = (channels - means[None, :, None]) / stds[None, :, None]
    np.testing.assert_allclose(data.train_x.numpy(), expected.reshape(len(images), -1), atol=1e-5)
    assert data.record()["normalisation"]["mean"] == list(raw.mean)


def test_cifar_missing_batch_is_named(tmp_path):
    files = cifar_files()
    del files["data_batch_3"]
    write_cifar_folder(tmp_path / "cifar-10-batches-py", files)
    with pytest.raises(DataError, match=r"CIFAR-10 in .* cannot be used: data_batch_3 missing"):
        load_dataset("cifar10", tmp_path, download=False)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\x80\x02}q\x00(X\x04\x00", "unreadable pickle"),  # cut short
        (pickle.dumps([1, 2, 3], protocol=2), "no data and labels"),
        (pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}), "100 values"),
        (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}), "2 images but 1"),
        (pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [12]}), "outside 0-9"),
        (pickle.dumps({"data": np.zeros((1, 3072), np.float32), "labels": [1]}), "no uint8"),
    ],
    ids=["truncated", "not-a-dict", "wrong-width", "count-mismatch", "labels", "dtype"],
)
def test_a_broken_batch_is_named(tmp_path, content, says):
    files = cifar_files()
    files["data_batch_2"] = content
    write_cifar_folder(tmp_path / "cifar-10-batches-py", files)
    with pytest.raises(DataError) as caught:
        load_dataset("cifar10", tmp_path, download=False)
    message = str(caught.value)
    assert "data_batch_2" in message and says in message and "\n" not in message


class _Planted:
    def __reduce__(self):
        return (Path.touch, (Path(_Planted.target),))


def test_a_planted_pickle_runs_nothing(tmp_path):
    """A batch that would create a file when unpickled by pickle.load is refused unread."""
    _Planted.target = str(tmp_path / "planted")
    evil = pickle.dumps({"data": _Planted(), "labels": [1]}, protocol=2)
    pickle.loads(evil)  # the plain unpickler would run it: the test's premise
    assert (tmp_path / "planted").exists()
    (tmp_path / "planted").unlink()
    files = cifar_files()
    files["test_batch"] = evil
    write_cifar_folder(tmp_path / "cifar-10-batches-py", files)
    with pytest.raises(
        DataError, match=r"test_batch is not a CIFAR-10 batch \(unreadable pickle: it asks for "
    ):
        load_dataset("cifar10", tmp_path, download=False)
    assert not (tmp_path / "planted").exists()


def test_an_archive_without_the_batches_is_named(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(cifar_archive(prefix="other/"))
    with pytest.raises(DataError, match="holds no cifar-10-batches-py/data_batch_1: it is not"):
        load_dataset("cifar10", tmp_path, download=False)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(cifar_archive()[:300])
    with pytest.raises(DataError, match=r"is not a readable tar\.gz archive"):
        load_dataset("cifar10", tmp_path, download=False)


def test_no_cifar_without_download_says_where_to_put_it(tmp_path):
    with pytest.raises(
        DataError,
        match=r"^CIFAR-10 is not in .*cifar-10-batches-py .* or the archive cifar-10-python.tar.gz",
    ):
        load_dataset("cifar10", tmp_path / "absent", download=False)
    assert not (tmp_path / "absent").exists()


@pytest.fixture
def cifar_server(monkeypatch: pytest.MonkeyPatch):
    local = Server()
    monkeypatch.setenv("no_proxy", "*")
    # members beside the batch folder, or climbing out of it, are never written anywhere
    outside = {"../escaped": b"x", "notes.txt": b"x", "cifar-10-batches-py/../../escaped": b"x"}
    archive = cifar_archive(extra=outside)
    url = f"http://127.0.0.1:{local.port}/kriz/cifar-10-python.tar.gz"
    table = dataclasses.replace(
        datasets.CIFAR10, url=url, archive_md5=hashlib.md5(archive).hexdigest()
    )
    monkeypatch.setattr(datasets, "CIFAR10", table)
    local.archive = archive
    yield local
    local.close()


def test_cifar_downloads_checks_and_unpacks_into_torchvisions_folder(cifar_server, tmp_path):
    cifar_server.routes["/kriz/cifar-10-python.tar.gz"] = (
        200,
        "application/gzip",
        cifar_server.archive,
    )
    raw = load_dataset("cifar10", tmp_path / "data", download=True)
    everything = sorted(p.name for p in tmp_path.rglob("*"))
    assert everything == sorted(["data", "cifar-10-batches-py", *cifar_files()])
    unpacked = tmp_path / "data" / "cifar-10-batches-py"
    assert {p.name: p.read_bytes() for p in unpacked.iterdir()} == cifar_files()
    images, _ = expected_cifar()
    assert np.array_equal(raw.train_images.reshape(len(images), -1).numpy(), images)
    cifar_server.requests.clear()
    load_dataset("cifar10", tmp_path / "data", download=True)
    assert cifar_server.requests == []  # the second time nothing is asked for


@pytest.mark.parametrize("served", ["html", "other-file", "missing"])
def test_a_failed_cifar_download_leaves_nothing(cifar_server, tmp_path, served):
    bodies = {
        "html": (200, "text/html", b"<html><body>Sign in</body></html>"),
        "other-file": (200, "application/gzip", cifar_archive(prefix="x/")),
        "missing": (404, "text/plain", b"not found"),
    }
    cifar_server.routes["/kriz/cifar-10-python.tar.gz"] = bodies[served]
    before = snapshot(tmp_path)
    for _ in range(2):
        with pytest.raises(DataError) as caught:
            load_dataset("cifar10", tmp_path / "data", download=True)
        assert snapshot(tmp_path) == before
    message = str(caught.value)
    assert message.startswith("CIFAR-10 is not in") and "nothing was written there" in message
    cause = {"html": "an HTML page instead of CIFAR-10", "other-file": "a file that is not CIFAR-10's",
             "missing": "HTTP 404"}[served]  # fmt: skip
    assert cause in message and "\n" not in message


def test_a_download_that_unpacks_to_nothing_leaves_nothing(cifar_server, tmp_path, monkeypatch):
    cifar_server.routes["/kriz/cifar-10-python.tar.gz"] = (
        200,
        "application/gzip",
        cifar_server.archive,
    )

    def broken(archive, into):
        into.mkdir()
        (into / "data_batch_1").write_bytes(b"partial")
        raise DataError("the downloaded archive cannot be unpacked (test)")

    monkeypatch.setattr(cifar, "_unpack", broken)
    with pytest.raises(DataError, match="cannot be unpacked"):
        load_dataset("cifar10", tmp_path / "data", download=True)
    assert not (tmp_path / "data").exists()


# ---- MNIST-1D ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    """MNIST-1D as the mnist1d package makes it itself, with its published default arguments."""
    from mnist1d.data import get_dataset_args, make_dataset

    made = make_dataset(get_dataset_args())
    return {k: made[k] for k in ("x", "y", "x_test", "y_test")}


def test_mnist1d_is_the_packages_own_and_the_same_every_time(reference):
    random.seed(123)
    np.random.seed(321)
    expected_draws = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(321)
    arrays = mnist1d_data.make_arrays()
    assert (random.random(), np.random.rand()) == expected_draws  # global generators put back
    assert arrays.keys() == reference.keys()
    for key, value in reference.items():
        assert np.array_equal(arrays[key], value), key  # a second generation, bit for bit
    assert arrays["x"].shape == (4000, 40) and arrays["x_test"].shape == (1000, 40)
    assert sorted(np.unique(arrays["y"]).tolist()) == list(range(10))


def test_mnist1d_loads_as_generated_into_tensors(reference, tmp_path):
    raw = load_dataset("mnist1d", tmp_path / "nowhere", download=True)
    assert not (tmp_path / "nowhere").exists()  # nothing read, downloaded or written
    assert np.array_equal(raw.train_images.numpy(), reference["x"])
    assert np.array_equal(raw.test_labels.numpy(), reference["y_test"])
    assert raw.md5["x"] == hashlib.md5(reference["x"].tobytes()).hexdigest()
    data = prepare(raw, None, 0, torch.device("cpu"))
    assert (data.inputs, data.classes, len(data.train_x), len(data.test_x)) == (40, 10, 4000, 1000)
    assert torch.equal(data.train_x, torch.from_numpy(reference["x"]).float())  # no more scaling
    assert data.record()["normalisation"] == {"mean": None, "std": None, "by": raw.normalised_by}
    assert load_dataset("mnist1d", tmp_path) is not raw  # a new record, but ...
    assert load_dataset("mnist1d", tmp_path).train_images is raw.train_images  # ... one copy


# ---- --subset and --val for every data set ----------------------------------------------------


@pytest.fixture
def every_set(tmp_path) -> Path:
    for seed, key in enumerate(("mnist", "fashion-mnist", "kmnist")):
        write_idx(tmp_path / datasets.spec(key).folder / "raw", seed=20 + seed)
    write_cifar_folder(tmp_path / "cifar-10-batches-py")
    return tmp_path


@pytest.mark.parametrize("key", datasets.NAMES)
def test_subset_and_val_work_for_every_data_set(every_set, key):
    raw = load_dataset(key, every_set, download=False)
    n = len(raw.train_labels)
    data = prepare(raw, n // 2, 0, torch.device("cpu"), val=n // 8, batch_size=4)
    assert len(data.train_x) + len(data.val_x) == n // 2 and len(data.val_x) == n // 8
    assert data.val_split is not None and data.train_x.shape[1] == data.val_x.shape[1]
    with pytest.raises(UsageError) as caught:
        prepare(raw, n + 1, 0, torch.device("cpu"))
    assert str(caught.value) == (
        f"subset {n + 1} is larger than the {n} training samples of {datasets.title(key)}; "
        f"use --subset {n} or less"
    )


# ---- settings and the command line ------------------------------------------------------------


def test_the_setting_takes_known_names_in_any_case():
    assert RunConfig().dataset == "mnist"
    assert make_config({"dataset": "MNIST1D"}).dataset == "mnist1d"
    with pytest.raises(
        UsageError,
        match="dataset must be one of mnist, fashion-mnist, kmnist, cifar10, mnist1d, got 'svhn'",
    ):
        make_config({"dataset": "svhn"})


def test_an_unknown_name_is_one_line_and_exit_code_2(tmp_path):
    result = runner.invoke(app, ["run", "--dataset", "svhn", "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("Error: --dataset must be one of")
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_a_subset_larger_than_mnist1d_writes_nothing(tmp_path):
    result = runner.invoke(
        app,
        ["run", "--dataset", "mnist1d", "--subset", "5000", "--results-dir", str(tmp_path / "r")],
    )
    assert result.exit_code == 2, result.output
    assert "--subset 5000 is larger than the 4000 training samples of MNIST-1D" in result.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("key", "inputs", "workers"),
    [("cifar10", 3072, "2"), ("fashion-mnist", 784, "1"), ("mnist1d", 40, "2")],
)
def test_a_run_on_each_data_set_records_it(every_set, tmp_path, key, inputs, workers):
    args = ["run", "--dataset", key, "--data-dir", str(every_set), "--no-download", "--epochs", "1",
            "-a", "relu,tanh", "--batch-size", "8", "--workers", workers,
            "--results-dir", str(tmp_path / "r")]  # fmt: skip
    if key == "mnist1d":
        args += ["--subset", "400"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "r").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    data = manifest["data"]
    assert (data["dataset"], data["inputs"], data["classes"]) == (key, inputs, 10)
    assert manifest["config"]["dataset"] == key
    assert set(data["normalisation"]) == {"mean", "std", "by"}
    resumed = runner.invoke(app, ["run", "--resume", str(run_dir), "--dataset", "kmnist"])
    assert resumed.exit_code == 2
    assert f"--dataset kmnist (the run used {key})" in resumed.stderr


def test_missing_fashion_mnist_names_torchvisions_folder_for_its_files(tmp_path):
    """Its files have MNIST's names: the fix says where they go so they are not MNIST's."""
    from actbench.data import load_dataset
    from actbench.locate import DataError

    with pytest.raises(DataError) as caught:
        load_dataset("fashion-mnist", tmp_path, download=False)
    assert f"in {tmp_path / 'FashionMNIST' / 'raw'} or point --data-dir" in str(caught.value)
