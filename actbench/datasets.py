"""The data sets actbench reads, as tables of the files each consists of.

A file is recognised by its content (its IDX header: type code and dimensions), not by its
name; names only decide which split (train or test) a file belongs to when its content cannot.
Mirrors and md5 sums of the published files are torchvision's
(`torchvision.datasets.MNIST.mirrors` and `.resources`); a test keeps them in step.
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

    `folder` is torchvision's folder for it under a data folder (files in `folder/raw`);
    `split_words` are the words that, in a file's name, say which split it belongs to.
    """

    name: str
    folder: str
    mirrors: tuple[str, ...]
    files: tuple[FileSpec, ...]
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
            "d53e105ee54ea40749a09fcbcd1e9432",
        ),
        FileSpec(
            "test_images", "test", "images", "t10k-images-idx3-ubyte", (28, 28), 10000,
            "9fb629c4189551a2d022fa330f9573f3",
        ),
        FileSpec(
            "test_labels", "test", "labels", "t10k-labels-idx1-ubyte", (), 10000,
            "ec29112dd5afa0611ce80d1b7f02629c",
        ),
    ),
)  # fmt: skip
