"""Data: datasets as in-memory tensors with fast, deterministic loaders (:class:`DataBundle`).

Sources: ``mnist()``, ``fashion_mnist()``, ``digits()``, ``from_arrays()``, ``image_folder()``,
``from_npz()``, texts (``text()``, ``text_file()``, ``corpus()``) tokenized once and cached. A recipe
names them through the ``data`` catalog (:mod:`edgekd.catalog`).
"""

from __future__ import annotations

from edgekd.data.sources import (
    FASHION_MNIST_DIR,
    FASHION_MNIST_LABELS,
    IMAGE_SUFFIXES,
    ArrayLoader,
    DataBundle,
    dataset_size,
    digits,
    example_inputs,
    fashion_mnist,
    first_samples,
    from_arrays,
    from_loaders,
    from_named_arrays,
    from_npz,
    image_folder,
    load_idx_split,
    load_mnist_arrays,
    mnist,
    random_shift,
    source,
    source_names,
)
from edgekd.utils.lazy import lazy_attributes

_NAMES = {name: ("edgekd.data.texts", name) for name in ("text", "text_file", "corpus", "read_table")}
_MODULES = ("corpora", "idx", "sources", "texts", "tokenizers")

__all__ = [
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_LABELS",
    "IMAGE_SUFFIXES",
    "ArrayLoader",
    "DataBundle",
    "dataset_size",
    "digits",
    "example_inputs",
    "fashion_mnist",
    "first_samples",
    "from_arrays",
    "from_loaders",
    "from_named_arrays",
    "from_npz",
    "image_folder",
    "load_idx_split",
    "load_mnist_arrays",
    "mnist",
    "random_shift",
    "source",
    "source_names",
    *_NAMES,
]

__getattr__ = lazy_attributes(globals(), _NAMES, _MODULES)
