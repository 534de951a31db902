"""How fast is `manage.py ingest --sync` next to raw PyMuPDF word extraction? Side by side, one run.

raw:      in this process, for each PDF: pymupdf.open(path), then page.get_text("words") on every page.
          Interpreter start and imports are not counted (the floor docloop is measured against).
docloop:  ONE subprocess `python manage.py ingest --sync <every pdf>`, wall clock, process start
          included (interpreter, Django setup, imports, validation, SHA-256, storing the file, extraction,
          the Page rows). Runs against a fresh throwaway var/ folder (SQLite + local media) unless
          --database-url is given; `migrate` runs first and is not timed.
Both report pages/s (best of --runs, default 5, interleaved); the target is docloop >= 0.9 x raw, wall clock.
Diagnostics printed alongside: the start-up alone (`manage.py ingest --help`), the CPU-time ratio (less
sensitive to other jobs on the machine, but blind to fsync waits) and docloop's documents.pdf.pdf_extract
run in this process (extraction + rounding, no database, no start-up).

The PDFs: --folder DIR uses the PDFs in DIR (any folder of PDFs); otherwise every LeNER-Br document is rendered twice over with
documents.pdf.pdf_render_lines: its CoNLL sentences (train and dev, one sentence per paragraph) and its
original PDF's layout lines from raw_text/ (default --docs 120: all of them, about 1,000 pages). A built-in
Portuguese vocabulary stands in when the dataset is absent. Rendered PDFs are cached in the temp dir.

A fresh environment has no active model, so ingest does extraction only: no pre-annotation (prediction
needs an active model version). This measures the extraction path, not the model.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/ingest.py [--docs 50] [--folder DIR] [--runs 5] [--database-url URL]

--database-url: an EMPTY scratch database (PostgreSQL); it is migrated, the benchmark refuses to run if
it already holds documents, and the documents it creates are deleted after each run.

Exit status is 0 whenever the benchmark ran (PASS/FAIL is printed, not returned).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
LENER_TRAIN = BASE.parent / "shared" / "datasets" / "lener-br" / "train"
TARGET = 0.9

# Stand-in text when LeNER-Br is absent: court-decision Portuguese, seeded so the PDFs are reproducible.
VOCAB = (
    "o a os as de da do das dos em no na nos nas por pelo pela para com sem que se não mais como ao à "
    "sobre entre contra até após conforme nos termos segundo tendo sido foi é são será deve pode "
    "recurso apelação agravo embargos sentença acórdão decisão despacho petição inicial réu autor "
    "apelante apelado recorrente recorrido agravante agravado impetrante impetrado ministério público "
    "tribunal justiça turma câmara relator relatora desembargador ministro juiz juíza vara comarca "
    "processo autos prazo prova provas perícia testemunha depoimento fundamentação dispositivo voto "
    "direito dano moral material indenização responsabilidade civil contrato cláusula consumidor "
    "pagamento valor quantia juros correção monetária honorários advocatícios custas processuais "
    "lei artigo inciso parágrafo código constituição federal súmula jurisprudência precedente "
    "pedido procedente improcedente parcialmente provido desprovido mantida reformada nula anulada "
    "conhecimento mérito preliminar competência ilegitimidade prescrição decadência tutela urgência "
    "administrativo tributário penal trabalhista previdenciário servidor município estado união"
).split()
NAMES = ("Maria Silva", "João Pereira", "Ana Souza", "Carlos Oliveira", "Fernanda Costa", "Paulo Rodrigues",
         "Brasília", "São Paulo", "Minas Gerais", "Rio Grande do Sul", "TJDFT", "STJ", "STF", "TCU")


def synthetic_sentences(seed: int, count: int) -> list[list[str]]:
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        tokens: list[str] = []
        for _ in range(rng.randint(8, 45)):
            roll = rng.random()
            if roll < 0.05:
                tokens.extend(rng.choice(NAMES).split())
            elif roll < 0.08:
                tokens.append(f"{rng.randint(1, 999)}.{rng.randint(100, 999)}")
            elif roll < 0.11:
                tokens.append(rng.choice(("art.", "Lei", "nº", "§", "inciso")))
                tokens.append(str(rng.randint(1, 12000)))
            elif roll < 0.17:
                tokens.append(rng.choice((",", ";", ":", "-", "(", ")")))
            else:
                tokens.append(rng.choice(VOCAB))
        tokens[0] = tokens[0][:1].upper() + tokens[0][1:]
        tokens.append(".")
        sentences.append(tokens)
    return sentences


def lener_sources() -> list[tuple[str, Path]]:
    """Every LeNER-Br document twice over: its CoNLL sentences (train and dev) and its original PDF's
    layout lines (raw_text/, headers, short lines and repeated passages included)."""
    lener = LENER_TRAIN.parent
    sources = [("conll", p) for folder in ("train", "dev") for p in sorted((lener / folder).glob("*.conll"))]
    return sources + [("layout", p) for p in sorted((lener / "raw_text").glob("*.txt"))]


def generate_pdfs(docs: int) -> Path:
    """Render (or reuse) `docs` PDFs; the cache key covers the source files and the renderer's code."""
    from documents.pdf import pdf_render_lines
    from training.ml.conll import conll_parse

    sources = lener_sources()[:docs] if LENER_TRAIN.is_dir() else []
    if sources and len(sources) < docs:
        print(f"note: LeNER-Br has {len(sources)} renderable documents; using all of them")
    key = hashlib.sha256((BASE / "documents" / "pdf.py").read_bytes())
    key.update(f"docs={docs}".encode())
    for _kind, path in sources:
        key.update(path.name.encode() + str(path.stat().st_size).encode())
    folder = Path(tempfile.gettempdir()) / f"docloop-bench-ingest-{key.hexdigest()[:16]}"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.monotonic()
    if sources:
        for kind, path in sources:
            text = path.read_text(encoding="utf-8")
            if kind == "conll":
                lines = [[token for token, _tag in sentence] for sentence in conll_parse(text).sentences]
            else:
                lines = [line.split() for line in text.splitlines() if line.strip()]
            name = f"{path.parent.name}-{path.stem}"
            (folder / f"{name}.pdf").write_bytes(pdf_render_lines(lines, title=name))
        what = f"{len(sources)} LeNER-Br documents (CoNLL sentences and original layout lines)"
    else:
        for index in range(docs):
            lines = synthetic_sentences(seed=index, count=random.Random(index).randint(150, 600))
            (folder / f"synthetic-{index:03d}.pdf").write_bytes(pdf_render_lines(lines, title=f"doc {index}"))
        what = f"{docs} synthetic Portuguese documents (LeNER-Br not found at {LENER_TRAIN})"
    (folder / ".complete").write_text(what + "\n")
    print(f"rendered {what} in {time.monotonic() - started:.1f}s -> {folder}")
    return folder


