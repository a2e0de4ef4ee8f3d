"""The data sets actbench trains on, by name, and the tables of the files they consist of.

`NAMES` lists every data set `--dataset` accepts. MNIST, Fashion-MNIST and KMNIST are four
IDX files each, recognised by content (type code and dimensions), not by name; names only
decide which split (train or test) a file belongs to where its content cannot. The three share
every shape, so which of them a set of files is comes from the md5 of its label files (the
published ones' are listed below) and from the folder it lies in (see `actbench.locate`).
Mirrors and md5 sums of the published, gzipped files are torchvision's
(`torchvision.datasets.MNIST`, `FashionMNIST`, `KMNIST`: `.mirrors` and `.resources`;
`CIFAR10.url` and `.tgz_md5`); a test keeps them in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UBYTE = 0x08  # the IDX type code of unsigned bytes


@dataclass(frozen=True)
class FileSpec:
    """One file of a data set.

    `item_shape` is the shape of one sample (the IDX dimensions after the first): (28, 28)
    for MNIST images, () for labels. `count` is the number of samples in the published file;
    `md5` is the md5 of the published, gzipped file as the mirrors serve it.
    """

    role: str  # "train_images": the key the loader uses
    split: str  # "train" or "test"
    kind: str  # "images" or "labels"
    name: str  # the canonical file name, without ".gz"
    item_shape: tuple[int, ...]
    count: int
    md5: str
    idx_type: int = UBYTE
    # md5 of the published file's uncompressed content, where known (label files: they tell
    # the data sets of the same shapes apart)
    content_md5: str | None = None

    @property
    def download_name(self) -> str:
        """The name the mirrors publish the file under (gzipped)."""
        return self.name + ".gz"

    @property
    def label(self) -> str:
        """The file's role in words, e.g. 'train images'."""
        return f"{self.split} {self.kind}"


