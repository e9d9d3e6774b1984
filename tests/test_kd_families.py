"""Mutual, adversarial and born-again distillation: each learns, each keeps its helpers out of the
exported student, each is usable by name in recipes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import edgekd as ek
from edgekd.distill.adversarial import AdversarialObjective, discriminator
from edgekd.distill.mutual import MutualObjective, mutual_term
from edgekd.distill.objective import DistillObjective
from edgekd.errors import ConfigError
from edgekd.recipe import schema as recipe
from edgekd.stage import stage_class


def _net(width: int = 2) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(width * 144, 4))


@pytest.fixture(scope="module")
def teacher(tiny_images):
    torch.manual_seed(0)
    model = _net(8)
    ek.Trainer(ek.TrainConfig(epochs=2, lr=1e-2), quiet=True).fit(model, tiny_images)
    return model.eval()


def _batch(data):
    x, y, index = next(iter(data.train))
    return x, y, index


def test_the_mutual_term_is_zero_between_equal_members_and_only_moves_its_own_member():
    own = torch.randn(8, 4, requires_grad=True)
    other = torch.randn(8, 4, requires_grad=True)
    assert mutual_term(own, [own.detach().clone()], 3.0).item() == pytest.approx(0.0, abs=1e-6)
    term = mutual_term(own, [other], 3.0)
    assert term.item() > 0
    term.backward()
    assert own.grad is not None and other.grad is None  # the other member is a target, not trained by this term


def test_each_cohort_member_gets_the_gradient_of_its_own_loss_only(teacher, tiny_images):
    torch.manual_seed(1)
    student, peer = _net(), _net()
    x, y, _ = _batch(tiny_images)
    base = DistillObjective([teacher], student, x[:2], alpha=0.5, temperature=2.0)
    loss, _ = MutualObjective(base, nn.ModuleList([peer]), temperature=2.0, weight=0.7)(student, x, y, None)
    loss.backward()
    got = [p.grad.clone() for p in list(student.parameters()) + list(peer.parameters())]
    student.zero_grad(), peer.zero_grad()
    student_logits, peer_logits = student(x), peer(x)
    own_student, _, _ = base.step(student, x, y, None)
    expected = own_student + 0.7 * mutual_term(student_logits, [peer_logits], 2.0)
    expected = expected + F.cross_entropy(peer_logits, y) + 0.7 * mutual_term(peer_logits, [student_logits], 2.0)
    expected.backward()
    for a, b in zip(got, [p.grad for p in list(student.parameters()) + list(peer.parameters())]):
        assert torch.allclose(a, b, atol=1e-6)


def test_mutual_learning_trains_the_peers_and_leaves_the_teacher_and_the_student_clean(teacher, tiny_images, tmp_path):
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    stage = ek.MutualDistill(epochs=2, lr=1e-2, peers=1, teacher_learns=True)
    result = ek.Pipeline(teacher=teacher, student=_net(), data=tiny_images, stages=[stage],
                         out_dir=tmp_path / "run", quiet=True).run()  # fmt: skip
    row = result.report["ledger"][-1]
    assert row["test_accuracy"] > 0.8 and row["details"]["cohort"] == 3
    assert "mutual learning with 1 peer + the teacher learning" in row["notes"]
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # a copy learned, not it
    assert set(result.model.state_dict()) == set(_net().state_dict())  # no peer rides along into export
    last = torch.load(tmp_path / "run" / "checkpoints" / "01-mutual" / "last.pt", weights_only=True)
    assert any(key.startswith("peers.1.") for key in last["extra"])  # the learning teacher resumes too


def test_the_discriminator_learns_and_the_students_step_does_not_move_it(teacher, tiny_images):
    student = _net()
    x, y, _ = _batch(tiny_images)
    critic = discriminator(4, 16)
    start = [p.clone() for p in critic.parameters()]
    objective = AdversarialObjective(DistillObjective([teacher], student, x[:2]), critic, 1e-2, 2.0, 0.5)
    loss, logits = objective(student, x, y, None)
    assert any(not torch.equal(a, b) for a, b in zip(start, critic.parameters()))  # its own step ran
    assert all(p.requires_grad for p in critic.parameters())
    loss.backward()
    assert all(p.grad is None for p in critic.parameters())  # the student's loss leaves it alone
    assert all(p.grad is not None for p in student.parameters())
    plain, _ = DistillObjective([teacher], student, x[:2])(student, x, y, None)
    assert loss.item() > plain.item()  # the fool-the-discriminator term is in the loss


def test_adversarial_distillation_in_a_pipeline(teacher, tiny_images, tmp_path):
    stage = ek.AdversarialDistill(epochs=2, lr=1e-2, adversarial_weight=0.1)
    result = ek.Pipeline(teacher=teacher, student=_net(), data=tiny_images, stages=[stage],
                         out_dir=tmp_path / "run", quiet=True).run()  # fmt: skip
    row = result.report["ledger"][-1]
    assert row["test_accuracy"] > 0.8 and 0 < row["details"]["discriminator_loss"] < 10
    assert set(result.model.state_dict()) == set(_net().state_dict())


def test_born_again_trains_fresh_generations_and_keeps_the_best_when_asked(teacher, tiny_images, tmp_path):
    stages = [ek.Train(epochs=1, lr=1e-2), ek.BornAgain(generations=2, epochs=2, lr=1e-2, keep="best")]
    result = ek.Pipeline(teacher=teacher, student=_net(), data=tiny_images, stages=stages,
                         out_dir=tmp_path / "run", quiet=True).run()  # fmt: skip
    details = result.report["ledger"][-1]["details"]
    scores = details["validation_accuracy"]
    assert len(scores) == 3 and details["kept_generation"] == scores.index(max(scores))
    assert ek.evaluate(result.model, tiny_images.val) == pytest.approx(max(scores))
    for generation in (1, 2):
        assert (tmp_path / "run" / "checkpoints" / "02-born_again" / f"generation-{generation}" / "model.pt").is_file()
    assert "generation_2" in details and "history" in details["generation_2"]


def test_a_finished_generation_is_not_trained_again(teacher, tiny_images, tmp_path, monkeypatch):
    from edgekd.distill import born_again

    calls = []
    real = born_again.train_with_teacher
    monkeypatch.setattr(born_again, "train_with_teacher", lambda *a, **k: calls.append(k["desc"]) or real(*a, **k))
    ctx = ek.RunContext([teacher], None, tiny_images, tmp_path, torch.device("cpu"), 0, True, stage_dir=tmp_path / "s")
    stage = ek.BornAgain(generations=2, epochs=1, lr=1e-2)
    stage.run(ctx, _net())
    assert calls == ["born_again 1", "born_again 2"]
    (tmp_path / "s" / "generation-2" / "model.pt").unlink()
    calls.clear()
    stage.run(ctx, _net())
    assert calls == ["born_again 2"]


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({"mutual": {"peers": 0}}, "stages[0].mutual.peers: the cohort needs a member beside the student"),
        ({"adversarial": {"adversarial_weight": -1}}, "adversarial_weight: must be >= 0, got -1"),
        ({"born_again": {"generations": 0}}, "generations: must be an integer >= 1, got 0"),
        ({"born_again": {"keep": "first"}}, "keep: must be 'last' or 'best', got 'first'"),
    ],
)
def test_recipes_name_the_families_and_their_bad_options(stage, message):
    base = {"data": "digits", "teacher": "hinton-teacher", "student": "hinton-student"}
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        recipe.parse({**base, "stages": [stage]})
    good = recipe.parse({**base, "stages": ["mutual", "adversarial", {"born_again": {"generations": 1}}]})
    assert [type(s).__name__ for s in good.stages] == ["MutualDistill", "AdversarialDistill", "BornAgain"]
    assert stage_class("mutual") is ek.MutualDistill


def test_a_fresh_copy_has_the_architecture_and_new_weights_or_says_why_not():
    from edgekd.utils.fresh import fresh_copy

    original = _net()
    twin, again = fresh_copy(original, 3), fresh_copy(original, 3)
    assert set(twin.state_dict()) == set(original.state_dict())
    assert not torch.equal(twin[0].weight, original[0].weight)
    assert torch.equal(twin[0].weight, again[0].weight)  # seeded: a resumed run draws the same generation

    class Frozen(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))

    with pytest.raises(ConfigError, match="Frozen: no layer has reset_parameters"):
        fresh_copy(Frozen(), 0)


class PatchViT(nn.Module):
    """A one-block transformer on 12x12 images: 3x3 patches (a 4x4 grid) after a class token."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.patches = nn.Conv2d(1, dim, 3, stride=3)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.block = nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(dim, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        tokens = self.block(torch.cat([self.cls.expand(len(x), -1, -1), tokens], 1))
        return self.head(tokens[:, 0])


