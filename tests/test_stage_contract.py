"""The stage contract: what a stage is handed, how it reports, how recipes find it; a library without
side effects on its host program."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import edgekd as ek
from edgekd.errors import ConfigError
from edgekd.recipe import schema as recipes
from edgekd.stage import RunContext, Stage, register_stage, stage_class, stage_kinds


@register_stage("scale-weights")
@dataclass
class ScaleWeights(Stage):
    """A test stage: multiplies every weight, and says so."""

    factor: float = 0.5
    name: str = "scale-weights"

    def run(self, ctx: RunContext, student: nn.Module) -> nn.Module:
        assert ctx.example.shape[0] == 2 and ctx.stage_dir.name == "01-scale-weights"
        with torch.no_grad():
            for parameter in student.parameters():
                parameter.mul_(self.factor)
        ctx.record(details_first=True)
        ctx.record(f"weights x{self.factor:g}", factor=self.factor)
        return student


def _tiny(size: int = 12) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(size * size, 4))


def test_a_registered_stage_is_named_by_recipes_and_records_its_row(tiny_images, tmp_path):
    assert "scale-weights" in stage_kinds() and {"distill", "prune", "quantize", "train"} <= set(stage_kinds())
    assert stage_class("scale-weights") is ScaleWeights
    assert stage_class("test_stage_contract:ScaleWeights") is ScaleWeights  # module:Class needs no registration
    result = ek.Pipeline(_tiny(), _tiny(), tiny_images, [ScaleWeights(0.25)], out_dir=tmp_path, quiet=True).run()
    row = result.report["ledger"][-1]
    assert row["notes"] == "weights x0.25" and row["details"] == {"details_first": True, "factor": 0.25}


def test_recipes_build_registered_stages_with_checked_options(tmp_path):
    path = tmp_path / "r.yaml"
    text = """
        data: digits
        teacher: {model: hinton-teacher, args: {in_features: 64}}
        student: {model: hinton-student, args: {in_features: 64}}
        stages: [{scale-weights: {factor: 0.75}}]
    """
    path.write_text(textwrap.dedent(text))
    stage = recipes.load(path).stages[0]
    assert isinstance(stage, ScaleWeights) and stage.factor == 0.75
    path.write_text(textwrap.dedent(text.replace("factor: 0.75", "factr: 0.75")))
    with pytest.raises(ConfigError, match=r"stages\[0\]\.scale-weights: unknown key 'factr'; did you mean 'factor'"):
        recipes.load(path)
    path.write_text(textwrap.dedent(text.replace("scale-weights", "scale-weight")))
    with pytest.raises(ConfigError, match=r"stages\[0\]: unknown stage 'scale-weight'; did you mean 'scale-weights'"):
        recipes.load(path)


def test_a_second_class_cannot_take_a_registered_name():
    with pytest.raises(ConfigError, match="stage 'distill' is already registered by edgekd.distill.stage.Distill"):

        @register_stage("distill")
        class Impostor(Stage):
            name = "distill"


def test_a_stage_without_run_is_refused_and_the_base_validate_is_a_no_op(tiny_images, tmp_path):
    assert Stage().validate([_tiny()], _tiny()) is None
    with pytest.raises(NotImplementedError, match=r"Stage\.run"):
        ek.Pipeline(_tiny(), _tiny(), tiny_images, [Stage()], out_dir=tmp_path, quiet=True).run()


def test_teacher_notes_are_passed_to_run_and_counted_in_the_wall_time(tiny_images, tmp_path):
    pipe = ek.Pipeline(_tiny(), _tiny(), tiny_images, [ScaleWeights()], out_dir=tmp_path, quiet=True)
    report = pipe.run(teacher_notes=[{"notes": "pretrained 3 epochs", "wall_s": 100.0}]).report
    assert report["ledger"][0]["notes"].startswith("pretrained 3 epochs") and report["teacher_pretrain_s"] == 100.0
    assert report["wall_s"] >= 100.0
    with pytest.raises(ConfigError, match="teacher_notes has 2 entries for 1 teachers"):
        ek.Pipeline(_tiny(), _tiny(), tiny_images, [ScaleWeights()], out_dir=tmp_path / "b", quiet=True).run(
            teacher_notes=[{}, {}]
        )


@pytest.mark.slow
def test_import_edgekd_leaves_the_host_programs_logging_alone():
    probe = """
        import json, logging, os, warnings
        import torch  # torch's own import-time settings are not ours to judge
        before = (dict(os.environ), list(warnings.filters), logging.getLogger("torchao").filters)
        levels = {n: logging.getLogger(n).level for n in ("torch.utils._pytree", "torchao")}
        import edgekd, edgekd.train, edgekd.quantize
        from edgekd.run.pipeline import Pipeline
        after = (dict(os.environ), list(warnings.filters), logging.getLogger("torchao").filters)
        same_levels = levels == {n: logging.getLogger(n).level for n in levels}
        print(json.dumps([before[0] == after[0], before[1] == after[1], before[2] == after[2], same_levels]))
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(probe)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, True, True, True]
    assert "Failed to load" not in out.stderr  # torchao's CUDA-kernel lines stay off the terminal


def test_a_quieted_block_keeps_the_programs_own_torchao_filter():
    import logging

    from edgekd.utils import quiet

    torchao = logging.getLogger("torchao")
    had = quiet._skip_missing_gpu_kernels in torchao.filters
    torchao.addFilter(quiet._skip_missing_gpu_kernels)  # as the CLI's quiet_third_party() does
    try:
        with quiet.third_party_quieted():
            pass
        assert quiet._skip_missing_gpu_kernels in torchao.filters
    finally:
        if not had:
            torchao.removeFilter(quiet._skip_missing_gpu_kernels)
    with quiet.third_party_quieted():
        assert quiet._skip_missing_gpu_kernels in torchao.filters
    assert (quiet._skip_missing_gpu_kernels in torchao.filters) is had  # a library call leaves nothing behind
