"""Nothing silent: a gate that cannot pass what it did not compare, a quantization that collapses stops
where it happens, honest pretraining notes, protections a user's ``ignore`` cannot remove, labels never
cast into classes, data as users hold it, and checkpoint refusals that say what to do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from own_words import assert_own_words, raw_library_text
from torch import nn

import edgekd as ek
from edgekd.errors import CheckpointError, DataError
from edgekd.export.parity import MAX_NEAR_TIE_SHARE, compare


class ListRunner:
    """A stand-in for a file in its runtime: returns the outputs it is given."""

    def __init__(self, outputs: np.ndarray) -> None:
        self.outputs = outputs

    def run(self, x) -> np.ndarray:
        return self.outputs


class Fixed(nn.Module):
    """A 'model' whose logits are whatever the test says, one row per sample index in the input."""

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.logits = torch.from_numpy(logits.astype(np.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[x[:, 0].long()]


def _samples(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32).unsqueeze(1)


def test_a_file_whose_outputs_ignore_the_input_fails_the_gate():
    logits = np.random.default_rng(0).normal(size=(32, 4))
    constant = np.zeros((32, 4), np.float32)
    report = compare(Fixed(logits), ListRunner(constant), _samples(32), "fp32")
    assert not report.passed and "same output for all 32 different inputs" in report.reason


def test_a_gate_cannot_pass_on_near_ties_alone():
    logits = np.zeros((40, 4))  # every sample a tie: nothing decides the comparison
    logits[:, 0] = np.linspace(0, 1e-3, 40)
    report = compare(Fixed(logits), ListRunner(logits.astype(np.float32)), _samples(40), "int8", output_step=0.1)
    assert not report.passed
    assert report.near_ties > MAX_NEAR_TIE_SHARE * 40 and f"only {report.decided_by} of 40 samples" in report.reason


def test_the_summary_says_how_many_samples_decided_it():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(20, 4)) * 5
    logits[:3] = 0.0  # three near-ties
    logits[:3, 0] = np.arange(3) * 1e-4
    report = compare(Fixed(logits), ListRunner(logits.astype(np.float32)), _samples(20), "int8", output_step=0.1)
    assert report.passed and report.near_ties == 3
    assert "on the 17 of 20 samples that decided it (3 near-ties" in report.summary()


def test_a_file_with_nan_fails_and_so_does_a_model_with_nan():
    logits = np.random.default_rng(2).normal(size=(8, 3))
    broken = logits.astype(np.float32).copy()
    broken[0, 0] = np.nan
    assert "artifact produced NaN" in compare(Fixed(logits), ListRunner(broken), _samples(8), "fp32").reason
    assert "PyTorch model itself produced NaN" in compare(Fixed(broken), ListRunner(broken), _samples(8), "fp32").reason


@pytest.fixture(scope="module")
def quantization_error() -> type:
    from edgekd.quantize.stage import QuantizationError  # torchao's import: seconds, paid in setup

    return QuantizationError


@pytest.mark.parametrize(
    ("float_val", "int8_val", "min_kept", "stops"),
    [(0.90, 0.10, 0.5, True), (0.194, 0.097, 0.5, True), (0.90, 0.85, 0.5, False), (0.11, 0.05, 0.5, False),
     (0.90, 0.10, 0.0, False)],
)  # fmt: skip
def test_a_collapsed_quantization_stops_in_one_line(quantization_error, float_val, int8_val, min_kept, stops):
    stage = ek.Quantize(min_kept=min_kept)
    if stops:
        with pytest.raises(quantization_error, match=r"INT8 collapsed: validation accuracy .* min_kept .*exclude="):
            stage._check_not_collapsed(float_val, int8_val, 10)
    else:
        stage._check_not_collapsed(float_val, int8_val, 10)


def test_min_kept_out_of_range_is_one_line():
    with pytest.raises(ek.errors.ConfigError, match=r"min_kept: must be in \[0, 1\], got 2"):
        ek.Quantize(min_kept=2)


def _mlp(classes: int = 4) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(144, 16), nn.ReLU(), nn.Linear(16, classes))


def test_a_pretraining_that_never_improves_says_so_and_is_not_cached(tiny_images, tmp_path, capsys):
    torch.manual_seed(0)
    frozen = ek.TrainConfig(epochs=1, lr=1e-12)  # too small a step to move the weights
    result = ek.pretrain(_mlp(), tiny_images, frozen, device="cpu", cache_dir=tmp_path, quiet=True)
    assert not result.improved and "no epoch beat the starting weights" in result.note
    assert "warning: teacher pretraining" in capsys.readouterr().err
    torch.manual_seed(0)
    again = ek.pretrain(_mlp(), tiny_images, frozen, device="cpu", cache_dir=tmp_path, quiet=True)
    assert not again.from_cache  # an untrained model is never cached as a teacher


def test_a_cached_teacher_is_checked_on_validation_data(tiny_images, tmp_path):
    config = ek.TrainConfig(epochs=2, lr=0.01)
    torch.manual_seed(0)
    trained = ek.pretrain(_mlp(), tiny_images, config, device="cpu", cache_dir=tmp_path, quiet=True)
    torch.manual_seed(0)
    cached = ek.pretrain(_mlp(), tiny_images, config, device="cpu", cache_dir=tmp_path, quiet=True)
    assert cached.from_cache and cached.val_accuracy == pytest.approx(trained.val_accuracy)
    assert f"val {100 * cached.val_accuracy:.2f}%" in cached.note and cached.warning is None


def test_ignore_adds_to_the_protected_head_never_replaces_it(tiny_images):
    from edgekd.prune import PruneSpec, build_pruner, prune_step

    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4),
    )  # fmt: skip
    example = ek.data.example_inputs(tiny_images.val)
    spec = PruneSpec(0.5, "l2", False, None, ["0"])  # the user protects the first conv
    pruner = build_pruner(model, example, spec, num_classes=4)
    prune_step(pruner, model, example)
    assert model[8].out_features == 4 and model[0].out_channels == 8  # the head and the named conv kept
    assert model[2].out_channels < 8  # the rest was pruned


@pytest.mark.parametrize(
    ("labels", "task", "message"),
    [
        (np.linspace(0, 1, 40), "classification", "non-integer values such as .*use task='regression'"),
        (np.where(np.arange(40) % 2, 1, -1), None, r"class labels or values to regress\? pass task='regression'"),
        (np.where(np.arange(40) % 2, 1, -1), "classification", r"got -1; map them first \(for \{-1, \+1\}"),
        (np.zeros((40, 3)), None, r"shape \(40, 3\) of 0/1 values: .* task='multilabel' or task='regression'"),
        (np.zeros((40, 3)), "classification", r"shape \(40, 3\) holds several targets per sample"),
        (np.array(["a", "b"] * 20), None, "targets must be numbers, got <U1 values"),
    ],
)
def test_labels_are_never_cast_into_classes(labels, task, message):
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    with pytest.raises(DataError, match=message):
        ek.data.from_arrays(x, labels, x[:8], np.zeros(8, np.int64), task=task)


def test_integral_float_labels_are_classes():
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    data = ek.data.from_arrays(x, (np.arange(40) % 3).astype(np.float32), x[:8], np.zeros(8))
    assert data.num_classes == 3


def _loaders():
    from torch.utils.data import DataLoader, TensorDataset

    x, y = torch.randn(64, 1, 12, 12), torch.arange(64) % 4
    dataset = TensorDataset(x, y)
    return DataLoader(dataset, batch_size=16, shuffle=True), DataLoader(dataset, batch_size=16)


def test_a_lone_dataloader_is_refused_in_one_line_that_says_what_to_pass(tiny_images):
    train, _ = _loaders()
    with pytest.raises(DataError, match=r"a single DataLoader has no validation split; pass \{'train'"):
        ek.Pipeline(_mlp(), _mlp(), train, [])


def test_a_dict_of_dataloaders_is_data_and_says_what_it_does_not_know(tmp_path):
    train, val = _loaders()
    with pytest.raises(DataError, match=r"how many classes\? a loader does not say; pass num_classes="):
        ek.Pipeline(_mlp(), _mlp(), {"train": train, "val": val}, [])
    pipe = ek.Pipeline(_mlp(), _mlp(), {"train": train, "val": val, "num_classes": 4},
                       [ek.Train(epochs=1)], out_dir=tmp_path / "run", quiet=True, device="cpu")  # fmt: skip
    described = pipe.data.describe()
    assert described["train_augmented"] is None  # a DataLoader's transforms are not visible: unknown, not "yes"
    assert described["test_split"].startswith("the validation loader") and described["input_shape"] == [1, 12, 12]
    result = pipe.run()
    assert result.report["data"]["train_size"] == 64


def test_a_whole_pickled_module_is_refused_with_what_to_save_instead(tmp_path):
    from edgekd.models.checkpoint import safe_load

    path = tmp_path / "whole.pt"
    torch.save(_mlp(), path)
    with pytest.raises(CheckpointError) as refused:
        safe_load(path)
    message = str(refused.value)
    assert "save model.state_dict() instead" in message
    assert_own_words(message)
    assert "torch.nn" in message  # the class the pickle stores is named


def test_an_exported_file_given_as_a_checkpoint_is_named_as_such(tmp_path):
    from edgekd.models.checkpoint import safe_load

    path = tmp_path / "teacher.onnx"
    path.write_bytes(b"\x08\x07")
    with pytest.raises(CheckpointError, match=r"is an exported .onnx file, not PyTorch weights"):
        safe_load(path)


def test_integer_pixels_fed_to_a_float_file_are_warned_about():
    from edgekd.bench.input_range import range_warning

    normalization = {"mean": [0.1307], "std": [0.3081], "pixel_scale": 1 / 255}
    pixels = np.random.default_rng(0).integers(0, 256, (8, 1, 28, 28)).astype(np.uint8)
    assert "raw pixels?" in range_warning(normalization, pixels)
    assert range_warning(normalization, ((pixels / 255 - 0.1307) / 0.3081).astype(np.float32)) is None


def _tiny_gpt2(layers: int = 3) -> nn.Module:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(
        n_layer=layers, n_embd=32, n_head=4, vocab_size=100, n_positions=32, bos_token_id=0, eos_token_id=0
    )
    return transformers.GPT2LMHeadModel(config).eval()


def test_a_student_cut_from_a_causal_lm_runs_and_generates():
    teacher = _tiny_gpt2()
    student = ek.models.from_teacher_layers(teacher, [0, 2])  # the kept blocks renumbered for the cache
    ids = torch.randint(0, 100, (1, 8))
    assert student(input_ids=ids).logits.shape == (1, 8, 100)
    assert student.generate(ids, max_new_tokens=3, do_sample=False).shape == (1, 11)


def test_a_prune_hint_is_never_repeated_once_followed():
    """Following 'add lm_head to ignore' must change the answer: the LM head is protected already, so
    the refusal says why it still fails instead of giving the same hint again."""
    from edgekd.prune import PruneSpec, PruningError, build_pruner

    model = ek.select_output(_tiny_gpt2(), "logits")
    ids = {"input_ids": torch.randint(0, 100, (2, 8))}
    with pytest.raises(PruningError) as refused:
        build_pruner(model, ids, PruneSpec(0.3, "l2", False, None, ["lm_head"]), num_classes=100)
    assert "add 'lm_head' to ignore" not in str(refused.value) and "even kept whole" in str(refused.value)


def test_the_own_words_check_catches_a_library_message():
    torch_text = "Weights only load failed. This file can still be loaded, to do so you have two options"
    assert raw_library_text(torch_text) == "Weights only load failed"
    assert raw_library_text("\x1b[1mWeights\x1b[0m") is not None
    assert raw_library_text("checkpoint 'x.pt' holds pickled Python objects; save model.state_dict()") is None


def test_bad_checkpoints_in_a_recipe_are_one_line_that_says_what_to_do(tmp_path, capsys):
    from edgekd.cli.main import main

    whole = tmp_path / "whole.pt"
    torch.save(nn.Linear(64, 10), whole)
    exported = tmp_path / "teacher.onnx"
    exported.write_bytes(b"onnx")
    for checkpoint, said in ((whole, "save model.state_dict() instead"), (exported, "is an exported .onnx file")):
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(
            "data: {source: digits, batch_size: 64}\n"
            f"teacher: {{model: hinton-teacher, args: {{in_features: 64}}, checkpoint: {checkpoint}}}\n"
            "student: {model: hinton-student, args: {in_features: 64}}\nstages:\n  - distill: {epochs: 1}\n"
        )
        assert main(["run", str(recipe), "--out-dir", str(tmp_path / "run")]) != 0
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("edgekd: error:")]
        assert lines and said in lines[0]
        assert_own_words(lines[0])
        assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_stage_that_never_improves_says_so_in_the_ledger(tiny_images, tmp_path):
    torch.manual_seed(0)
    result = ek.Pipeline(_mlp(), _mlp(), tiny_images, [ek.Train(epochs=1, lr=1e-12)], out_dir=tmp_path / "run",
                         quiet=True, device="cpu").run()  # fmt: skip
    row = next(r for r in result.report["ledger"] if r["stage"] == "train")
    assert "no epoch beat the starting weights" in row["notes"]


@pytest.mark.slow
def test_a_swin_student_trains_for_int8(tiny_images):
    """Patch merging multiplies the batch size by a constant: that size must never get an observer."""
    transformers = pytest.importorskip("transformers")
    from edgekd.quantize.pt2e import calibrate, prepare

    config = transformers.SwinConfig(image_size=12, patch_size=2, num_channels=1, embed_dim=8, depths=[1, 1],
                                     num_heads=[2, 2], window_size=3, num_labels=4)  # fmt: skip
    model = ek.select_output(transformers.SwinForImageClassification(config).eval(), "logits")
    example = ek.data.example_inputs(tiny_images.val)
    observed = prepare(model, example, qat=True)
    calibrate(observed, tiny_images.train, 2, "cpu")
    observed.train()
    logits = observed(example)
    logits.sum().backward()  # a QAT step's forward and backward
    assert logits.shape == (2, 4)


def test_a_teacher_at_chance_is_warned_about_in_its_ledger_row(tiny_images, tmp_path, capsys):
    untrained = _mlp()
    with torch.no_grad():
        for p in untrained.parameters():
            p.zero_()  # every logit equal: argmax picks class 0, as good as guessing
    result = ek.Pipeline(untrained, _mlp(), tiny_images, [ek.Train(epochs=1)], out_dir=tmp_path / "run", quiet=True,
                         device="cpu").run()  # fmt: skip
    teacher = next(r for r in result.report["ledger"] if r["stage"] == "teacher")
    assert "teacher is at chance" in teacher["notes"] and "teacher is at chance" in capsys.readouterr().err
    student = next(r for r in result.report["ledger"] if r["stage"] == "student")
    assert "at chance" not in student["notes"]  # only the teacher is judged by what it can teach


def test_a_converter_failure_speaks_with_its_root_cause_not_the_exporters_wrapper():
    from edgekd.formats.failures import conversion_error

    try:
        try:
            raise ValueError("Cannot view a tensor with shape [2, 3] and strides [3, 1] as shape [6]")
        except ValueError as cause:
            raise RuntimeError(
                "Failed to export the model with torch.export. This is step 1/3 of exporting the model to ONNX.\n"
                "Next steps: ..."
            ) from cause
    except RuntimeError as wrapped:
        message = str(conversion_error("ONNX", wrapped, nn.Identity(), torch.zeros(1, 2)))
    assert "Cannot view a tensor with shape [2, 3]" in message and message.startswith("ONNX conversion failed")
    assert_own_words(message)


def test_a_prune_that_removes_nothing_says_so(tiny_images, tmp_path):
    lone_head = nn.Sequential(nn.Flatten(), nn.Linear(144, tiny_images.num_classes))  # only the head: kept whole
    result = ek.Pipeline(_mlp(), lone_head, tiny_images, [ek.Prune(ratio=0.5, epochs=0)], out_dir=tmp_path / "run",
                         quiet=True, device="cpu").run()  # fmt: skip
    row = result.report["ledger"][-1]
    assert row["params"] == result.report["ledger"][1]["params"] and "warning: nothing was pruned" in row["notes"]
