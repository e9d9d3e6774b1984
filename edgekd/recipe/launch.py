"""Turning a validated recipe into a finished run: data, models, teacher pretraining, Pipeline."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import torch

from edgekd.data import sources as data_sources
from edgekd.data.sources import DataBundle
from edgekd.models.files import load_model
from edgekd.outputs import output_selection, select_output
from edgekd.prune.engine import check_importance
from edgekd.prune.sensitivity import DEFAULT_RATIOS, layer_sensitivity, write_report
from edgekd.prune.stage import Prune
from edgekd.recipe import schema as recipes
from edgekd.run.pipeline import Pipeline, PipelineResult
from edgekd.train import resolve_device, seed_everything
from edgekd.train.pretrain import pretrain

QUICK_LIMITS = {"limit_train": 6000, "limit_test": 1000}
QUICK_MAX_EPOCHS = 2
QUICK_TIMING = {"warmup_runs": 2, "warmup_s": 0.0, "runs": 5, "min_s": 0.0}


def quick_variant(recipe: recipes.Recipe) -> recipes.Recipe:
    """The same recipe at toy size (at most two epochs per stage, a data subset) for smoke tests."""
    data_args = dict(recipe.data_args)
    accepted = inspect.signature(data_sources.source(recipe.data_source)).parameters
    data_args |= {k: v for k, v in QUICK_LIMITS.items() if k in accepted}

    def shorten(config):
        if not dataclasses.is_dataclass(config) or not isinstance(getattr(config, "epochs", None), int):
            return config  # a stage with no epochs has nothing to shorten
        return dataclasses.replace(config, epochs=min(config.epochs, QUICK_MAX_EPOCHS))

    teachers = [dataclasses.replace(t, pretrain=shorten(t.pretrain) if t.pretrain else None) for t in recipe.teachers]
    targets = [dataclasses.replace(t, **QUICK_TIMING) for t in recipe.targets]  # a few timed runs, no minimum time
    return dataclasses.replace(
        recipe, data_args=data_args, stages=[shorten(s) for s in recipe.stages], teachers=teachers, targets=targets
    )


def run_recipe(
    path: str | Path,
    out_dir: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    quick: bool = False,
    resume: bool = False,
) -> PipelineResult:
    """Load, validate and run a recipe file end to end (or pick up a killed run of it with ``resume``)."""
    recipe = recipes.load(path)
    if quick:
        recipe = quick_variant(recipe)
    data = recipes.build_data(recipe)
    seed_everything(recipe.seed)
    teachers = [
        recipes.build_model(spec, "teacher" if len(recipe.teachers) == 1 else f"teachers[{i}]")
        for i, spec in enumerate(recipe.teachers)
    ]
    pipe = Pipeline(
        teacher=teachers,
        student=recipes.build_model(recipe.student, "student", teachers[0]),
        data=data,
        stages=recipe.stages,
        out_dir=out_dir or recipe.out_dir,
        teacher_weights=[t.weight for t in recipe.teachers] if len(recipe.teachers) > 1 else None,
        export=recipe.export,
        targets=recipe.targets,
        bench_teacher=recipe.bench_teacher,
        seed=recipe.seed,
        device=recipe.device,
        quiet=quiet,
        overwrite=overwrite,
        config=recipe.raw,
    )
    pipe.preflight(resume)  # before minutes of teacher training, not after
    notes = []
    for i, (spec, teacher) in enumerate(zip(recipe.teachers, teachers)):
        built = "queried, not trained here" if spec.queried else "as built, no training"
        note = {"notes": "loaded from checkpoint" if spec.checkpoint else built}
        if spec.pretrain is not None:
            result = pretrain(teacher, data, spec.pretrain, seed=recipe.seed + i, device=recipe.device, quiet=quiet)
            note = {"notes": result.note, "wall_s": result.wall_s}
        notes.append(note)
    if recipe.student.model == recipes.TEACHER_LAYERS:  # cut again, now from the trained teacher's weights
        pipe.student = recipes.build_model(recipe.student, "student", teachers[0])
    torch.manual_seed(recipe.seed)
    return pipe.run(resume=resume, teacher_notes=notes)


def data_for(spec: str, key: str = "--data") -> DataBundle:
    """The test data a command names: a source (``mnist``, ``digits``), an image folder, an ``.npz`` with
    ``x``/``y`` (see :func:`edgekd.data.sources.from_npz`) or a recipe whose ``data:`` block is built."""
    path = Path(spec)
    if path.suffix.lower() in (".yaml", ".yml"):
        return recipes.build_data(recipes.load(path))
    if path.suffix.lower() == ".npz":
        return data_sources.from_npz(path)
    if path.is_dir():
        return data_sources.image_folder(path)
    if spec in data_sources.source_names():
        try:
            return data_sources.source(spec, key)()
        except TypeError as exc:
            raise recipes.ConfigError(f"{key}: '{spec}' needs options; name its folder or a recipe instead") from exc
    needs_a_path = ("image_folder", "text", "corpus", "arrays")
    known = ", ".join(name for name in data_sources.source_names() if name not in needs_a_path)
    raise recipes.ConfigError(
        f"{key}: '{spec}' is not a data source ({known}), an image folder, an .npz file or a recipe"
    )


def parse_ratios(text: str) -> tuple[float, ...]:
    """``"0.25,0.5"`` -> (0.25, 0.5); each ratio must lie in (0, 1)."""
    try:
        ratios = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise recipes.ConfigError(f"--ratios: expected numbers like 0.25,0.5,0.75, got '{text}'") from exc
    if not ratios or not all(0.0 < r < 1.0 for r in ratios):
        raise recipes.ConfigError(f"--ratios: each ratio must be in (0, 1), got '{text}'")
    return ratios


def run_sensitivity(
    path: str | Path,
    out_dir: Path,
    checkpoint: str | None = None,
    ratios: tuple[float, ...] = DEFAULT_RATIOS,
    importance: str = "l2",
) -> tuple[list, dict[str, Path]]:
    """Per-layer pruning sensitivity of a recipe's student (optionally with trained weights)."""
    recipe = recipes.load(path)
    check_importance(importance, "--importance")
    data = recipes.build_data(recipe)
    seed_everything(recipe.seed)
    derived = recipe.student.model == recipes.TEACHER_LAYERS  # the student is cut from the teacher
    teacher = recipes.build_model(recipe.teachers[0], "teacher") if derived else None
    student = recipes.build_model(recipe.student, "student", teacher)
    if output_selection(student) is None:
        select_output(student)  # torch-pruning traces the logits tensor, whatever the forward returns
    if checkpoint is not None:
        load_model(student, checkpoint)
    prune_stages = [s for s in recipe.stages if isinstance(s, Prune)]
    ignore = prune_stages[0].ignore if prune_stages else None
    rows = layer_sensitivity(student, data, ratios, importance, ignore, resolve_device(recipe.device))
    return rows, write_report(rows, out_dir)
