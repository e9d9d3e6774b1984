"""Data sources: the bundled MNIST split, digits, arrays and image folders, and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import edgekd as ek
from edgekd.errors import DataError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_bundled_mnist_has_the_canonical_split_and_class_counts():
    x_train, y_train, x_test, y_test = ek.data.load_mnist_arrays()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == MNIST_TEST_COUNTS


@pytest.mark.slow
def test_mnist_bundle_is_normalized_split_and_deterministic():
    a = ek.data.mnist(batch_size=64)
    assert (a.train.dataset_size, a.val.dataset_size, a.test.dataset_size) == (55000, 5000, 10000)
    assert a.input_shape == (1, 28, 28) and a.num_classes == 10
    assert a.mean[0] == pytest.approx(0.1307, abs=1e-3) and a.std[0] == pytest.approx(0.3081, abs=1e-3)
    assert abs(float(a.train.x.mean())) < 0.01
    b = ek.data.mnist(batch_size=64)
    assert torch.equal(a.val.y, b.val.y)
    first_a, first_b = next(iter(a.train)), next(iter(b.train))
    assert torch.equal(first_a[2], first_b[2]) and len(first_a[0]) == 64


def test_loader_reshuffles_each_epoch_and_covers_every_sample(tiny_images):
    loader = tiny_images.train
    epoch1 = torch.cat([i for _, _, i in loader])
    epoch2 = torch.cat([i for _, _, i in loader])
    assert sorted(epoch1.tolist()) == list(range(loader.dataset_size))
    assert not torch.equal(epoch1, epoch2)


def test_random_shift_moves_pixels_and_disables_teacher_caching():
    bundle = ek.data.mnist(shift_pixels=2, limit_train=240, limit_test=50)
    assert not bundle.train.deterministic and bundle.test.deterministic
    shift = ek.data.random_shift(2)
    x = torch.zeros(50, 1, 8, 8)
    x[:, :, 4, 4] = 1.0
    moved = shift(x, torch.Generator().manual_seed(0))
    assert torch.equal(moved.sum((1, 2, 3)), x.sum((1, 2, 3)))
    assert (moved[:, 0, 4, 4] == 0).any()


def test_random_shift_fills_the_border_with_the_background_not_zero():
    background = torch.full((64, 3, 10, 12), -0.42)  # normalized black is not 0
    background[:, :, 5, 6] = 2.0
    moved = ek.data.random_shift(2)(background, torch.Generator().manual_seed(1))
    assert moved.shape == background.shape
    assert torch.allclose(moved.unique(), torch.tensor([-0.42, 2.0]))
    assert torch.equal(moved[:, 0], moved[:, 2])  # every channel moves together
    assert len({tuple(torch.nonzero(m[0] > 1).flatten().tolist()) for m in moved}) > 5


def test_digits_bundle():
    bundle = ek.data.digits()
    assert bundle.input_shape == (1, 8, 8) and bundle.num_classes == 10
    assert bundle.train.dataset_size + bundle.val.dataset_size + bundle.test.dataset_size == 1797


def test_from_arrays_accepts_flat_features_and_checks_shapes():
    x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    y = np.arange(50) % 3
    bundle = ek.data.from_arrays(x, y, x[:10], y[:10], labels=["a", "b", "c"])
    assert bundle.input_shape == (6,) and bundle.labels == ["a", "b", "c"]
    with pytest.raises(DataError, match="differ in shape"):
        ek.data.from_arrays(x, y, x[:10, :4], y[:10])
    with pytest.raises(DataError, match="2 label names given for 3 classes"):
        ek.data.from_arrays(x, y, x[:10], y[:10], labels=["a", "b"])


def _write_images(root, classes, size=(10, 10), n=4):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full(size, 40 * i, dtype=np.uint8)).save(root / c / f"{i}.png")


def test_image_folder_loads_one_subfolder_per_class(tmp_path):
    _write_images(tmp_path, ["cat", "dog"], n=5)
    bundle = ek.data.image_folder(tmp_path, grayscale=True, test_fraction=0.2)
    assert bundle.labels == ["cat", "dog"] and bundle.input_shape == (1, 10, 10)
    assert bundle.test.dataset_size == 2
    assert bundle.train.dataset_size + bundle.val.dataset_size == 8


def test_image_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ek.data.image_folder(tmp_path / "missing")
    with pytest.raises(DataError, match="no class subfolders"):
        ek.data.image_folder(tmp_path)
    _write_images(tmp_path / "mixed", ["a"], size=(10, 10))
    Image.fromarray(np.zeros((12, 12), dtype=np.uint8)).save(tmp_path / "mixed" / "a" / "big.png")
    with pytest.raises(DataError, match="images differ in size.*pass image_size"):
        ek.data.image_folder(tmp_path / "mixed", grayscale=True)
    resized = ek.data.image_folder(tmp_path / "mixed", grayscale=True, image_size=(8, 8))
    assert resized.input_shape == (1, 8, 8)
    (tmp_path / "split" / "train").mkdir(parents=True)
    _write_images(tmp_path / "split" / "train", ["a", "b"])
    _write_images(tmp_path / "split" / "test", ["a", "c"])
    with pytest.raises(DataError, match="differ from a, b"):
        ek.data.image_folder(tmp_path / "split")


def _write_idx(path, array: np.ndarray, gz: bool = True) -> None:
    import gzip
    import struct

    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def _fashion_folder(folder, train: int = 120, test: int = 40, gz: bool = True):
    rng = np.random.default_rng(0)
    folder.mkdir(exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", train), ("t10k", test)):
        _write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), gz)
        _write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, gz)
    return folder


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_idx_files_from_a_folder_with_class_names(tmp_path, gz):
    bundle = ek.data.fashion_mnist(path=_fashion_folder(tmp_path / "fm", gz=gz), batch_size=16, val_size=5000)
    assert bundle.name == "fashion-mnist" and bundle.input_shape == (1, 28, 28) and bundle.num_classes == 10
    assert bundle.labels[0] == "T-shirt/top" and bundle.labels[9] == "Ankle boot"
    assert (bundle.train.dataset_size + bundle.val.dataset_size, bundle.test.dataset_size) == (120, 40)
    assert bundle.test.y.tolist() == (np.arange(40) % 10).tolist()  # labels in file order


def test_fashion_mnist_says_how_to_get_missing_files_and_names_a_damaged_one(tmp_path):
    with pytest.raises(DataError, match=r"apt-get install dataset-fashion-mnist\) or give path="):
        ek.data.fashion_mnist(path=tmp_path / "nowhere")
    folder = _fashion_folder(tmp_path / "fm")
    images = folder / "t10k-images-idx3-ubyte.gz"
    import gzip

    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-100]))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz' is damaged: shape \[40, 28, 28\] needs 31360"):
        ek.data.fashion_mnist(path=folder)
    images.write_bytes(b"not a gzip file")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz' cannot be read as an IDX file"):
        ek.data.fashion_mnist(path=folder)
    images.write_bytes(gzip.compress(b"\x01\x02\x03\x04 and more"))
    with pytest.raises(DataError, match="is not an IDX file"):
        ek.data.fashion_mnist(path=folder)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((39, 28, 28)))
    with pytest.raises(DataError, match=r"t10k images shaped \[39, 28, 28\] do not match labels shaped \[40\]"):
        ek.data.fashion_mnist(path=folder)


def test_recipes_name_fashion_mnist_as_a_source(tmp_path):
    from edgekd.recipe import schema as recipe

    folder = _fashion_folder(tmp_path / "fm")
    parsed = recipe.parse(
        {"data": {"source": "fashion-mnist", "path": str(folder), "batch_size": 8}, "teacher": "mnist-resnet",
         "student": "mnist-mobilenet", "stages": ["train"]}
    )  # fmt: skip
    bundle = recipe.build_data(parsed)
    assert bundle.name == "fashion-mnist" and bundle.test.dataset_size == 40


def test_the_installed_fashion_mnist_has_the_canonical_split():
    import os

    if not ek.data.FASHION_MNIST_DIR.is_dir() and not os.environ.get("CI"):
        pytest.skip("Debian's dataset-fashion-mnist is not installed here (.ci/run installs it)")
    x_train, y_train, x_test, y_test = ek.data.load_idx_split(ek.data.FASHION_MNIST_DIR, "")
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10 and np.bincount(y_test).tolist() == [1000] * 10
