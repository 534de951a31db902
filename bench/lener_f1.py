"""Does docloop's loop learn at least as well as a vanilla Hugging Face Trainer? Like for like, several seeds.

Protocol:
- Training documents: the first --docs LeNER-Br train documents (sorted by name), imported as reviewed PDFs.
  `manage.py train --sync` holds out whole documents (eval_fraction) for its per-epoch evaluation; the
  baseline trains on exactly the documents docloop trained on (read back from the run), so both learn
  from the same words.
- Windowing: both sides train on the same windows (training.ml.windows: --window sub-tokens, cut at
  sentence ends, labels on each word's first sub-token), with the same base model, epochs, learning rate,
  batch size, seed, warmup (10 %) and weight decay (0.01), every epoch run. The baseline is
  `transformers.Trainer` with run_ner.py's defaults otherwise (AdamW, linear schedule,
  DataCollatorForTokenClassification). Both are scored by the same span-level F1 (exact type and
  boundaries) after predicting every word of each document with the same windowed prediction code.
- Selection: the window size is chosen among --windows on a selection split of *train* documents (the
  --select-docs documents that follow the training ones), with a seed that is not a reported seed. The dev
  split is never used to choose anything.
- Reported: LeNER-Br dev (9 documents: the duplicate AC20150110436469APC dropped), for each of --seeds, then
  mean ± sample standard deviation and the ratio of the means.
- docloop's predictions come from the product path: each evaluation document rendered to PDF,
  `manage.py ingest --sync` (extraction, then pre-annotation by the active version), and the predicted
  annotations read back from the database.

    .venv/bin/python bench/lener_f1.py [--docs 8] [--seeds 1 2 3] [--windows 64 128] [--skip-baseline]

Each docloop run uses its own var/ folder (SQLite, local storage), so it never touches your data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
DATA = BASE.parent / "shared" / "datasets" / "lener-br"
# dev/AC20150110436469APC is a second annotation of dev/20150110436469APC: keep one (datasets README).
DUPLICATES = {"AC20150110436469APC.conll"}
SELECTION_SEED = 1000  # never one of the reported seeds
# Both sides train with the same schedule: docloop's default warmup and weight decay, every epoch run
# (docloop's early stopping is off here, so neither side picks an epoch on held-out data).
WARMUP_RATIO = 0.1
WEIGHT_DECAY = 0.01

READ_PREDICTIONS = """
import json
from annotation.models import Annotation
from documents.models import Document
from training.models import TrainingRun
run = TrainingRun.objects.get()
trained = list(Document.objects.filter(pk__in=run.dataset_stats["train_documents"]).values_list("original_name", flat=True))
predicted = {}
for d in Document.objects.filter(reviewed_at__isnull=True):
    predicted[d.original_name] = [[a.start, a.end, a.label.name] for a in
                                  Annotation.objects.filter(document=d, source="model").select_related("label")]