def test_a_vit_teacher_teaches_a_cnn_student_through_its_patch_grid(tiny_images, tmp_path):
    from edgekd.distill.taps import build_adapters, tokens_to_grid

    tokens = torch.arange(2 * 17 * 3, dtype=torch.float32).reshape(2, 17, 3)
    grid = tokens_to_grid(tokens)
    assert grid.shape == (2, 3, 4, 4) and torch.equal(grid[1, :, 0, 1], tokens[1, 2])  # class token left out
    torch.manual_seed(0)
    vit = PatchViT()
    ek.Trainer(ek.TrainConfig(epochs=3, lr=3e-3), quiet=True).fit(vit, tiny_images)
    x, _, _ = _batch(tiny_images)
    (adapter,) = build_adapters(_net(), vit, {"1": "block"}, x[:2]).values()
    assert adapter.teacher_tokens and adapter.size == (4, 4)  # 12x12 student map pooled to the 4x4 grid
    stage = ek.Distill(epochs=2, lr=1e-2, features={"1": "block"}, feature_loss="mse")
    result = ek.Pipeline(teacher=vit, student=_net(), data=tiny_images, stages=[stage],
                         out_dir=tmp_path / "run", quiet=True).run()  # fmt: skip
    row = result.report["ledger"][-1]
    assert row["test_accuracy"] > 0.8 and row["details"]["adapters"] == 1
    with pytest.raises(ConfigError, match=r"cannot match a student feature of shape \(2, 288\)"):
        build_adapters(_net(), vit, {"2": "block"}, x[:2])  # flattened student against tokens: no grid to share


