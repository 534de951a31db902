"""Issue 22: prediction's fast path. The same windows as training, the same labels on ONNX Runtime as on
torch and as the path before (training's evaluation loop), the export made once per set of weights beside the
artefact, and torch when onnxruntime is missing."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from django.conf import settings
from transformers import AutoModelForTokenClassification, AutoTokenizer

from training.ml import inference
from training.ml.token_classification import TokenDocument, TokenPredictor, _predict_items, encode_document

LABELS = ["O", "B-PESSOA", "I-PESSOA", "B-LOCAL", "I-LOCAL"]


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    """A tagger with an untrained (seeded) head and windows of 32 sub-tokens: real logits, no training."""
    folder = tmp_path_factory.mktemp("tagger")
    torch.manual_seed(22)
    model = AutoModelForTokenClassification.from_pretrained(
        settings.DOCLOOP_BASE_MODEL, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(settings.DOCLOOP_BASE_MODEL).save_pretrained(folder)
    (folder / "docloop.json").write_text('{"max_length": 32}')
    return folder


def _document() -> TokenDocument:
    """Several windows: sentences, a line without a sentence end, a word longer than a window, a word of no
    sub-tokens, and words that split into several."""
    words, ends = [], []
    for i in range(40):
        sentence = ["O", "réu", "João", "Silva", "mora", "em", "Brasília", "desde", f"{1990 + i}", "."]
        words += sentence
        ends += [False] * (len(sentence) - 1) + [True]
    words += ["Anexo", "x" * 400, "-".join(["ab"] * 30), "\u200b", "Curitiba", "paralelepípedo", "inconstitucionalissimamente"]
    ends += [False, False, False, False, False, False, True]
    return TokenDocument(words=words, line_ends=ends)


def test_the_windows_are_the_ones_training_cuts(tagger):
    predictor = TokenPredictor(tagger, backend="torch")
    doc = _document()
    items = encode_document(predictor.tokenizer, doc, max_length=predictor.max_length)
    windows = predictor.windows(doc.words, doc.line_ends)
    assert len(windows) == len(items) > 10
    assert [(ids.tolist(), words.tolist()) for ids, words in windows] == [
        (item["input_ids"], item["word_index"]) for item in items]


def test_onnx_and_torch_label_every_word_as_the_path_before(tagger):
    doc = _document()
    torch_predictor = TokenPredictor(tagger, backend="torch")
    items = encode_document(torch_predictor.tokenizer, doc, max_length=torch_predictor.max_length)
    before_ids, before_scores, _loss = _predict_items(torch_predictor.model, torch_predictor.tokenizer, items,
                                                      len(doc.words), batch_size=32, device=torch.device("cpu"))
    before = [LABELS[i] for i in before_ids]
    for backend in ("torch", "onnx"):
        tags, scores = TokenPredictor(tagger, backend=backend).tags(doc.words, doc.line_ends)
        assert len(tags) == len(scores) == len(doc.words)
        assert tags == before, backend
        assert np.allclose(scores, before_scores, atol=1e-4), backend
    assert before[doc.words.index("\u200b")] == "O"  # no sub-token to read a label from


def _windows_batch(predictor: TokenPredictor, doc: TokenDocument) -> dict[str, np.ndarray]:
    windows = predictor.windows(doc.words, doc.line_ends)
    input_ids = np.full((len(windows), predictor.max_length), predictor._pad, dtype=np.int64)
    attention = np.zeros_like(input_ids)
    for row, (ids, _words) in enumerate(windows):
        input_ids[row, :len(ids)], attention[row, :len(ids)] = ids, 1
    return {"input_ids": input_ids, "attention_mask": attention, "token_type_ids": np.zeros_like(input_ids)}


# int8 against torch's fp32 logits on this tagger (logits within -0.47..0.57, std 0.11): measured max 0.10
# (8-bit weights, VNNI) and 0.135 (7-bit), mean 0.015-0.017; probabilities within 0.024. The tolerance is
# about twice that: a wrong scale, a quantized classifier or coarser weights exceed it.
INT8_LOGITS_MAX, INT8_LOGITS_MEAN, INT8_PROBABILITY = 0.25, 0.03, 0.05


@pytest.mark.parametrize("vnni", [True, False], ids=["8-bit weights", "7-bit weights"])
@pytest.mark.parametrize("backend", ["onnx-int8", "onnx-int8partial", "onnx-int8ffn"])
def test_int8_logits_stay_within_the_stated_tolerance_of_torch(tagger, monkeypatch, backend, vnni):
    monkeypatch.setattr(inference, "cpu_has_vnni", lambda: vnni)
    doc = _document()
    reference = TokenPredictor(tagger, backend="torch")
    quantized = TokenPredictor(tagger, backend=backend)
    feeds = _windows_batch(reference, doc)
    real = feeds["attention_mask"].astype(bool)
    expected, got = reference._runner(feeds)[real], quantized._runner(feeds)[real]
    error = np.abs(got - expected)
    assert 0 < error.max() <= INT8_LOGITS_MAX and error.mean() <= INT8_LOGITS_MEAN  # quantized, and close
    probabilities = [torch.softmax(torch.from_numpy(logits), -1) for logits in (expected, got)]
    assert float((probabilities[0] - probabilities[1]).abs().max()) <= INT8_PROBABILITY

    tags, scores = quantized.tags(doc.words, doc.line_ends)
    torch_tags, torch_scores = reference.tags(doc.words, doc.line_ends)
    assert len(tags) == len(doc.words) and set(tags) <= set(LABELS)
    assert np.abs(np.array(scores) - np.array(torch_scores)).max() <= INT8_PROBABILITY
    bits = 8 if vnni else 7
    digest = inference.weights_digest(tagger)
    assert quantized._runner.graph_path().name == f"model-{digest}-{backend[5:]}-{bits}bit.onnx"


@pytest.mark.parametrize(("backend", "int8_products_per_layer"), [("onnx-int8", 3), ("onnx-int8partial", 2)])
def test_the_int8_graph_quantizes_the_encoder_and_leaves_the_classifier_fp32(tagger, backend,
                                                                            int8_products_per_layer):
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(TokenPredictor(tagger, backend=backend)._runner.graph_path())).graph
    ops = [node.op_type for node in graph.node]
    # the attention's projections always; its output and the feed-forward input always; the feed-forward output
    # (intermediate x hidden) only in onnx-int8
    assert ops.count("QAttention") == 6 and ops.count("MatMulInteger") == 6 * int8_products_per_layer
    weights = {init.name: numpy_helper.to_array(init).shape for init in graph.initializer}
    fp32_shapes = sorted(weights[name] for node in graph.node if node.op_type == "MatMul"
                         for name in node.input if name in weights)
    config = json.loads((tagger / "config.json").read_text())
    ffn_out = (config["intermediate_size"], config["hidden_size"])
    assert fp32_shapes.count(ffn_out) == (6 if backend == "onnx-int8partial" else 0)
    assert sorted(node.op_type for node in graph.node if "classifier" in node.name) == ["Add", "MatMul"]


def test_the_default_backend_is_int8_onnx_runtime_and_predicts_nothing_for_no_words(tagger, monkeypatch):
    monkeypatch.delenv("DOCLOOP_PREDICT_BACKEND", raising=False)
    predictor = TokenPredictor(tagger)
    assert predictor.backend == "onnx-int8"
    assert predictor.tags([], []) == ([], [])
    assert predictor.predict([], []).spans == []


def test_the_export_is_made_once_per_set_of_weights_beside_the_artefact(tagger):
    TokenPredictor(tagger, backend="onnx").tags(["Maria", "mora", "em", "Recife", "."], [False] * 4 + [True])
    digest = inference.weights_digest(tagger)
    # the int8 graphs beside it are the other tests'
    graphs = [g for g in (tagger / inference.ONNX_DIR).glob("*.onnx") if "-int8" not in g.name]
    assert [g.name for g in graphs] == [f"model-{digest}.onnx"]
    written = graphs[0].stat().st_mtime_ns

    again = TokenPredictor(tagger, backend="onnx")
    again.tags(["Recife"], [True])
    assert graphs[0].stat().st_mtime_ns == written  # loaded, not exported again
    assert not list((tagger / inference.ONNX_DIR).glob(".*partial"))


def test_without_onnxruntime_the_default_is_torch_and_asking_for_onnx_says_so(tagger, monkeypatch, caplog):
    monkeypatch.delenv("DOCLOOP_PREDICT_BACKEND", raising=False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what `import onnxruntime` meets when absent
    assert TokenPredictor(tagger).backend == "torch"
    assert TokenPredictor(tagger, backend="onnx").backend == "torch"
    assert "onnxruntime is not installed" in caplog.text


def test_an_unknown_backend_is_refused(tagger, monkeypatch):
    monkeypatch.setenv("DOCLOOP_PREDICT_BACKEND", "tensorrt")
    with pytest.raises(ValueError, match="unknown prediction backend 'tensorrt'"):
        TokenPredictor(tagger)


def test_a_gpu_runs_torch_whatever_the_setting():
    assert inference.backend_for("onnx", torch.device("cuda")) == "torch"
    assert inference.backend_for(None, torch.device("cpu")) in ("onnx-int8", "torch")
