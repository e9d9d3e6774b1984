"""Structured pruning: real channel removal, options honoured, safe failure, save/load, ViT heads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import edgekd as ek
from edgekd.errors import CheckpointError, ConfigError
from edgekd.models.cost import count_macs, count_params
from edgekd.models.files import load_model, save_model
from edgekd.prune import PruneSpec, PruningError, build_pruner, prune_step

EXAMPLE = torch.zeros(2, 1, 12, 12)


def _convnet(width: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 4),
    )  # fmt: skip


def _teacher() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 144, 4))


def _prune(model: nn.Module, example: torch.Tensor = EXAMPLE, num_classes: int = 4, **spec) -> nn.Module:
    pruner = build_pruner(model, example, PruneSpec(**spec), num_classes=num_classes)
    prune_step(pruner, model, example)
    return model


@pytest.mark.slow
def test_prune_stage_removes_channels_recovers_and_exports(tiny_images, tmp_path):
    teacher = _teacher()
    ek.Trainer(ek.TrainConfig(epochs=2, lr=1e-2), quiet=True).fit(teacher, tiny_images)
    student = _convnet(32)
    stages = [
        ek.Distill(epochs=2, lr=1e-2),
        ek.Prune(ratio=0.5, epochs=3, lr=1e-2, features={"3": "0"}, feature_loss="cosine"),
    ]
    result = ek.Pipeline(
        teacher=teacher, student=student, data=tiny_images, stages=stages, out_dir=tmp_path, quiet=True
    ).run()
    pruned = result.model
    assert pruned is not student and student[0].out_channels == 32  # the input model is left whole
    assert pruned[0].out_channels == 16 and pruned[3].out_channels == 16 and pruned[8].out_features == 4
    row = result.report["ledger"][-1]
    assert row["params"] < count_params(student) and row["macs"] < count_macs(student, (1, 12, 12))
    assert row["details"]["steps"][0]["adapters"] == 1  # rebuilt for 16 channels, else training would fail
    assert row["test_accuracy"] > 0.8
    torch.export.export(pruned.eval(), (torch.zeros(1, 1, 12, 12),))
    reloaded = load_model(_convnet(32), tmp_path / "student.pt")
    assert torch.equal(reloaded.eval()(EXAMPLE), pruned.eval()(EXAMPLE))


def test_round_to_and_ignore_are_honoured():
    rounded = _prune(_convnet(32), ratio=0.4, round_to=8)
    assert rounded[0].out_channels % 8 == 0 and rounded[0].out_channels < 32
    kept = _prune(_convnet(32), ratio=0.5, round_to=None, ignore=["0", "8"])
    assert kept[0].out_channels == 32 and kept[3].out_channels == 16


def test_a_deep_cut_with_rounding_leaves_no_narrow_layer_whole():
    def narrow() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU(),
            nn.Conv2d(24, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 4),
        )  # fmt: skip

    # torch-pruning alone rounds 2 kept channels of 24 down to 0 and so skips the layer: each keeps 8
    deep = _prune(narrow(), ratio=0.9, round_to=8)
    assert [deep[i].out_channels for i in (0, 3, 6)] == [8, 8, 8]
    one = _prune(narrow(), ratio=0.0, round_to=8, per_layer={"3": 0.9})  # a single group's cut too
    assert [one[i].out_channels for i in (0, 3, 6)] == [16, 8, 64]
    shallow = _prune(narrow(), ratio=0.5, round_to=8)  # where rounding keeps channels, nothing changes
    assert [shallow[i].out_channels for i in (0, 3, 6)] == [8, 8, 32]


@pytest.mark.slow
def test_target_macs_and_taylor_importance(tiny_images, tmp_path):
    student = _convnet(32)
    full = count_macs(student, (1, 12, 12))
    result = ek.Pipeline(
        teacher=_teacher(),
        student=student,
        data=tiny_images,
        out_dir=tmp_path,
        quiet=True,
        stages=[ek.Prune(target_macs=0.4, importance="taylor", iterative_steps=2, epochs=1, round_to=None)],
    ).run()
    assert count_macs(result.model, (1, 12, 12)) <= 0.4 * full
    assert len(result.report["ledger"][-1]["details"]["steps"]) == 2


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ratio": 1.0}, r"ratio: must be in \[0, 1\), got 1.0"),
    ({"ratio": -0.1}, r"ratio: must be in \[0, 1\), got -0.1"),
    ({"target_macs": 1.5}, "target_macs: must be a fraction"),
    ({"importance": "random"}, "importance: must be one of bn_scale, fpgm, l1, l2, lamp, taylor"),
])  # fmt: skip
def test_bad_prune_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ek.Prune(**kwargs)


def test_unknown_ignore_name_lists_the_nearest():
    with pytest.raises(ConfigError, match="ignore module 'classifer' does not exist; nearest valid names: "):
        _prune(_convnet(), ignore=["classifer"])


class _HardCoded(nn.Module):
    """Reshapes with a fixed channel count: traceable, but broken by pruning."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.squash = _Squash()
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(self.squash(self.conv(x)))


