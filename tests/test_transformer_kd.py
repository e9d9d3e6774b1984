"""Transformer students cut from their teacher, block-mapped feature KD and attention relations."""

from __future__ import annotations

import json

import pytest
import torch
from text_fixtures import sentiment_texts, tiny_bert, tokenizer

import edgekd as ek
from edgekd.distill.layer_map import block_pairs, layer_pairs
from edgekd.distill.losses import attention_relation, get_feature_loss, relation_heads
from edgekd.distill.taps import Adapter, probe_shapes
from edgekd.errors import ConfigError
from edgekd.formats import format_of
from edgekd.outputs import logits_of


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> ek.data.DataBundle:
    texts, labels = sentiment_texts(480)
    return ek.data.text(texts, labels, tokenizer(tmp_path_factory.mktemp("tok")), max_length=14, batch_size=32)


@pytest.fixture(scope="module")
def bert_teacher(texts):
    teacher = tiny_bert(4, 32)
    ek.Trainer(ek.TrainConfig(epochs=6, lr=2e-3), quiet=True, seed=0).fit(teacher, texts)
    return teacher.eval()


def test_a_student_cut_from_the_teacher_keeps_the_chosen_blocks_weights(bert_teacher, texts):
    student = ek.models.from_teacher_layers(bert_teacher, [1, 3])
    assert student.config.num_hidden_layers == 2 and len(bert_teacher.bert.encoder.layer) == 4
    for kept, source in zip(student.bert.encoder.layer, [1, 3]):
        original = bert_teacher.bert.encoder.layer[source].state_dict()
        for name, tensor in kept.state_dict().items():
            assert torch.equal(tensor, original[name]), name
    assert torch.equal(student.classifier.weight, bert_teacher.classifier.weight)
    assert student.classifier.weight.data_ptr() != bert_teacher.classifier.weight.data_ptr()  # a copy
    assert ek.evaluate(student.eval(), texts.test) > 0.0
    halves = [ek.models.from_teacher_layers(tiny_bert(n), "every_other").bert.encoder.layer for n in (4, 6)]
    assert [len(blocks) for blocks in halves] == [2, 3]


@pytest.mark.parametrize(
    ("layers", "message"),
    [([0, 4], r"block indices in 0..3 \(the teacher has 4\)"), ([1, 1], "each block can be kept once"),
     ([], "block indices"), ("half", "'every_other'")],
)  # fmt: skip
def test_bad_layer_choices_are_named(layers, message):
    with pytest.raises(ConfigError, match=message):
        ek.models.from_teacher_layers(tiny_bert(4), layers)


def test_a_model_without_blocks_cannot_be_cut():
    with pytest.raises(ConfigError, match="no list of repeated blocks"):
        ek.models.from_teacher_layers(torch.nn.Linear(3, 2), [0])


def test_a_smaller_configuration_of_the_teachers_architecture():
    teacher = tiny_bert(4, 32)
    student = ek.models.smaller(teacher, num_hidden_layers=2, hidden_size=16, num_attention_heads=2,
                                intermediate_size=32)  # fmt: skip
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert type(student) is type(teacher) and count(student) < count(teacher) / 2
    with pytest.raises(ConfigError, match="has no option hidden_width"):
        ek.models.smaller(teacher, hidden_width=8)
    with pytest.raises(ConfigError, match="no Hugging Face config"):
        ek.models.smaller(torch.nn.Linear(2, 2), num_hidden_layers=1)


def test_block_maps_follow_tinybert_and_minilm():
    assert block_pairs(2, 4, "uniform") == {0: 1, 1: 3}
    assert block_pairs(3, 6, "uniform") == {0: 1, 1: 3, 2: 5}
    assert block_pairs(3, 4, "uniform") == {0: 0, 1: 1, 2: 3}
    assert block_pairs(2, 6, "last") == {1: 5}
    assert layer_pairs(tiny_bert(2), tiny_bert(4), "uniform", ["", "attention.self.query"]) == {
        "bert.encoder.layer.0": "bert.encoder.layer.1",
        "bert.encoder.layer.0.attention.self.query": "bert.encoder.layer.1.attention.self.query",
        "bert.encoder.layer.1": "bert.encoder.layer.3",
        "bert.encoder.layer.1.attention.self.query": "bert.encoder.layer.3.attention.self.query",
    }
    with pytest.raises(ConfigError, match=r"layer_map: 0 -> 7 is outside the blocks \(student 0..1, teacher 0..3\)"):
        block_pairs(2, 4, {0: 7})
    with pytest.raises(ConfigError, match="layer_map: must be one of uniform, last"):
        block_pairs(2, 4, "every")