@dataclass(frozen=True)
class DataSet:
    """A data set: its files, where torchvision keeps them, and where to download them.

    `key` is its `--dataset` name, `name` the one messages use; `folder` is torchvision's
    folder for it under a data folder (files in `folder/raw`); `split_words` are the words
    that, in a file's name, say which split it belongs to.
    """

    key: str
    name: str
    folder: str
    mirrors: tuple[str, ...]
    files: tuple[FileSpec, ...]
    classes: int = 10
    split_words: tuple[tuple[str, tuple[str, ...]], ...] = field(
        default=(("train", ("train",)), ("test", ("t10k", "test")))
    )

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of file, in table order (each split has one file of each kind)."""
        return tuple(dict.fromkeys(f.kind for f in self.files))

    def file(self, role: str) -> FileSpec:
        """The file with this role (KeyError when there is none)."""
        for spec in self.files:
            if spec.role == role:
                return spec
        raise KeyError(role)


MNIST = DataSet(
    key="mnist",
    name="MNIST",
    folder="MNIST",
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    files=(
        FileSpec(
            "train_images", "train", "images", "train-images-idx3-ubyte", (28, 28), 60000,
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        ),
        FileSpec(
            "train_labels", "train", "labels", "train-labels-idx1-ubyte", (), 60000,
            "d53e105ee54ea40749a09fcbcd1e9432", content_md5="a25bea736e30d166cdddb491f175f624",
        ),
        FileSpec(
            "test_images", "test", "images", "t10k-images-idx3-ubyte", (28, 28), 10000,
            "9fb629c4189551a2d022fa330f9573f3",
        ),
        FileSpec(
            "test_labels", "test", "labels", "t10k-labels-idx1-ubyte", (), 10000,
            "ec29112dd5afa0611ce80d1b7f02629c", content_md5="27ae3e4e09519cfbb04c329615203637",
        ),
    ),
)  # fmt: skip

FASHION_MNIST = DataSet(
    key="fashion-mnist",
    name="Fashion-MNIST",
    folder="FashionMNIST",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    files=(
        FileSpec(
            "train_images", "train", "images", "train-images-idx3-ubyte", (28, 28), 60000,
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        ),
        FileSpec(
            "train_labels", "train", "labels", "train-labels-idx1-ubyte", (), 60000,
            "25c81989df183df01b3e8a0aad5dffbe", content_md5="9018921c3c673c538a1fc5bad174d6f9",
        ),
        FileSpec(
            "test_images", "test", "images", "t10k-images-idx3-ubyte", (28, 28), 10000,
            "bef4ecab320f06d8554ea6380940ec79",
        ),
        FileSpec(
            "test_labels", "test", "labels", "t10k-labels-idx1-ubyte", (), 10000,
            "bb300cfdad3c16e7a12a480ee83cd310", content_md5="15d484375f8d13e6eb1aabb0c3f46965",
        ),
    ),
)  # fmt: skip

KMNIST = DataSet(
    key="kmnist",
    name="KMNIST",
    folder="KMNIST",
    mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    files=(
        FileSpec(
            "train_images", "train", "images", "train-images-idx3-ubyte", (28, 28), 60000,
            "bdb82020997e1d708af4cf47b453dcf7",
        ),
        FileSpec(
            "train_labels", "train", "labels", "train-labels-idx1-ubyte", (), 60000,
            "e144d726b3acfaa3e44228e80efcd344", content_md5="949e75301f8813e0dc5800dcc320fc52",
        ),
        FileSpec(
            "test_images", "test", "images", "t10k-images-idx3-ubyte", (28, 28), 10000,
            "5c965bf0a639b31b8f53240b1b52f4d7",
        ),
        FileSpec(
            "test_labels", "test", "labels", "t10k-labels-idx1-ubyte", (), 10000,
            "7320c461ea6c1c855c0b718fb2a4b134", content_md5="9f55f451c0988b028eccdf7d5cc265ab",
        ),
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Batch:
    """One pickled batch file of CIFAR-10: its name in the folder, split and published md5."""

    name: str
    split: str  # "train" or "test"
    md5: str  # md5 of the file (as unpacked from the archive)


@dataclass(frozen=True)
class ArchiveSet:
    """A data set published as one archive of pickled batches (CIFAR-10, torchvision's layout).

    `folder` is the folder the archive unpacks to (torchvision keeps it in the data folder,
    archive beside it); images are `channels` x `image` pixels, stored channel after channel.
    """

    key: str
    name: str
    folder: str
    url: str
    archive: str
    archive_md5: str
    batches: tuple[Batch, ...]
    channels: int
    image: tuple[int, int]
    classes: int = 10

    @property
    def inputs(self) -> int:
        """Inputs per sample once flattened (3,072 for CIFAR-10)."""
        return self.channels * self.image[0] * self.image[1]


CIFAR10 = ArchiveSet(
    key="cifar10",
    name="CIFAR-10",
    folder="cifar-10-batches-py",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    archive="cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a",
    batches=(
        Batch("data_batch_1", "train", "c99cafc152244af753f735de768cd75f"),
        Batch("data_batch_2", "train", "d4bba439e000b95fd0a9bffe97cbabec"),
        Batch("data_batch_3", "train", "54ebc095f3ab1f0389bbae665268c751"),
        Batch("data_batch_4", "train", "634d18415352ddfa80567beed471001a"),
        Batch("data_batch_5", "train", "482c414d41f54cd18b22e5b47cb7c3cb"),
        Batch("test_batch", "test", "40351d587109b95175f43aff81a1287e"),
    ),
    channels=3,
    image=(32, 32),
)


@dataclass(frozen=True)
class GeneratedSet:
    """A data set made by a generator on this machine: nothing to find or download."""

    key: str
    name: str
    inputs: int
    classes: int
    train: int  # training samples
    test: int  # test samples


# MNIST-1D (Greydanus 2020), made by the `mnist1d` package with its default arguments.
MNIST1D = GeneratedSet(key="mnist1d", name="MNIST-1D", inputs=40, classes=10, train=4000, test=1000)

# The names `--dataset` accepts, each with the table above that describes it.
_TABLES = {
    "mnist": "MNIST",
    "fashion-mnist": "FASHION_MNIST",
    "kmnist": "KMNIST",
    "cifar10": "CIFAR10",
    "mnist1d": "MNIST1D",
}
NAMES = tuple(_TABLES)


def spec(key: str) -> DataSet | ArchiveSet | GeneratedSet:
    """The table of the data set named `key` (one of NAMES); KeyError for any other name.

    Looked up when asked, so a table replaced in this module (a test's mirror) is the one used.
    """
    return globals()[_TABLES[key]]


def idx_sets() -> tuple[DataSet, ...]:
    """The IDX data sets (MNIST, Fashion-MNIST, KMNIST): one shape of file for all three."""
    return tuple(s for s in map(spec, NAMES) if isinstance(s, DataSet))


def title(key: str) -> str:
    """The data set's name as messages write it ('Fashion-MNIST' for 'fashion-mnist')."""
    return spec(key).name if key in _TABLES else key