class _Squash(nn.Module):
    def forward(self, x):
        return x.view(x.shape[0], 16, 144).mean(-1)


def test_untraceable_module_is_named_and_the_input_model_untouched(tiny_images, tmp_path):
    student = _HardCoded()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    pipe = ek.Pipeline(
        teacher=_teacher(),
        student=student,
        data=tiny_images,
        stages=[ek.Prune(ratio=0.5, round_to=None)],
        out_dir=tmp_path,
        quiet=True,
    )
    with pytest.raises(PruningError, match="module 'squash' \\(_Squash\\).*add 'squash' to ignore"):
        pipe.run()
    assert student.conv.out_channels == 16
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in before.items())


def test_vit_heads_and_head_dims_stay_consistent():
    x = torch.zeros(2, 1, 28, 28)
    vit = _prune(ek.models.get("mnist-vit"), x, num_classes=10, ratio=0.5, round_to=None)
    assert vit(x).shape == (2, 10)
    for block in vit.blocks:
        attention = block.attn
        inner = attention.num_heads * attention.head_dim
        assert attention.qkv.out_features == 3 * inner and attention.proj.in_features == inner
        assert attention.head_dim < 16 and attention.num_heads == 4
    torch.export.export(vit.eval(), (torch.zeros(1, 1, 28, 28),))


def test_model_file_round_trip_is_weights_only(tmp_path):
    vit = _prune(ek.models.get("mnist-vit"), torch.zeros(2, 1, 28, 28), num_classes=10, ratio=0.5, round_to=None)
    assert count_params(vit) < count_params(ek.models.get("mnist-vit"))
    save_model(vit, tmp_path / "vit.pt")
    payload = torch.load(tmp_path / "vit.pt", weights_only=True)
    assert payload["format"] == "edgekd-model-v1"
    rebuilt = load_model(ek.models.get("mnist-vit"), tmp_path / "vit.pt")
    x = torch.randn(3, 1, 28, 28)
    assert torch.allclose(rebuilt.eval()(x), vit.eval()(x))
    assert rebuilt.blocks[0].attn.head_dim == vit.blocks[0].attn.head_dim
    plain = tmp_path / "plain.pt"
    torch.save(ek.models.get("mnist-vit").state_dict(), plain)
    assert isinstance(load_model(ek.models.get("mnist-vit"), plain), nn.Module)  # plain state dicts load too
    with pytest.raises(CheckpointError, match="another architecture: no module 'patch_embed'"):
        load_model(_convnet(), tmp_path / "vit.pt")


def test_sensitivity_reports_each_layer_group_and_writes_table_and_plot(tiny_images, tmp_path):
    from edgekd.prune.sensitivity import layer_sensitivity, to_markdown, write_report

    model = _convnet(16)
    ek.Trainer(ek.TrainConfig(epochs=2, lr=1e-2), quiet=True).fit(model, tiny_images)
    rows = layer_sensitivity(model, tiny_images, ratios=(0.5, 0.75))
    assert {r.layer for r in rows} == {"0", "3"} and len(rows) == 4  # the head "8" is ignored by default
    by_key = {(r.layer, r.ratio): r for r in rows}
    assert by_key[("0", 0.5)].channels == 16 and by_key[("0", 0.5)].channels_left == 8
    assert by_key[("3", 0.75)].channels_left == 4 and by_key[("3", 0.75)].macs_fraction < 1.0
    assert "| 0 | 16 |" in to_markdown(rows)
    files = write_report(rows, tmp_path)
    assert files["plot"].read_bytes()[:4] == b"\x89PNG"


def test_prune_sensitivity_cli(tmp_path, capsys):
    from edgekd.cli.main import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "data: digits\nteacher: {model: hinton-teacher, args: {in_features: 64}}\n"
        "student: {model: hinton-student, args: {in_features: 64}}\nstages: [{prune: {ignore: [classifier]}}]\n"
    )
    assert main(["prune-sensitivity", str(recipe), "--ratios", "0.5", "--out-dir", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "| features.2 | 800 |" in out and (tmp_path / "s" / "sensitivity.png").is_file()
    assert main(["prune-sensitivity", str(recipe), "--ratios", "1.5"]) == 2
    assert "--ratios: each ratio must be in (0, 1)" in capsys.readouterr().err