print(json.dumps({"trained": sorted(trained), "predicted": predicted}))
"""


def manage(env: dict, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BASE / "manage.py"), *args], env=env, capture_output=True,
                            text=True, cwd=BASE)
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args[:2])} failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    return result.stdout


def conll_doc(path: Path):
    from documents.pdf import pdf_renderable_tokens
    from training.ml.conll import conll_parse

    conll = conll_parse(path.read_text(encoding="utf-8"))
    words = pdf_renderable_tokens(conll.tokens)  # the words a rendered PDF gives back
    ends = [i == len(s) - 1 for s in conll.sentences for i in range(len(s))]
    return conll, words, ends


def scores_of(gold_files: list[Path], predicted: dict[str, list]) -> dict:
    from training.ml.bio import bio_to_spans
    from training.ml.metrics import span_scores

    gold, pred = [], []
    for path in gold_files:
        conll, _words, _ends = conll_doc(path)
        gold.append(bio_to_spans(conll.tags))
        pred.append([tuple(span) for span in predicted[path.stem]])
    return span_scores(gold, pred)


def docloop_run(train_files, eval_files, *, window, epochs, lr, batch_size, seed) -> dict:
    """Import, train and predict through the product's commands; F1 on eval_files."""
    from documents.pdf import pdf_render_lines

    var = Path(tempfile.mkdtemp(prefix="docloop-bench-"))
    env = dict(os.environ, DOCLOOP_VAR_DIR=str(var), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    for name in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "AWS_STORAGE_BUCKET_NAME", "DOCLOOP_MODEL_CACHE"):
        env.pop(name, None)
    manage(env, "migrate", "-v", "0")
    manage(env, "import_conll", *map(str, train_files), "--reviewed")
    started = time.monotonic()
    manage(env, "train", "--task", "token_classification", "--sync", "--epochs", str(epochs),
           "--learning-rate", str(lr), "--batch-size", str(batch_size), "--seed", str(seed),
           "--max-length", str(window), "--warmup-ratio", str(WARMUP_RATIO), "--weight-decay", str(WEIGHT_DECAY),
           "--patience", "0", "--no-refit")
    train_seconds = time.monotonic() - started
    pdfs = []
    for path in eval_files:
        conll, _words, _ends = conll_doc(path)
        pdf = var / f"{path.stem}.pdf"
        pdf.write_bytes(pdf_render_lines([[t for t, _ in s] for s in conll.sentences], title=path.stem))
        pdfs.append(str(pdf))
    manage(env, "ingest", "--sync", *pdfs)
    out = json.loads(manage(env, "shell", "-v", "0", "-c", READ_PREDICTIONS).strip().splitlines()[-1])
    predicted = {name.removesuffix(".pdf"): spans for name, spans in out["predicted"].items()}
    result = scores_of(eval_files, predicted)
    result.update(train_seconds=train_seconds, trained=[n.removesuffix(".pdf") for n in out["trained"]])
    return result