def raw_pass(pdfs: list[Path]) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds, pages, words) for one in-process extraction of every PDF."""
    import pymupdf

    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    pages = words = 0
    started, cpu = time.perf_counter(), time.process_time()
    for path in pdfs:
        doc = pymupdf.open(path)
        for page in doc:
            words += len(page.get_text("words"))
            pages += 1
        doc.close()
    return time.perf_counter() - started, time.process_time() - cpu, pages, words


def extract_pass(pdfs: list[Path]) -> float:
    """Diagnostic: docloop's own documents.pdf.pdf_extract over every PDF, in this process, no database."""
    from django.conf import settings

    from documents.pdf import pdf_extract

    started = time.perf_counter()
    for path in pdfs:
        pdf_extract(path.read_bytes(), max_pages=settings.DOCLOOP_MAX_PAGES)
    return time.perf_counter() - started


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(BASE / "manage.py"), *args], env=env, cwd=BASE,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args[:2])} failed (exit {result.returncode}):\n"
                         f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def shell(env: dict, code: str) -> str:
    lines = manage(env, "shell", "-v", "0", "-c", code).stdout.strip().splitlines()
    return lines[-1] if lines else ""


def docloop_env(var: Path, database_url: str | None, prefetch: bool = True) -> dict:
    env = dict(os.environ, DOCLOOP_VAR_DIR=str(var), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               DOCLOOP_INGEST_PREFETCH=str(prefetch).lower())
    # Nothing of the caller's deployment: SQLite (or the scratch DB), local media under var/, no Redis.
    for name in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "AWS_STORAGE_BUCKET_NAME", "DOCLOOP_MODEL_CACHE",
                 "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def docloop_pass(pdfs: list[Path], pages: int, database_url: str | None,
                 prefetch: bool = True) -> tuple[float, float]:
    """(wall, CPU) seconds of one `manage.py ingest --sync` over every PDF, in a fresh environment
    (`prefetch`: DOCLOOP_INGEST_PREFETCH, the read-ahead while Django starts)."""
    var = Path(tempfile.mkdtemp(prefix="docloop-bench-ingest-var-"))
    env = docloop_env(var, database_url, prefetch)
    try:
        manage(env, "migrate", "-v", "0")
        count = "from documents.models import Document as D; print(D.objects.count())"
        if shell(env, count) != "0":
            raise SystemExit("the database already holds documents; --database-url must be an empty scratch "
                             "database (existing documents would be returned without being re-extracted)")
        command = [sys.executable, str(BASE / "manage.py"), "ingest", "--sync", *map(str, pdfs)]
        started, cpu = time.perf_counter(), children_cpu()
        result = subprocess.run(command, env=env, cwd=BASE, capture_output=True, text=True)
        seconds, cpu = time.perf_counter() - started, children_cpu() - cpu
        lines = result.stdout.splitlines()
        bad = [line for line in lines if not (line.endswith("\tready") and line.split("\t")[0].isdigit()
                                              and line.count("\t") == 1)]
        if result.returncode != 0 or bad or len(lines) != len(pdfs):
            raise SystemExit(f"ingest --sync failed (exit {result.returncode}, {len(lines)} lines for "
                             f"{len(pdfs)} PDFs):\n" + "\n".join(bad[:10]) + f"\n{result.stderr[-3000:]}")
        ids = [int(line.split("\t")[0]) for line in lines]
        stored = shell(env, "from django.db.models import Sum; from documents.models import Document as D, "
                            f"Page as P; ids = {ids!r}; "
                            "print(D.objects.filter(pk__in=ids).aggregate(s=Sum('page_count'))['s'], "
                            "P.objects.filter(document_id__in=ids).count())")
        if stored != f"{pages} {pages}":
            raise SystemExit(f"docloop stored (page_count sum, Page rows) = {stored}, expected {pages} pages")
        if database_url:  # leave the scratch database as we found it
            shell(env, f"from documents.models import Document as D; D.objects.filter(pk__in={ids!r}).delete()")
        return seconds, cpu
    finally:
        shutil.rmtree(var, ignore_errors=True)


