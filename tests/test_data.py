"""Data sets: the embedded ones, and CIFAR-10 and ImageNet read from a directory, safely."""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import write_fake_cifar10
from randsmooth.data import cifar10, get_dataset, imagenet, mnist, stratified_split


def test_embedded_mnist_split_is_fixed_and_stratified():
    train_set, test_set = mnist("train"), mnist("test")
    assert (len(train_set), len(test_set)) == (4000, 1000)
    ytr, yte = train_set.tensors[1].numpy(), test_set.tensors[1].numpy()
    assert np.bincount(yte).tolist() == [100] * 10 and np.bincount(ytr).tolist() == [400] * 10
    x = test_set.tensors[0]
    assert x.shape == (1000, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(mnist("test").tensors[0], x)                      # the same split every time
    tr, te = stratified_split(np.repeat(np.arange(10), 500), 100)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 5000


def test_digits():
    d = get_dataset("digits", "test")
    assert len(d) == 300 and d[0][0].shape == (1, 8, 8)


def test_cifar10_from_a_directory(tmp_path):
    "The real files are Python 2 pickles whose keys torchvision's latin-1 load reads as str; the fake matches that."
    write_fake_cifar10(tmp_path)
    train_set, test_set = cifar10(tmp_path, "train"), get_dataset("cifar10", "test", tmp_path)
    assert len(train_set) == 15 and len(test_set) == 3
    x, y = test_set[0]
    assert x.shape == (3, 32, 32) and 0 <= x.min() and x.max() <= 1 and 0 <= y < 10
    raw = test_set.data[0].astype(np.float32).transpose(2, 0, 1) / 255          # test split: no augmentation
    assert np.allclose(x.numpy(), raw)
    assert train_set.classes[0] == "airplane"


def test_cifar10_missing_says_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks data_batch_1"):
        get_dataset("cifar10", "train", tmp_path)


def test_imagenet_from_a_directory(tmp_path):
    for split in ("train", "val"):
        for wnid in ("n01440764", "n01443537"):
            d = tmp_path / split / wnid
            d.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((300, 260, 3), 40 * i, np.uint8)).save(d / f"img{i}.JPEG", format="JPEG")
    test_set = imagenet(tmp_path, "test", classes=2)
    assert len(test_set) == 4 and test_set[0][0].shape == (3, 224, 224) and test_set.classes == ["n01440764", "n01443537"]
    assert imagenet(tmp_path, "train", classes=2)[0][0].shape == (3, 224, 224)
    with pytest.raises(ValueError, match="holds 2 class folders, not 1000"):      # the released models' 1,000
        get_dataset("imagenet", "train", tmp_path)
    with pytest.raises(FileNotFoundError, match="one folder of images per class"):
        imagenet(tmp_path / "elsewhere")


class Payload:
    "Unpickling this runs a shell command that creates a file."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (os.system, (f"touch {self.marker}",))


def test_a_crafted_cifar_batch_cannot_run_code(tmp_path):
    write_fake_cifar10(tmp_path)
    batch, marker = tmp_path / "cifar-10-batches-py" / "test_batch", tmp_path / "ran.txt"
    batch.write_bytes(pickle.dumps({"data": Payload(marker), "labels": [0]}))
    with pytest.raises(ValueError, match=r"test_batch is not a CIFAR-10 batch .*system, which a CIFAR-10 batch never"):
        cifar10(tmp_path, "test")
    assert not marker.exists()
    pickle.loads(batch.read_bytes())                        # the file really runs code under a plain unpickler
    assert marker.exists()


def test_a_cifar_batch_of_the_wrong_shape_is_refused(tmp_path):
    write_fake_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(
        pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"expected 'data' \[N, 3072\] uint8"):
        cifar10(tmp_path, "test")
