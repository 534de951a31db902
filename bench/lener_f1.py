"""Does the model really learn? docloop's loop vs a plain Hugging Face Trainer recipe, side by side.

docloop:  manage.py import_conll (first N LeNER-Br train documents, sorted by name) --reviewed
          manage.py train --task token_classification --sync --epochs 3 --learning-rate 1e-4 --batch-size 16
          every dev document rendered to PDF -> manage.py ingest --sync -> manage.py predict --format conll
baseline: run_ner.py-style Trainer on the same N documents' CoNLL sentences (one example per sentence,
          truncated at the model's max length, labels on first sub-tokens), predicting the same dev set.
Both are scored with the same span-level F1 (exact type and boundaries).

    .venv/bin/python bench/lener_f1.py [--docs 8] [--epochs 3] [--skip-baseline]

Runs in its own var/ folder (SQLite, local storage) so it never touches your data.
"""

from __future__ import annotations

import argparse
import os
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


def manage(env: dict, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BASE / "manage.py"), *args], env=env, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args[:2])} failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    return result.stdout


def docloop_f1(train_files, dev_files, epochs, lr, batch_size, seed) -> dict:
    from documents.pdf import pdf_render_lines, pdf_renderable_tokens
    from training.ml.bio import bio_to_spans
    from training.ml.conll import conll_parse
    from training.ml.metrics import span_scores

    var = Path(tempfile.mkdtemp(prefix="docloop-bench-"))
    env = dict(os.environ, DOCLOOP_VAR_DIR=str(var), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("DATABASE_URL", None)
    manage(env, "migrate", "-v", "0")
    started = time.monotonic()
    manage(env, "import_conll", *map(str, train_files), "--reviewed")
    import_seconds = time.monotonic() - started
    started = time.monotonic()
    out = manage(env, "train", "--task", "token_classification", "--sync", "--epochs", str(epochs),
                 "--learning-rate", str(lr), "--batch-size", str(batch_size), "--seed", str(seed))
    train_seconds = time.monotonic() - started
    print(out.strip())
    gold, predicted = [], []
    pdf_dir = var / "dev-pdfs"
    pdf_dir.mkdir()
    for path in dev_files:
        conll = conll_parse(path.read_text(encoding="utf-8"))
        pdf = pdf_dir / f"{path.stem}.pdf"
        pdf.write_bytes(pdf_render_lines([[t for t, _ in s] for s in conll.sentences]))
        doc_id = manage(env, "ingest", "--sync", str(pdf)).split("\t")[0]
        lines = manage(env, "predict", doc_id, "--format", "conll").splitlines()
        tokens = [line.rsplit(" ", 1)[0] for line in lines]
        if tokens != pdf_renderable_tokens(conll.tokens):
            raise SystemExit(f"{path.name}: predicted words differ from the CoNLL tokens")
        gold.append(bio_to_spans(conll.tags))
        predicted.append(bio_to_spans([line.rsplit(" ", 1)[1] for line in lines]))
    scores = span_scores(gold, predicted)
    scores.update(train_seconds=train_seconds, import_seconds=import_seconds)
    return scores


def baseline_f1(train_files, dev_files, epochs, lr, batch_size, seed) -> dict:
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
    from training.ml.conll import conll_parse
    from training.ml.metrics import span_scores

    def sentences(files):
        return [s for f in files for s in conll_parse(f.read_text(encoding="utf-8")).sentences]

    train = sentences(train_files)
    types = sorted({tag[2:] for s in train for _t, tag in s if tag != "O"})
    labels = ["O"] + [f"{p}-{t}" for t in types for p in "BI"]
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(settings.DOCLOOP_BASE_MODEL)

    def encode(batch):
        enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=512)
        all_labels = []
        for i, tags in enumerate(batch["tags"]):
            previous, row = None, []
            for wid in enc.word_ids(i):
                row.append(-100 if wid is None or wid == previous else label2id.get(tags[wid], 0))
                previous = wid
            all_labels.append(row)
        enc["labels"] = all_labels
        return enc

    ds = Dataset.from_dict({"tokens": [[t for t, _ in s] for s in train], "tags": [[g for _, g in s] for s in train]})
    ds = ds.map(encode, batched=True, remove_columns=["tokens", "tags"])
    model = AutoModelForTokenClassification.from_pretrained(
        settings.DOCLOOP_BASE_MODEL, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)
    out = tempfile.mkdtemp(prefix="hf-baseline-")
    args = TrainingArguments(output_dir=out, num_train_epochs=epochs, learning_rate=lr,
                             per_device_train_batch_size=batch_size, seed=seed, save_strategy="no",
                             report_to=[], logging_steps=50, use_cpu=True)
    started = time.monotonic()
    Trainer(model=model, args=args, train_dataset=ds,
            data_collator=DataCollatorForTokenClassification(tokenizer)).train()
    train_seconds = time.monotonic() - started
    gold, predicted = [], []
    model.eval()
    import torch

    for path in dev_files:
        doc_gold, doc_pred = [], []
        for s in conll_parse(path.read_text(encoding="utf-8")).sentences:
            tokens = [t for t, _ in s]
            enc = tokenizer(tokens, is_split_into_words=True, truncation=True, max_length=512,
                            return_tensors="pt")
            with torch.no_grad():
                ids = model(**enc).logits[0].argmax(-1).tolist()
            tags, seen = ["O"] * len(tokens), set()
            for pos, wid in enumerate(enc.word_ids(0)):
                if wid is not None and wid not in seen:
                    tags[wid] = labels[ids[pos]]
                    seen.add(wid)
            doc_gold += [g for _, g in s]
            doc_pred += tags
        gold.append(bio_to_spans(doc_gold))
        predicted.append(bio_to_spans(doc_pred))
    scores = span_scores(gold, predicted)
    scores["train_seconds"] = train_seconds
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"LeNER-Br not found at {DATA}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()
    train_files = sorted((DATA / "train").glob("*.conll"))[: args.docs]
    dev_files = sorted(p for p in (DATA / "dev").glob("*.conll") if p.name not in DUPLICATES)
    common = (train_files, dev_files, args.epochs, args.learning_rate, args.batch_size, args.seed)
    ours = docloop_f1(*common)
    rows = [("docloop (PDF loop)", ours)]
    if not args.skip_baseline:
        rows.append(("HF Trainer recipe", baseline_f1(*common)))
    print(f"\nLeNER-Br dev ({len(dev_files)} documents), trained on the first {len(train_files)} train documents")
    print(f"{'':22} {'precision':>9} {'recall':>9} {'F1':>9} {'train s':>9}")
    for name, s in rows:
        print(f"{name:22} {s['precision']:9.4f} {s['recall']:9.4f} {s['f1']:9.4f} {s['train_seconds']:9.1f}")
    if len(rows) == 2:
        print(f"F1 ratio docloop/baseline: {ours['f1'] / max(rows[1][1]['f1'], 1e-9):.3f}")


if __name__ == "__main__":
    main()