def startup_seconds(database_url: str | None) -> float:
    """`manage.py ingest --help`: interpreter + Django setup + the command's imports, no work."""
    var = Path(tempfile.mkdtemp(prefix="docloop-bench-ingest-var-"))
    try:
        env = docloop_env(var, database_url)
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            manage(env, "ingest", "--help")
            best = min(best, time.perf_counter() - started)
        return best
    finally:
        shutil.rmtree(var, ignore_errors=True)


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPU(s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", "--pdfs", dest="folder", type=Path,
                        help="a folder of PDFs to ingest (default: render LeNER-Br)")
    parser.add_argument("--docs", type=int, default=120,
                        help="documents to render when --pdfs is not given (120 = all of LeNER-Br, ~1,000 pages)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each side; the best is reported")
    parser.add_argument("--database-url", help="an EMPTY scratch database to ingest into (default: fresh SQLite)")
    parser.add_argument("--without-prefetch", action="store_true",
                        help="also run ingest --sync with DOCLOOP_INGEST_PREFETCH=false in each run, side by side")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()  # documents.pdf uses Django's gettext

    folder = args.folder if args.folder else generate_pdfs(args.docs)
    pdfs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".pdf" and p.is_file())
    if not pdfs:
        raise SystemExit(f"no PDFs in {folder}")
    if len({hashlib.sha256(p.read_bytes()).digest() for p in pdfs}) != len(pdfs):
        print("warning: some PDFs are byte-identical; docloop stores them once and extracts them once")
    size_mb = sum(p.stat().st_size for p in pdfs) / 1e6

    print(f"load average before: {load_average()}")
    raw_pass(pdfs)  # warm the page cache and PyMuPDF's fonts
    raw_times, raw_cpus, extract_times, docloop_times, docloop_cpus = [], [], [], [], []
    off_times: list[float] = []
    pages = words = 0
    for run in range(1, args.runs + 1):
        seconds, cpu, pages, words = raw_pass(pdfs)
        raw_times.append(seconds)
        raw_cpus.append(cpu)
        extract_times.append(extract_pass(pdfs))
        seconds, cpu = docloop_pass(pdfs, pages, args.database_url)
        docloop_times.append(seconds)
        docloop_cpus.append(cpu)
        if args.without_prefetch:
            off_times.append(docloop_pass(pdfs, pages, args.database_url, prefetch=False)[0])
        print(f"run {run}: raw {raw_times[-1]:.2f}s  pdf_extract {extract_times[-1]:.2f}s  "
              f"ingest --sync {docloop_times[-1]:.2f}s (CPU {cpu:.2f}s)"
              + (f"  read-ahead off {off_times[-1]:.2f}s" if off_times else "") + f"  load {load_average()}")
    startup = startup_seconds(args.database_url)

    raw_rate = pages / min(raw_times)
    docloop_rate = pages / min(docloop_times)
    ratio = docloop_rate / raw_rate
    cpu_ratio = min(raw_cpus) / min(docloop_cpus)
    backend = "PostgreSQL/other (--database-url)" if args.database_url else "SQLite, fresh var/"
    rows = [
        ("PDFs", f"{folder} ({size_mb:.1f} MB)"),
        ("documents", f"{len(pdfs)}"),
        ("pages", f"{pages}"),
        ("words", f"{words}"),
        ("raw PyMuPDF pages/s", f"{raw_rate:8.1f}   best {min(raw_times):.2f}s, "
                                f"median {statistics.median(raw_times):.2f}s of {len(raw_times)}"),
        ("docloop pages/s", f"{docloop_rate:8.1f}   best {min(docloop_times):.2f}s, "
                            f"median {statistics.median(docloop_times):.2f}s of {len(docloop_times)}"),
        *([("  read-ahead off", f"{pages / min(off_times):8.1f}   ratio {pages / min(off_times) / raw_rate:.2f}; "
                                 f"best {min(off_times):.2f}s (DOCLOOP_INGEST_PREFETCH=false, same runs)")]
          if off_times else []),
        ("  of which start-up", f"{startup:8.2f}s  (manage.py ingest --help: interpreter + Django + imports)"),
        ("ratio docloop/raw", f"{ratio:8.2f}   target >= {TARGET}: {'PASS' if ratio >= TARGET else 'FAIL'}"
                              "  (wall clock, process start included)"),
        ("  CPU-time ratio", f"{cpu_ratio:8.2f}   diagnostic: less sensitive to other load, blind to fsync waits"),
        ("  pdf_extract pages/s", f"{pages / min(extract_times):8.1f}   diagnostic: docloop's extraction "
                                  "function in-process, no DB, no start-up"),
        ("database", backend),
        ("model", "none active: ingest = extraction only, no pre-annotation"),
        ("load average after", load_average()),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
