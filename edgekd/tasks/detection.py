"""Object detection: a model with several outputs (class heatmaps and boxes, say), judged by mAP@0.5.

Targets are boxes per image, padded to a fixed count: an array (images, boxes, 5) of rows
``(class, x0, y0, x1, y1)`` in input pixels, rows of ``-1`` where an image holds fewer boxes (the layout
``edgekd.data.canvases`` writes). Every output of the forward is kept, by name, through every stage and
into the files; inside the training loop they travel as one packed tensor per batch
(:class:`~edgekd.tasks.packing.PackedOutputs`) so teacher caches and metrics stack them like logits.

The built-in head is anchor-free, CenterNet style: output 0 holds class heatmap logits (batch, classes,
h, w), output 1 the box of each cell (batch, 4, h, w) as distances (left, top, right, bottom) from the
cell's centre in cells. A model with another head brings its own ``loss(outputs, targets)`` and
``decode(outputs) -> list[Detections]`` (``outputs``: the list of output tensors in forward order).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from edgekd.errors import ConfigError, DataError
from edgekd.outputs import resolve_selector
from edgekd.tasks.boxes import Detections, matched_share, mean_average_precision
from edgekd.tasks.packing import PackedOutputs
from edgekd.tasks.task import Task, finite_targets

Outputs = list[torch.Tensor]
LossFn = Callable[[Outputs, torch.Tensor], torch.Tensor]
DecodeFn = Callable[[Outputs], list[Detections]]
DistillFn = Callable[[Outputs, list[Outputs], float], torch.Tensor]

SCORE_FLOOR = 0.05  # detections kept for mAP (low: the precision-recall curve needs the weak ones too)
PARITY_SCORE = 0.3  # detections an app would show: what the parity gate compares
PARITY_MARGIN = 0.1  # a shown detection is matched among the other's down to this much lower score
MAX_DETECTIONS = 100


class Detection(Task):
    """Boxes and classes per image from several outputs; the best epoch is the one with the highest mAP@0.5.

    ``loss``/``decode``/``distill``: your head's functions (see the module docstring); left out, the
    CenterNet-style head's. ``image_size``: (height, width) of the inputs, read from the data when left out."""

    name = "detection"
    metric_names = ("map50", "map50_95")
    default_monitor = "map50"
    parity_rule = "detections (class, IoU >= 0.5)"
    structured = True

    def __init__(
        self,
        monitor: str | None = None,
        loss: LossFn | None = None,
        decode: DecodeFn | None = None,
        distill: DistillFn | None = None,
        image_size: Sequence[int] | None = None,
    ) -> None:
        super().__init__(monitor)
        loss, decode, distill = (_function(v, k) for k, v in (("loss", loss), ("decode", decode), ("distill", distill)))
        if (loss is None) != (decode is None):
            raise ConfigError("detection: give loss and decode together (your head's), or neither (the CenterNet head)")
        self.user_loss, self.user_decode, self.user_distill = loss, decode, distill
        self.image_size = tuple(int(v) for v in image_size) if image_size is not None else None
        self.packing = PackedOutputs()

    @property
    def builtin_head(self) -> bool:
        return self.user_loss is None

    def for_inputs(self, input_shape: Sequence[int]) -> Task:
        if self.image_size is not None or len(input_shape) < 2:
            return self
        twin = copy.copy(self)
        twin.image_size = (int(input_shape[-2]), int(input_shape[-1]))
        return twin

    # --- outputs -------------------------------------------------------------------------------------
    def output_of(self, raw) -> torch.Tensor:
        return self.packing.pack(raw)

    def outputs(self, packed: torch.Tensor) -> Outputs:
        """The forward's output tensors back out of a packed batch: in order, or for the built-in head,
        heatmaps then boxes where the forward names them (a dict whose boxes come first)."""
        outputs = self.packing.unpack(packed)
        names = self.packing.names.get(int(packed.shape[-1]), [])
        boxes = [i for i, name in enumerate(names) if "box" in name.lower()]
        if self.builtin_head and len(outputs) == 2 and boxes == [0]:
            return [outputs[1], outputs[0]]
        return outputs

    # --- targets -------------------------------------------------------------------------------------
    def targets(self, y: np.ndarray, key: str) -> np.ndarray:
        array = finite_targets(padded_boxes(y, key), key)
        if array.ndim != 3 or array.shape[-1] != 5:
            raise DataError(
                f"{key}: detection targets must be (images, boxes, 5) rows of (class, x0, y0, x1, y1), padded with "
                f"rows of -1; got shape {array.shape}"
            )
        classes = array[..., 0]
        real = classes >= 0
        if not np.all(classes[real] == np.round(classes[real])) or np.any(classes[~real] != -1):
            raise DataError(f"{key}: a box's class (column 0) must be a whole number 0..C-1, or -1 for a padding row")
        boxes = array[..., 1:][real]
        if len(boxes) and (
            np.any(boxes < 0) or np.any(boxes[:, 2] <= boxes[:, 0]) or np.any(boxes[:, 3] <= boxes[:, 1])
        ):
            raise DataError(f"{key}: boxes must be (x0, y0, x1, y1) in pixels with x1 > x0 >= 0 and y1 > y0 >= 0")
        if len(boxes) and boxes.max() <= 1.0:
            raise DataError(f"{key}: every box coordinate is within [0, 1]: give boxes in input pixels (x * width, "
                            "y * height)")  # fmt: skip
        return array.astype(np.float32)

    def output_width(self, targets: Sequence[np.ndarray]) -> int:
        return int(max(t[..., 0].max(initial=-1) for t in targets) + 1)

    def check_output(self, output: torch.Tensor, y: torch.Tensor, width: int, who: str) -> None:
        outputs = self.outputs(output)
        if len(output) != len(y):  # a list per image, say: the first axis must be the batch
            raise DataError(
                f"{who} returns {[tuple(t.shape) for t in outputs]} for a batch of {len(y)}: each output must be one "
                "tensor with the batch first (batch, ...), not one entry per image"
            )
        if not self.builtin_head:
            return
        shapes = [tuple(t.shape) for t in outputs]
        heat_ok = len(outputs) == 2 and outputs[0].dim() == 4 and outputs[0].shape[1] >= width
        boxes_ok = heat_ok and outputs[1].dim() == 4 and outputs[1].shape[1] == 4
        if not boxes_ok or outputs[0].shape[2:] != outputs[1].shape[2:]:
            raise DataError(
                f"{who} returns {shapes}: the built-in detection head needs two outputs, class heatmaps (batch, "
                f"{width}, h, w) and boxes (batch, 4, h, w); for another head pass Detection(loss=..., decode=...)"
            )

    # --- training ------------------------------------------------------------------------------------
    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        outputs = self.outputs(output)
        if not self.builtin_head:
            return self.user_loss(outputs, y)
        heat_target, box_target, positive = self._encode(y, outputs[0])
        return _focal(outputs[0], heat_target) + _box_l1(outputs[1], box_target, positive)

    def distill_loss(self, student, teachers, y, temperature, alpha, weights=None) -> torch.Tensor:
        mine = self.outputs(student)
        theirs = [self.outputs(t) for t in teachers]
        shares = list(weights) if weights is not None else [1.0] * len(theirs)
        total = float(sum(shares))
        if self.user_distill is not None:
            agreement = sum(w / total * self.user_distill(mine, t, temperature) for w, t in zip(shares, theirs))
        elif self.builtin_head:
            objects = (y[..., 0] >= 0).sum().clamp_min(1).float()
            agreement = sum(w / total * _centernet_kd(mine, t, objects) for w, t in zip(shares, theirs))
        else:
            agreement = sum(w / total * _output_mse(mine, t) for w, t in zip(shares, theirs))
        return alpha * self.loss(student, y) + (1.0 - alpha) * agreement

    # --- judging -------------------------------------------------------------------------------------
    def detections(self, outputs: Sequence[torch.Tensor | np.ndarray]) -> list[Detections]:
        """Each image's detections from a batch of outputs (tensors or a file's arrays)."""
        tensors = [torch.as_tensor(np.asarray(t)) if not isinstance(t, torch.Tensor) else t for t in outputs]
        if not self.builtin_head:
            return self.user_decode(tensors)
        return _decode(tensors[0].float(), tensors[1].float(), self._stride(tensors[0]))

    def metrics(self, output: torch.Tensor, y: torch.Tensor, width: int) -> dict:
        if len(y) == 0:
            return {}
        found: list[Detections] = []
        for start in range(0, len(output), 256):
            found += [d.above(SCORE_FLOOR) for d in self.detections(self.outputs(output[start : start + 256]))]
        truth = [truth_of(row) for row in y.numpy()]
        classes = max(width, max((int(d.classes.max()) + 1 for d in found if len(d.classes)), default=0))
        return mean_average_precision(found, truth, classes)

    def agreement(self, expected: Sequence[np.ndarray], actual: Sequence[np.ndarray]) -> tuple[float, int]:
        """The parity gate's share of PyTorch's shown detections (score >= 0.3) the file repeats (same class,
        IoU >= 0.5) among its own at score >= 0.2 (a score near the line is no disagreement), counted both ways
        so a file that adds boxes fails too; and how many were compared."""
        mine, theirs = self.detections(list(expected)), self.detections(list(actual))
        shown = lambda found: [d.above(PARITY_SCORE) for d in found]  # noqa: E731
        near = lambda found: [d.above(PARITY_SCORE - PARITY_MARGIN) for d in found]  # noqa: E731
        forward_hits, forward_total = matched_share(shown(mine), near(theirs))
        back_hits, back_total = matched_share(shown(theirs), near(mine))
        total = forward_total + back_total
        return ((forward_hits + back_hits) / total if total else 1.0), total

    def no_skill(self, metrics: dict, width: int) -> str | None:
        value = metrics.get("map50")
        if value is not None and value < 0.01:
            return f"mAP@0.5 {value:.3f}: it finds (next to) none of the boxes"
        return None

    def describe(self) -> dict:
        described = {**super().describe(), "targets": "(class, x0, y0, x1, y1) boxes in input pixels"}
        if self.builtin_head:
            described["output"] = (
                "output 0: class heatmap logits (batch, classes, h, w), a detection where sigmoid(logit) is a 3x3 "
                "local maximum; output 1: box (batch, 4, h, w), distances (left, top, right, bottom) from the "
                "cell's centre in cells of stride image/h"
            )
            described["image_size"] = list(self.image_size) if self.image_size else None
        else:
            described["output"] = "decoded by the user's function " + getattr(self.user_decode, "__name__", "decode")
        return described

    # --- the built-in head ---------------------------------------------------------------------------
    def _stride(self, heatmap: torch.Tensor) -> tuple[float, float]:
        if self.image_size is None:
            raise DataError("detection: the input image size is unknown; pass Detection(image_size=(height, width))")
        return self.image_size[0] / heatmap.shape[-2], self.image_size[1] / heatmap.shape[-1]

    def _encode(self, y: torch.Tensor, heatmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Targets on the heatmap's grid: a Gaussian peak per box at its centre cell, the box's distances at
        the cells next to the centre (3x3), and where those cells are."""
        batch, classes, height, width = heatmap.shape
        sy, sx = self._stride(heatmap)
        heat = torch.zeros(batch, classes, height, width)
        boxes = torch.zeros(batch, 4, height, width)
        positive = torch.zeros(batch, height, width, dtype=torch.bool)
        ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        centres_x, centres_y = (xs + 0.5) * sx, (ys + 0.5) * sy
        for image, rows in enumerate(y.cpu()):
            for cls, x0, y0, x1, y1 in rows[rows[:, 0] >= 0].tolist():
                cx, cy = (x0 + x1) / 2 / sx, (y0 + y1) / 2 / sy
                sigma = max((x1 - x0) / sx, (y1 - y0) / sy) / 6 + 0.5
                peak = torch.exp(-((xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2) / (2 * sigma**2))
                col, row = min(int(cx), width - 1), min(int(cy), height - 1)
                peak[row, col] = 1.0
                heat[image, int(cls)] = torch.maximum(heat[image, int(cls)], peak)
                near = (abs(xs - col) <= 1) & (abs(ys - row) <= 1)
                near &= (centres_x > x0) & (centres_x < x1) & (centres_y > y0) & (centres_y < y1) | (
                    (xs == col) & (ys == row)
                )
                distances = torch.stack([(centres_x - x0) / sx, (centres_y - y0) / sy, (x1 - centres_x) / sx,
                                         (y1 - centres_y) / sy])  # fmt: skip
                boxes[image][:, near] = distances[:, near]
                positive[image] |= near
        device = heatmap.device
        return heat.to(device), boxes.to(device), positive.to(device)


def _function(value, key: str) -> Callable | None:
    """A function given as itself or, in recipes, as ``package.module:function``."""
    if isinstance(value, str) and ":" in value:
        value = resolve_selector(value, f"task.{key}")
    if value is not None and not callable(value):
        raise ConfigError(f"task.{key}: expected a function or 'package.module:function', got {value!r}")
    return value


def padded_boxes(y, key: str) -> np.ndarray:
    """Boxes per image as one array: as given, or a list of (boxes_i, 5) arrays padded with rows of -1."""
    if isinstance(y, np.ndarray) and y.dtype != object:
        return y
    try:
        images = [np.asarray(rows, dtype=np.float64).reshape(-1, 5) for rows in y]
    except (TypeError, ValueError) as exc:
        raise DataError(f"{key}: boxes per image must be (boxes, 5) rows of (class, x0, y0, x1, y1): {exc}") from exc
    padded = np.full((len(images), max((len(b) for b in images), default=0), 5), -1.0)
    for image, rows in zip(padded, images):
        image[: len(rows)] = rows
    return padded


def truth_of(rows: np.ndarray) -> Detections:
    """An image's true boxes from its padded target rows."""
    real = rows[rows[:, 0] >= 0]
    return Detections(real[:, 1:5].astype(np.float64), np.ones(len(real)), real[:, 0].astype(np.int64))


def _focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, per box: peaks pull up, the Gaussian's skirt is forgiven."""
    prob = logits.float().sigmoid().clamp(1e-4, 1 - 1e-4)
    peaks = target.eq(1.0).float()
    pulled = -((1 - prob) ** 2) * prob.log() * peaks
    pushed = -((1 - target) ** 4) * prob**2 * (1 - prob).log() * (1 - peaks)
    return (pulled.sum() + pushed.sum()) / peaks.sum().clamp_min(1.0)


def _box_l1(output: torch.Tensor, target: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    mask = positive.unsqueeze(1).float()
    return (F.l1_loss(output.float(), target, reduction="none") * mask).sum() / (4 * mask.sum()).clamp_min(1.0)


def _centernet_kd(student: Outputs, teacher: Outputs, objects: torch.Tensor) -> torch.Tensor:
    """The teacher's heatmap as soft targets under a quality focal loss (the student's error on each cell
    weighs its own term, so the easy background does not drown the few cells that hold objects), and its
    boxes where it sees an object; per true object, like the label loss. A temperature would push every
    background cell's sigmoid towards 0.5, so there is none: the scores are matched as they are."""
    soft = teacher[0].float().sigmoid()
    logits = student[0].float()
    focal = F.binary_cross_entropy_with_logits(logits, soft, reduction="none") * (logits.sigmoid() - soft).abs() ** 2
    confidence = soft.amax(1, keepdim=True)
    boxes = (F.l1_loss(student[1].float(), teacher[1].float(), reduction="none") * confidence).sum()
    return focal.sum() / objects + boxes / (4 * confidence.sum()).clamp_min(1.0)


def _output_mse(student: Outputs, teacher: Outputs) -> torch.Tensor:
    """Each output pulled towards the teacher's, scaled by the teacher's spread (no output dominates)."""
    terms = [F.mse_loss(s.float(), t.float()) / t.float().var().clamp_min(1e-6) for s, t in zip(student, teacher)]
    return torch.stack(terms).mean()


def _decode(heatmap: torch.Tensor, boxes: torch.Tensor, stride: tuple[float, float]) -> list[Detections]:
    """Peaks of the class heatmaps (3x3 local maxima, the best ``MAX_DETECTIONS``) and their cells' boxes."""
    prob = heatmap.sigmoid()
    peaks = prob * (F.max_pool2d(prob, 3, 1, 1) == prob)
    batch, classes, height, width = prob.shape
    top = min(MAX_DETECTIONS, classes * height * width)
    scores, where = peaks.reshape(batch, -1).topk(top)
    cls, cell = where // (height * width), where % (height * width)
    row, col = cell // width, cell % width
    sy, sx = stride
    found = []
    for i in range(batch):
        distance = boxes[i].reshape(4, -1)[:, cell[i]]
        cx, cy = (col[i].float() + 0.5) * sx, (row[i].float() + 0.5) * sy
        xyxy = torch.stack([cx - distance[0] * sx, cy - distance[1] * sy, cx + distance[2] * sx,
                            cy + distance[3] * sy], 1)  # fmt: skip
        keep = scores[i] > 0
        found.append(Detections(xyxy[keep].double().numpy(), scores[i][keep].double().numpy(),
                                cls[i][keep].numpy()))  # fmt: skip
    return found