def baseline_run(train_files, eval_files, *, window, epochs, lr, batch_size, seed) -> dict:
    """transformers.Trainer on the same documents and windows; F1 on eval_files."""
    import torch
    from datasets import Dataset
    from django.conf import settings
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    from training.ml.bio import bio_to_spans
    from training.ml.token_classification import META_FILE, TokenPredictor, bio_labels
    from training.ml.windows import encode_windows

    docs = [conll_doc(path) for path in train_files]
    types = sorted({tag[2:] for conll, _w, _e in docs for tag in conll.tags if tag != "O"})
    labels = bio_labels(types)
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(settings.DOCLOOP_BASE_MODEL)
    items = [{k: v for k, v in item.items() if k != "word_index"}
             for conll, words, ends in docs
             for item in encode_windows(tokenizer, words, ends, max_length=window, tags=conll.tags,
                                        label2id=label2id)]
    model = AutoModelForTokenClassification.from_pretrained(
        settings.DOCLOOP_BASE_MODEL, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)
    out = Path(tempfile.mkdtemp(prefix="hf-baseline-"))
    args = TrainingArguments(output_dir=str(out), num_train_epochs=epochs, learning_rate=lr,
                             per_device_train_batch_size=batch_size, seed=seed, save_strategy="no",
                             warmup_steps=WARMUP_RATIO, weight_decay=WEIGHT_DECAY,  # < 1: a ratio
                             report_to=[], logging_steps=10_000, disable_tqdm=True,
                             use_cpu=not torch.cuda.is_available())
    started = time.monotonic()
    Trainer(model=model, args=args, train_dataset=Dataset.from_list(items),
            data_collator=DataCollatorForTokenClassification(tokenizer)).train()
    train_seconds = time.monotonic() - started
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    (out / "model" / META_FILE).write_text(json.dumps({"max_length": window}))
    predictor = TokenPredictor(out / "model")
    predicted = {}
    for path in eval_files:
        _conll, words, ends = conll_doc(path)
        predicted[path.stem] = bio_to_spans(predictor.tags(words, ends)[0])
    result = scores_of(eval_files, predicted)
    result["train_seconds"] = train_seconds
    return result


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=8, help="training documents (first N train files)")
    parser.add_argument("--select-docs", type=int, default=3, help="train documents after those, to choose on")
    parser.add_argument("--windows", type=int, nargs="+", default=[64, 128], help="window sizes to choose from")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"LeNER-Br not found at {DATA}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django
    import transformers

    django.setup()
    transformers.logging.set_verbosity_error()
    train_pool = sorted((DATA / "train").glob("*.conll"))
    train_files = train_pool[: args.docs]
    select_files = train_pool[args.docs: args.docs + args.select_docs]
    dev_files = sorted(p for p in (DATA / "dev").glob("*.conll") if p.name not in DUPLICATES)
    common = {"epochs": args.epochs, "lr": args.learning_rate, "batch_size": args.batch_size}

    window = args.windows[0]
    if len(args.windows) > 1:
        print(f"== choosing the window on {len(select_files)} selection documents (train split, seed "
              f"{SELECTION_SEED})", flush=True)
        chosen = {}
        for w in args.windows:
            chosen[w] = docloop_run(train_files, select_files, window=w, seed=SELECTION_SEED, **common)["f1"]
            print(f"window {w:4d}: selection F1 {chosen[w]:.4f}", flush=True)
        window = max(chosen, key=chosen.get)
    print(f"== window {window}; reporting on LeNER-Br dev ({len(dev_files)} documents)", flush=True)

    rows = []
    for seed in args.seeds:
        ours = docloop_run(train_files, dev_files, window=window, seed=seed, **common)
        trained = [DATA / "train" / f"{name}.conll" for name in ours["trained"]]
        base = None if args.skip_baseline else baseline_run(trained, dev_files, window=window, seed=seed, **common)
        rows.append((seed, ours, base))
        line = f"seed {seed}: docloop F1 {ours['f1']:.4f} ({ours['train_seconds']:.0f} s)"
        if base:
            line += f"   Trainer F1 {base['f1']:.4f} ({base['train_seconds']:.0f} s)"
        print(line + f"   trained on {len(trained)} documents", flush=True)

    print(f"\nLeNER-Br dev, {len(dev_files)} documents; trained on {len(rows[0][1]['trained'])} of the first "
          f"{len(train_files)} train documents (the rest held out for docloop's per-epoch evaluation); window "
          f"{window}, {args.epochs} epochs, lr {args.learning_rate}, batch {args.batch_size}")
    print(f"{'seed':>6} {'docloop P':>10} {'R':>7} {'F1':>7} {'train s':>8} | {'Trainer P':>10} {'R':>7} "
          f"{'F1':>7} {'train s':>8}")
    for seed, ours, base in rows:
        right = (f"{base['precision']:10.4f} {base['recall']:7.4f} {base['f1']:7.4f} {base['train_seconds']:8.0f}"
                 if base else "")
        print(f"{seed:>6} {ours['precision']:10.4f} {ours['recall']:7.4f} {ours['f1']:7.4f} "
              f"{ours['train_seconds']:8.0f} | {right}")
    ours_f1 = [o["f1"] for _s, o, _b in rows]
    print(f"docloop F1 mean ± sd: {mean_sd(ours_f1)}")
    if not args.skip_baseline:
        base_f1 = [b["f1"] for _s, _o, b in rows]
        print(f"Trainer F1 mean ± sd: {mean_sd(base_f1)}")
        print(f"F1 ratio of means docloop/Trainer: {statistics.mean(ours_f1) / max(statistics.mean(base_f1), 1e-9):.3f}")
        ours_s = statistics.mean(o["train_seconds"] for _s, o, _b in rows)
        base_s = statistics.mean(b["train_seconds"] for _s, _o, b in rows)
        print(f"training time ratio Trainer/docloop: {base_s / ours_s:.2f}")


if __name__ == "__main__":
    main()