def test_attention_relations_compare_token_relations_across_widths():
    torch.manual_seed(0)
    teacher = torch.randn(3, 7, 24)
    assert attention_relation(teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(3, 7, 16, requires_grad=True)
    loss = attention_relation(student, teacher)
    assert loss.item() > 0.01 and relation_heads(16, 24) == 8
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    # a student whose tokens relate as the teacher's do (a width-preserving rotation of the same tokens)
    rotation = torch.linalg.qr(torch.randn(24, 24))[0]
    assert attention_relation(teacher @ rotation, teacher).item() < loss.item()
    grid = torch.randn(2, 8, 3, 3)  # a CNN map's positions are its tokens
    assert attention_relation(grid, torch.randn(2, 9, 12)).item() > 0
    with pytest.raises(ConfigError, match="same tokens on both sides"):
        attention_relation(torch.randn(2, 5, 8), torch.randn(2, 6, 8))
    assert get_feature_loss("attention_relation") is attention_relation


def test_token_features_of_different_widths_get_a_linear_adapter():
    adapter = Adapter(torch.Size((2, 7, 16)), torch.Size((2, 7, 32)))
    assert isinstance(adapter.project, torch.nn.Linear) and adapter(torch.randn(2, 7, 16)).shape == (2, 7, 32)
    with pytest.raises(ConfigError, match="7 tokens cannot be matched to a teacher feature of 9 tokens"):
        Adapter(torch.Size((2, 7, 16)), torch.Size((2, 9, 32)))


@pytest.mark.slow
def test_distilling_a_cut_bert_with_mapped_blocks_and_attention_relations_then_int8_files(bert_teacher, texts,
                                                                                         tmp_path):  # fmt: skip
    student = ek.models.from_teacher_layers(bert_teacher, [1, 3])
    # scramble the student's blocks so there is something to distil back
    with torch.no_grad():
        for p in student.bert.encoder.layer.parameters():
            p.add_(0.5 * torch.randn_like(p))
    parts = ["attention.self.query", "attention.self.key", "attention.self.value"]
    pairs = layer_pairs(student, bert_teacher, "uniform", parts)
    sample = next(iter(texts.val))[0]

    def relation_gap(model) -> float:
        from edgekd.distill.taps import FeatureTaps
        from edgekd.utils.modes import inference

        s_taps = FeatureTaps(model, list(pairs), "student")
        t_taps = FeatureTaps(bert_teacher, list(pairs.values()), "teacher")
        with inference(model), inference(bert_teacher):
            model(**sample), bert_teacher(**sample)
        s, t = s_taps.pop(), t_taps.pop()
        s_taps.remove(), t_taps.remove()
        return sum(attention_relation(s[k], t[v]).item() for k, v in pairs.items())

    before = relation_gap(student)
    stages = [ek.Distill(epochs=3, lr=2e-3, layer_map="uniform", layer_parts=parts, feature_loss="attention_relation"),
              ek.Quantize(epochs=1, lr=1e-4)]  # fmt: skip
    result = ek.Pipeline(bert_teacher, student, texts, stages, export=["onnx", "tflite"], out_dir=tmp_path / "run",
                         quiet=True, device="cpu").run()  # fmt: skip
    distilled = ek.modelfile.load_model(ek.models.from_teacher_layers(bert_teacher, [1, 3]),
                                        result.run_dir / "checkpoints" / "01-distill" / "model.pt")  # fmt: skip
    assert relation_gap(distilled) < 0.5 * before
    ledger = {row["stage"]: row for row in result.report["ledger"]}
    assert "attention_relation on blocks mapped uniform" in ledger["distill"]["notes"]
    assert ledger["onnx"]["test_accuracy"] >= 0.9 and ledger["tflite"]["test_accuracy"] >= 0.9
    for fmt, path in result.artifacts.items():
        manifest = json.loads(path.with_name(path.name + ".json").read_text())
        tok = manifest["tokenizer"]
        assert tok["sequence_length"] == 14 and tok["lowercase"] is True and tok["folder"] == "tokenizer", fmt
        assert "saved_to" not in tok and [i["name"] for i in manifest["inputs"]] == ["input_ids", "attention_mask"]
        from edgekd.export.manifest import sha256_of

        for name, digest in tok["files"].items():
            assert sha256_of(path.parent / "tokenizer" / name) == digest
        assert "vocab.txt" in tok["files"] or "tokenizer.json" in tok["files"]


def test_recipes_build_a_student_from_a_models_blocks(tmp_path):
    from edgekd.recipe import schema as recipe

    path = tmp_path / "r.yaml"
    path.write_text("data: digits\nteacher: {model: 'text_fixtures:tiny_bert', args: {layers: 4}}\n"
                    "student: {model: layers-of, args: {model: 'text_fixtures:tiny_bert', args: {layers: 4}, "
                    "layers: [0, 3]}}\nstages: [{distill: {layer_map: uniform, feature_loss: cosine}}]\n")  # fmt: skip
    loaded = recipe.load(path)
    student = recipe.build_model(loaded.student, "student")
    assert len(student.bert.encoder.layer) == 2 and loaded.stages[0].layer_map == "uniform"
    path.write_text("data: digits\nteacher: mnist-resnet\nstudent: mnist-mobilenet\n"
                    "stages: [{distill: {layer_map: {0: 9}}}]\n")  # fmt: skip
    loaded = recipe.load(path)
    with pytest.raises(ConfigError, match="layer_map"):
        loaded.stages[0].validate([ek.models.get("mnist-resnet")], ek.models.get("mnist-mobilenet"))


def test_probe_reads_hugging_face_block_outputs(texts):
    shapes = probe_shapes(tiny_bert(2), ["bert.encoder.layer.1"], next(iter(texts.val))[0], "student")
    assert shapes["bert.encoder.layer.1"][1:] == (14, 32)


def test_pruning_a_bert_removes_whole_heads_and_ffn_neurons_and_the_file_reloads(bert_teacher, texts, tmp_path):
    from edgekd.models.files import load_model, save_model
    from edgekd.prune.engine import transformer_layout

    student = ek.models.from_teacher_layers(bert_teacher, [1, 3])
    result = ek.Pipeline(bert_teacher, student, texts, [ek.Prune(ratio=0.5, epochs=0, round_to=None)],
                         out_dir=tmp_path / "run", quiet=True, device="cpu").run()  # fmt: skip
    pruned = result.model
    assert transformer_layout(student) == {"heads": [4, 4], "ffn": [64, 64]}
    assert transformer_layout(pruned) == {"heads": [2, 2], "ffn": [32, 32]}
    attention = pruned.bert.encoder.layer[0].attention.self
    assert attention.attention_head_size == 8 and attention.query.out_features == 16  # head width kept
    assert pruned.bert.embeddings.word_embeddings.embedding_dim == 32  # the residual width stays
    assert pruned.config.intermediate_size == 32
    prune_row = next(row for row in result.report["ledger"] if row["stage"] == "prune")
    assert prune_row["details"]["transformer"]["after"] == {"heads": [2, 2], "ffn": [32, 32]}
    sample = next(iter(texts.test))[0]
    save_model(pruned, tmp_path / "pruned.pt")
    reloaded = load_model(ek.models.from_teacher_layers(tiny_bert(4, 32), [1, 3]), tmp_path / "pruned.pt").eval()
    with torch.no_grad():
        assert torch.allclose(logits_of(reloaded(**sample)), logits_of(pruned.eval()(**sample)), atol=1e-6)


def test_distilbert_attention_is_pruned_by_whole_heads_too(tmp_path):
    import numpy as np
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    from edgekd.models.files import load_model, save_model
    from edgekd.prune.engine import transformer_layout

    def distilbert():
        torch.manual_seed(0)
        config = DistilBertConfig(vocab_size=40, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                  max_position_embeddings=32, dropout=0.0, attention_dropout=0.0)  # fmt: skip
        return DistilBertForSequenceClassification(config).eval()

    model = distilbert()
    inputs = {"input_ids": torch.randint(5, 40, (64, 12)).numpy(), "attention_mask": np.ones((64, 12), np.int64)}
    labels = np.random.default_rng(0).integers(0, 2, 64)
    data = ek.data.from_named_arrays(inputs, labels, inputs, labels, val_fraction=0.25, batch_size=16)
    assert transformer_layout(model) == {"heads": [4, 4], "ffn": [64, 64]}
    result = ek.Pipeline(distilbert(), model, data, [ek.Prune(ratio=0.5, epochs=0, round_to=None)],
                         out_dir=tmp_path / "run", quiet=True, device="cpu").run()  # fmt: skip
    pruned = result.model
    assert transformer_layout(pruned) == {"heads": [2, 2], "ffn": [32, 32]}
    attention = pruned.distilbert.transformer.layer[0].attention
    assert attention.q_lin.out_features == 16 and attention.attention_head_size == 8
    assert pruned.config.hidden_dim == 32
    sample = next(iter(data.val))[0]
    save_model(pruned, tmp_path / "pruned.pt")
    reloaded = load_model(distilbert(), tmp_path / "pruned.pt").eval()
    with torch.no_grad():
        assert torch.allclose(logits_of(reloaded(**sample)), logits_of(pruned.eval()(**sample)), atol=1e-6)


def test_trimming_the_vocabulary_keeps_the_used_rows_and_maps_the_rest_to_unknown(bert_teacher, texts, tmp_path):
    from edgekd.models.files import load_model, save_model
    from edgekd.prune.vocabulary import TrimmedEmbedding, trim_vocabulary, used_token_ids

    model = ek.models.from_teacher_layers(bert_teacher, [1, 3]).eval()
    reference = ek.models.from_teacher_layers(bert_teacher, [1, 3]).eval()
    seen = used_token_ids(texts.train)
    keep = seen[seen != 9]  # drop one word the data uses, to see it read as unknown
    counts = trim_vocabulary(model, keep, unknown_id=1)
    assert isinstance(model.bert.embeddings.word_embeddings, TrimmedEmbedding)
    assert counts["vocabulary"] == 32 and counts["kept"] == len(keep) + (1 not in keep.tolist())
    ids = torch.tensor([[2, 5, 9, 3]])
    as_unknown = torch.tensor([[2, 5, 1, 3]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        assert torch.allclose(logits_of(model(input_ids=ids, attention_mask=mask)),
                              logits_of(reference(input_ids=as_unknown, attention_mask=mask)), atol=1e-6)  # fmt: skip
    save_model(model, tmp_path / "trimmed.pt")
    reloaded = load_model(ek.models.from_teacher_layers(tiny_bert(4, 32), [1, 3]), tmp_path / "trimmed.pt").eval()
    with torch.no_grad():
        assert torch.equal(logits_of(reloaded(input_ids=ids, attention_mask=mask)),
                           logits_of(model(input_ids=ids, attention_mask=mask)))  # fmt: skip
    with pytest.raises(ConfigError, match="trimmed already"):
        trim_vocabulary(model, keep, unknown_id=1)
    with pytest.raises(ConfigError, match="no token embedding"):
        trim_vocabulary(torch.nn.Linear(2, 2), keep, unknown_id=1)


def test_a_frequency_cutoff_keeps_only_the_tokens_seen_often_enough(texts):
    from collections import Counter

    from edgekd.inputs import split_batch
    from edgekd.prune.vocabulary import token_counts, used_token_ids

    seen = Counter(i for batch in texts.train for i in split_batch(batch)[0]["input_ids"].flatten().tolist())
    counts = token_counts(texts.train)
    assert {i: int(c) for i, c in enumerate(counts) if c} == dict(seen)
    for cutoff in (1, 2, 5):
        kept = used_token_ids(texts.train, min_count=cutoff).tolist()
        assert kept == sorted(i for i, c in seen.items() if c >= cutoff)
    with pytest.raises(ConfigError, match="min_count: must be an integer >= 1, got 0"):
        ek.TrimVocabulary(min_count=0)


def test_the_trim_stage_in_a_pipeline_exports_a_file_fed_with_the_original_ids(bert_teacher, texts, tmp_path):
    student = ek.models.from_teacher_layers(bert_teacher, [1, 3])
    before = sum(p.numel() for p in student.parameters())
    result = ek.Pipeline(bert_teacher, student, texts, [ek.TrimVocabulary()], export=["onnx"],
                         out_dir=tmp_path / "run", quiet=True, device="cpu").run()  # fmt: skip
    row = next(r for r in result.report["ledger"] if r["stage"] == "trim_vocab")
    assert row["params"] < before and "kept 29 of 32 tokens" in row["notes"]
    onnx_row = next(r for r in result.report["ledger"] if r["stage"] == "onnx")
    assert onnx_row["test_accuracy"] == pytest.approx(row["test_accuracy"])


@pytest.mark.slow
def test_a_dynamic_sequence_length_reaches_the_int8_onnx_file_and_tflite_says_it_is_fixed(bert_teacher, tmp_path):
    import numpy as np
    import onnxruntime as ort

    sentences, labels = sentiment_texts(240, seed=3)
    data = ek.data.text(sentences, labels, tokenizer(tmp_path / "tok"), max_length=14, batch_size=32,
                        sequence="dynamic")  # fmt: skip
    assert data.signature.describe()[0] == {
        "name": "input_ids", "shape": ["batch", "sequence"], "dtype": "int64", "max_shape": [14]
    }  # fmt: skip
    student = ek.models.from_teacher_layers(bert_teacher, [1, 3])
    from edgekd.prune.engine import model_cost

    layer_macs = model_cost(student, data.signature)["macs"]  # its linear layers, at the longest sequence
    linear_weights = sum(m.weight.numel() for m in student.modules() if isinstance(m, torch.nn.Linear))
    stages = [ek.Quantize(epochs=0, calibration_batches=2)]
    result = ek.Pipeline(bert_teacher, student, data, stages, export=["onnx", "tflite"], out_dir=tmp_path / "run",
                         quiet=True, device="cpu").run()  # fmt: skip
    for fmt in ("onnx", "tflite"):  # the estimates count the QDQ file's transposed weights and attention's products
        cost = format_of(result.artifacts[fmt]).cost(result.artifacts[fmt])
        assert cost["int8"] and layer_macs <= cost["macs"] <= 1.2 * layer_macs, (fmt, cost, layer_macs)
        assert cost["bytes"] >= linear_weights, (fmt, cost)
    onnx_manifest = json.loads((tmp_path / "run/artifacts/model.onnx.json").read_text())
    assert [i["shape"] for i in onnx_manifest["inputs"]] == [["batch", "sequence"]] * 2
    assert onnx_manifest["parity"]["shorter_inputs"]["shapes"] == {"input_ids": [7], "attention_mask": [7]}
    assert onnx_manifest["tokenizer"]["sequence"] == "dynamic"
    session = ort.InferenceSession(str(result.artifacts["onnx"]))
    reference = result.model  # the INT8 graph, free in its sequence axis too
    ids = np.asarray(data.test.x["input_ids"][:4])
    mask = np.asarray(data.test.x["attention_mask"][:4])
    for length in (1, 5, 14):
        feed = {"input_ids": ids[:, :length], "attention_mask": mask[:, :length]}
        got = session.run(None, feed)[0]
        expected = logits_of(reference(**{k: torch.from_numpy(v) for k, v in feed.items()}))
        assert got.shape == (4, 2)
        np.testing.assert_allclose(got, expected.detach().numpy(), atol=0.05)
    from edgekd.formats import max_input_shapes

    assert max_input_shapes(result.artifacts["onnx"]) == {"input_ids": [14], "attention_mask": [14]}  # benched at 14
    tflite_manifest = json.loads((tmp_path / "run/artifacts/model.tflite.json").read_text())
    assert tflite_manifest["fixed_axes"] == {"input_ids": [14], "attention_mask": [14]}
    assert tflite_manifest["tokenizer"]["sequence"] == "fixed"
    assert [i["shape"] for i in tflite_manifest["inputs"]] == [[1, 14]] * 2


@pytest.mark.slow
def test_an_fp32_file_with_free_axes_named_by_hand(bert_teacher, texts, tmp_path):
    import onnxruntime as ort

    example = {name: tensor[:2] for name, tensor in next(iter(texts.val))[0].items()}
    free = {"input_ids": [0], "attention_mask": [0]}
    artifact = ek.export.to_onnx(bert_teacher, example, tmp_path / "t.onnx", free_axes=free)
    assert artifact.manifest["parity"]["shorter_inputs"]["passed"]
    session = ort.InferenceSession(str(artifact.path))
    assert [d for d in session.get_inputs()[0].shape] == ["batch", "sequence"]
    with pytest.raises(ValueError, match="no input named 'token_ids'"):
        texts.signature.with_free_axes({"token_ids": [0]})


@pytest.mark.slow
def test_a_recipe_cuts_its_student_from_the_trained_teacher_and_runs_on_a_text_file(tmp_path, capsys):
    from text_fixtures import tokenizer_folder

    from edgekd.cli.main import main

    texts, labels = sentiment_texts(300)
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in zip(texts, labels)))
    recipe_path = tmp_path / "text.yaml"
    recipe_path.write_text(f"""
data: {{source: text, path: {csv_path}, tokenizer: {tokenizer_folder(tmp_path / "tok")}, max_length: 14}}
teacher: {{model: 'text_fixtures:tiny_bert', args: {{layers: 4}}, pretrain: {{epochs: 6, lr: 0.002}}}}
student: {{model: teacher-layers, args: {{layers: [1, 3]}}}}
stages:
  - trim_vocab: {{}}
  - distill: {{epochs: 1, lr: 0.001, layer_map: last, feature_loss: attention_relation}}
export: [onnx]
out_dir: {tmp_path / "run"}
""")
    assert main(["run", str(recipe_path), "--quiet"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    ledger = {row["stage"]: row for row in report["ledger"]}
    assert ledger["student"]["test_accuracy"] >= 0.9  # cut from the trained teacher, not the untrained one
    assert ledger["onnx"]["test_accuracy"] >= 0.9 and (tmp_path / "run" / "artifacts" / "tokenizer").is_dir()
    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe_path.read_text().replace("args: {layers: [1, 3]}", "args: {blocks: [1, 3]}"))
    capsys.readouterr()
    assert main(["run", str(bad)]) == 2
    assert "student.args: unknown key 'blocks'; known: layers" in capsys.readouterr().err


def test_int8_embedding_rows_keep_their_values_within_half_a_step():
    from edgekd.quantize.embedding import int8_embedding_lookups, int8_rows

    class Tagger(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.words, self.places = torch.nn.Embedding(50, 16, padding_idx=0), torch.nn.Embedding(9, 16)
            with torch.no_grad():
                self.words.weight[3] *= 100  # one row far larger than the others: its scale is its own

        def forward(self, ids):
            return self.words(ids) + self.places(ids % 9)

    model = Tagger().eval()
    rows, scale = int8_rows(model.words.weight)
    assert rows.dtype == torch.int8 and scale.shape == (50, 1) and bool((rows[0] == 0).all())  # padding stays 0
    ids = torch.tensor([[0, 3, 7, 49]])
    graph = torch.export.export(model, (ids,)).module()
    assert int8_embedding_lookups(graph, ["words"]) == ["words"]  # "places" was not asked for
    error = (graph(ids) - model(ids)).abs()
    assert bool((error <= scale[ids] / 2 + 1e-6).all()) and float(error.max()) > 0
    assert sum(b.dtype == torch.int8 for b in graph.buffers()) == 1
    with pytest.raises(ConfigError, match="embeddings: must be one of int8, float, got 'int4'"):
        ek.Quantize(embeddings="int4")


@pytest.mark.slow
def test_int8_embedding_tables_shrink_both_files_and_pass_their_gates(tmp_path):
    import numpy as np
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=3000, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=16, num_labels=2)  # fmt: skip
    ids = np.random.default_rng(0).integers(5, 3000, (160, 12))
    inputs, labels = {"input_ids": ids, "attention_mask": np.ones_like(ids)}, (ids[:, 0] % 2).astype(np.int64)
    data = ek.data.from_named_arrays(inputs, labels, inputs, labels, val_fraction=0.2, batch_size=32)
    sizes, notes = {}, {}
    for mode in ("int8", "float"):
        torch.manual_seed(0)
        model = BertForSequenceClassification(config).eval()
        stages = [ek.Quantize(epochs=0, calibration_batches=2, embeddings=mode)]
        result = ek.Pipeline(model, model, data, stages, export=["onnx", "tflite"], out_dir=tmp_path / mode,
                             quiet=True, device="cpu").run()  # fmt: skip
        sizes[mode] = {fmt: path.stat().st_size for fmt, path in result.artifacts.items()}
        notes[mode] = next(r for r in result.report["ledger"] if r["stage"] == "quantize")["details"]
    tables = ["word_embeddings", "position_embeddings", "token_type_embeddings"]
    assert sorted(notes["int8"]["int8_embeddings"]) == sorted(f"bert.embeddings.{name}" for name in tables)
    assert notes["float"]["int8_embeddings"] == []
    for fmt in ("onnx", "tflite"):  # the 3000 x 64 table was three quarters of each file
        assert sizes["int8"][fmt] < 0.4 * sizes["float"][fmt], (fmt, sizes)