def test_self_distillation_heads_learn_from_labels_and_the_final_head_and_are_dropped(tiny_images, tmp_path):
    from edgekd.distill.self_distill import AuxiliaryHead, SelfDistillObjective
    from edgekd.distill.taps import FeatureTaps

    student = _net()
    x, y, _ = _batch(tiny_images)
    heads = nn.ModuleDict({"0": AuxiliaryHead(torch.Size((2, 2, 12, 12)), 4, "0")})
    taps = FeatureTaps(student, ["0"], "heads: student")
    base = DistillObjective([_net(8).eval()], student, x[:2], alpha=1.0)
    loss, _ = SelfDistillObjective(base, taps, heads, temperature=3.0, weight=0.5)(student, x, y, None)
    plain, _ = base(student, x, y, None)
    assert loss.item() > plain.item()
    loss.backward()
    assert all(p.grad is not None for p in heads.parameters())
    taps.remove()
    stage = ek.SelfDistill(heads=["1"], epochs=2, lr=1e-2, alpha=1.0)
    result = ek.Pipeline(teacher=_net(8), student=_net(), data=tiny_images, stages=[stage],
                         out_dir=tmp_path / "run", quiet=True).run()  # fmt: skip
    row = result.report["ledger"][-1]
    assert row["test_accuracy"] > 0.8 and "1 auxiliary heads on 1 (dropped)" in row["notes"]
    assert set(result.model.state_dict()) == set(_net().state_dict())
    hooks = [h for m in result.model.modules() for h in m._forward_hooks.values()]
    assert [getattr(h, "edgekd_selector", None) for h in hooks] == ["auto"]  # the tap is gone, the selector stays
    with pytest.raises(ConfigError, match="heads: student module 'blocks.9' does not exist"):
        ek.Pipeline(teacher=_net(8), student=_net(), data=tiny_images, quiet=True, out_dir=tmp_path / "bad",
                    stages=[ek.SelfDistill(heads=["blocks.9"])]).preflight()  # fmt: skip
    with pytest.raises(ConfigError, match="heads: name at least one student module"):
        ek.SelfDistill()
