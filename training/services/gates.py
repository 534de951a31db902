"""Evaluation sets and the gate every new version passes (issue 17).

- **Evaluation set** (`evaluation_set_freeze`, `evaluation_set_sample`): a task's documents chosen once, by
  an admin or sampled, then frozen as a Dataset snapshot (their words and labels as they were then). Full
  runs leave them out of training, feedback never learns from nor replays them; both score on them. The
  current set is the task's highest number; a larger set is a new number. A run or an update that finds
  no set samples one (`evaluation_set_for_training`) once twice the floor's documents are reviewed.
- **Gate** (`gate_judge`): the one rule (training.ml.gate, a paired bootstrap over documents) that decides
  whether a new version, full run or feedback, replaces the active one; a task's first version must clear
  a floor instead. `model_version_publish` and the feedback update call it inside their publishing
  transaction; a gated version is published inactive with the reason.
- **Scores** (`version_score_store`, `evaluation_set_score_versions`): every version's F1 on the current
  set, with the per-document counts the bootstrap needs, so versions compare on the same documents.

Web requests import this module: the ML stack is imported only inside the functions workers call.
"""

from __future__ import annotations

import hashlib
import logging
import math

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from documents.models import Document
from lib import jobs
from training.ml.metrics import BLOCK_WORDS, evidence_units
from training.models import EvaluationSet, Gate, ModelVersion, TrainingRun, VersionScore
from training.registry import TASKS, task_spec
from training.selectors import reviewed_documents

logger = logging.getLogger(__name__)

# A full run judged on documents the active version learnt too (gate_judge's `learnt_by_both`) must reach at
# least this share of the active version's F1 there: both memorised them, so a closer comparison measures
# memory, but a run far below has not learnt (a learning rate of 1e-7, say). Its reason says "half".
LEARNT_SHARE = 0.5

SAMPLE_SEED = 17


# Evaluation sets -----------------------------------------------------------------------------------------

def evaluation_set_current(*, task: str) -> EvaluationSet | None:
    return EvaluationSet.objects.filter(task=task).order_by("-number").select_related("dataset").first()


def evaluation_floor() -> dict:
    return {"documents": settings.DOCLOOP_EVAL_MIN_DOCUMENTS, "entities": settings.DOCLOOP_EVAL_MIN_ENTITIES}


def learnable_documents(*, task: str):
    """The reviewed documents a task can learn from or be scored on (as its review kind says: for the
    document class, those with an accepted class)."""
    return task_spec(task).review().learnable(reviewed_documents())


def _items_per_document(*, task: str, ids: list[int]) -> dict[int, int]:
    """What the floor counts, per document: accepted entities, or 1 where the floor counts documents only."""
    return task_spec(task).review().items_per_document(ids)


def _units(*, task: str, documents: int, words: int) -> int:
    """The evidence units documents make for the floor: for entities, the documents or their 250-word
    passages, whichever is more (training.ml.metrics.evidence_units); for a document class, the documents."""
    if not task_spec(task).review().counts_entities:
        return documents
    return evidence_units(documents=documents, words=words)


def _meets_floor(*, task: str, documents: int, words: int, entities: int) -> bool:
    """Whether an evaluation set holds the floor's evidence (DOCLOOP_EVAL_MIN_DOCUMENTS units, and for
    entities DOCLOOP_EVAL_MIN_ENTITIES of them)."""
    return (_units(task=task, documents=documents, words=words) >= settings.DOCLOOP_EVAL_MIN_DOCUMENTS
            and (not task_spec(task).review().counts_entities
                 or entities >= settings.DOCLOOP_EVAL_MIN_ENTITIES))


def _learnt_by_active(task: str) -> set[int]:
    """Documents the active version (or an ancestor) learnt from: a full run's training and validation
    documents (the refit learns those too), a feedback update's documents and replay."""
    version = ModelVersion.objects.filter(task=task, is_active=True).select_related("run").first()
    seen: set[int] = set()
    while version is not None:
        stats = version.run.dataset_stats or {}
        for key in ("train_documents", "eval_documents", "replay_documents"):
            seen.update(pk for pk in stats.get(key) or [] if isinstance(pk, int))
        version = version.parent
    return seen


def evaluation_set_freeze(*, task: str, document_ids: list[int], user: AbstractBaseUser | None = None,
                          method: str = EvaluationSet.Method.CHOSEN) -> EvaluationSet:
    """Freeze these reviewed documents as the task's next evaluation set; ValidationError says what is
    wrong with the choice. Queues the scoring of the task's versions on it."""
    from training.dataset_builder import DatasetFilters
    from training.services.datasets import dataset_build

    if task not in TASKS:
        raise ValidationError(_("Unknown task %(task)s.") % {"task": task})
    ids = sorted(set(document_ids))
    if not ids:
        raise ValidationError(_("Choose at least one reviewed document for the evaluation set."))
    found = set(learnable_documents(task=task).filter(pk__in=ids).values_list("pk", flat=True))
    missing = [pk for pk in ids if pk not in found]
    if missing:
        raise ValidationError(
            _("These documents are not reviewed documents the task can be scored on: %(ids)s.")
            % {"ids": ", ".join(map(str, missing))})
    remaining = learnable_documents(task=task).exclude(pk__in=ids).count()
    if remaining < 2:
        raise ValidationError(_("The evaluation set would leave %(n)d reviewed documents to learn from; at "
                                "least 2 must remain.") % {"n": remaining})
    number = (EvaluationSet.objects.filter(task=task).order_by("-number").values_list("number", flat=True)
              .first() or 0) + 1
    dataset, _created = dataset_build(task=task, filters=DatasetFilters(document_ids=tuple(ids)), user=user,
                                      validation_fraction=0.0, test_fraction=0.0,
                                      name=_("Evaluation set %(number)d") % {"number": number})
    items = _items_per_document(task=task, ids=ids)
    entities = sum(items.values())
    floor = evaluation_floor()
    labels = dataset.statistics.get("entities") or dataset.statistics.get("classes") or {}
    words = dataset.statistics.get("tokens", 0)
    statistics = {
        "documents": len(ids), "entities": entities, "words": words,
        "units": _units(task=task, documents=len(ids), words=words),
        "per_label": labels, "per_document": {str(pk): n for pk, n in items.items()},
        "seen": len(set(ids) & _learnt_by_active(task)), "floor": floor,
        "meets_floor": _meets_floor(task=task, documents=len(ids), words=words, entities=entities),
    }
    shas = sorted(Document.objects.filter(pk__in=ids).values_list("sha256", flat=True))
    try:
        with transaction.atomic():
            evaluation_set = EvaluationSet.objects.create(task=task, number=number, method=method,
                                                          documents=shas, dataset=dataset,
                                                          statistics=statistics, created_by=user)
    except IntegrityError:
        raise ValidationError(_("Another evaluation set was frozen at the same moment; reload and try "
                                "again.")) from None
    transaction.on_commit(lambda: _enqueue_scoring(evaluation_set.pk))
    return evaluation_set


def _sample_key(sha256: str) -> str:
    return hashlib.sha256(f"{SAMPLE_SEED}:{sha256}".encode()).hexdigest()


def evaluation_set_sample(*, task: str, size: int | None = None,
                          user: AbstractBaseUser | None = None) -> EvaluationSet:
    """Sample and freeze the task's next evaluation set from its reviewed documents.

    The rule: documents the active version has not learnt from come first (their scores are honest), each
    group in a fixed order given by its SHA-256; `size` documents, or by default DOCLOOP_EVAL_FRACTION of
    the reviewed documents, growing until the floor is met (its entities, and its documents or, for
    entities, as many 250-word passages: a few long documents are enough evidence, and every document held
    out is one training never sees), never more than half of the reviewed documents (the rest is for
    learning). A previous set's documents are kept: a set grows, it never swaps documents."""
    pool = list(learnable_documents(task=task).values_list("pk", "sha256"))
    total = len(pool)
    current = evaluation_set_current(task=task)
    kept = set(current.documents) if current else set()
    seen = _learnt_by_active(task)
    pool.sort(key=lambda row: (row[1] not in kept, row[0] in seen, _sample_key(row[1])))
    cap = total // 2
    if size is not None:
        if size < 1 or size > total - 2:
            raise ValidationError(_("An evaluation set of %(size)d documents is not possible: %(total)d "
                                    "reviewed documents, and at least 2 must remain to learn from.")
                                  % {"size": size, "total": total})
        chosen = [pk for pk, _sha in pool[:size]]
    else:
        if cap < 1:
            raise ValidationError(_("Too few reviewed documents (%(total)d) to sample an evaluation set.")
                                  % {"total": total})
        target = min(cap, max(1, math.ceil(settings.DOCLOOP_EVAL_FRACTION * total), len(kept)))
        ids = [pk for pk, _sha in pool]
        items = _items_per_document(task=task, ids=ids)
        words = dict(Document.objects.filter(pk__in=ids).values_list("pk", "word_count"))
        chosen, entities, chosen_words = [], 0, 0
        for pk in ids:
            if len(chosen) >= cap or (len(chosen) >= target and _meets_floor(
                    task=task, documents=len(chosen), words=chosen_words, entities=entities)):
                break
            chosen.append(pk)
            entities += items[pk]
            chosen_words += words.get(pk) or 0
    return evaluation_set_freeze(task=task, document_ids=chosen, user=user,
                                 method=EvaluationSet.Method.SAMPLED)


def evaluation_set_for_training(*, task: str) -> EvaluationSet | None:
    """The task's current set; when there is none, one sampled now if there are at least twice the floor's
    documents reviewed (else None: the caller falls back to its own validation documents)."""
    current = evaluation_set_current(task=task)
    if current is not None:
        return current
    if learnable_documents(task=task).count() < 2 * settings.DOCLOOP_EVAL_MIN_DOCUMENTS:
        return None
    try:
        return evaluation_set_sample(task=task)
    except ValidationError:
        return evaluation_set_current(task=task)  # sampled by someone else at the same moment


def evaluation_set_status(*, task: str) -> dict:
    """What the pages show about a task's evaluation set: the set (or why there is none), its documents
    with their entity counts, and the floor."""
    current = evaluation_set_current(task=task)
    reviewed = learnable_documents(task=task).count()
    floor = evaluation_floor()
    documents = []
    if current is not None:
        per_document = current.statistics.get("per_document") or {}
        rows = (Document.objects.filter(sha256__in=current.documents)
                .values_list("pk", "original_name", "sha256"))
        documents = sorted(({"pk": pk, "name": name, "sha256": sha, "entities": per_document.get(str(pk))}
                            for pk, name, sha in rows), key=lambda d: d["name"])
    return {"task": task, "task_label": task_spec(task).label,
            "counts_entities": task_spec(task).review().counts_entities, "set": current,
            "documents": documents, "reviewed": reviewed, "floor": floor,
            "needed_for_sampling": 2 * floor["documents"], "passage_words": BLOCK_WORDS,
            "fraction_percent": round(100 * settings.DOCLOOP_EVAL_FRACTION),
            "versions": EvaluationSet.objects.filter(task=task).count()}


def evaluation_rows(*, evaluation_set: EvaluationSet) -> list[dict]:
    """The frozen rows of the set (its snapshot's JSONL), in canonical order."""
    from training.ml.snapshot import snapshot_rows
    from training.services.datasets import dataset_local_file

    return list(snapshot_rows(dataset_local_file(dataset=evaluation_set.dataset)))


def evaluation_keys(*, task: str) -> set[str]:
    """The SHA-256s of the current set's documents: what training leaves out."""
    current = evaluation_set_current(task=task)
    return set(current.documents) if current else set()


# Scores --------------------------------------------------------------------------------------------------

SCORE_KEYS = ("precision", "recall", "f1", "macro_f1", "accuracy", "per_label", "per_document", "per_block",
              "passage_words", "words")


def scores_summary(scores: dict) -> dict:
    return {k: scores[k] for k in SCORE_KEYS if k in scores}


def version_score_cached(*, version: ModelVersion, evaluation_set: EvaluationSet | None) -> dict | None:
    if evaluation_set is None:
        return None
    from training.ml.metrics import passages_current

    row = VersionScore.objects.filter(version=version, evaluation_set=evaluation_set).first()
    if row is None or row.scores.get("per_document") is None or not passages_current(row.scores):
        return None  # never scored, or scored before the gate kept the counts it compares now
    return row.scores


def version_score_store(*, version: ModelVersion, evaluation_set: EvaluationSet,
                        scores: dict) -> VersionScore:
    summary = scores_summary(scores)
    summary["documents"] = len(summary.get("per_document") or [])
    score, _created = VersionScore.objects.update_or_create(version=version, evaluation_set=evaluation_set,
                                                            defaults={"f1": scores["f1"], "scores": summary})
    return score


def version_evaluate(*, version: ModelVersion, documents: list) -> dict:
    """Score a stored version on the task's documents (the worker's side: loads the artefact)."""
    from training.artefacts import artefact_local_dir

    return task_spec(version.task).ml().evaluate_saved(artefact_local_dir(location=version.artefact),
                                                       documents)


def version_score_on(*, version: ModelVersion, evaluation_set: EvaluationSet,
                     documents: list | None = None) -> dict:
    """The version's scores on the set: stored ones, else computed now (and stored)."""
    cached = version_score_cached(version=version, evaluation_set=evaluation_set)
    if cached is not None:
        return cached
    if documents is None:
        ml = task_spec(version.task).ml()
        documents = [ml.document_from_row(row) for row in evaluation_rows(evaluation_set=evaluation_set)]
    scores = version_evaluate(version=version, documents=documents)
    version_score_store(version=version, evaluation_set=evaluation_set, scores=scores)
    return scores


def evaluation_set_score_versions(*, evaluation_set: EvaluationSet, limit: int = 50) -> int:
    """Score the task's versions (newest first, at most `limit`) that have no score on the set yet; a
    version whose artefact is gone is skipped. Returns how many were scored."""
    ml = task_spec(evaluation_set.task).ml()
    documents = [ml.document_from_row(row) for row in evaluation_rows(evaluation_set=evaluation_set)]
    done = 0
    pending = (ModelVersion.objects.filter(task=evaluation_set.task)
               .exclude(scores__evaluation_set=evaluation_set)
               .order_by("-is_active", "-number")[:limit])
    for version in pending:
        try:
            version_score_on(version=version, evaluation_set=evaluation_set, documents=documents)
        except (FileNotFoundError, OSError) as exc:
            logger.warning("version %s could not be scored on %s: %s", version, evaluation_set, exc)
            continue
        done += 1
    return done


def _enqueue_scoring(evaluation_set_id: int) -> None:
    try:
        jobs.rq_enqueue("training", "training.jobs.evaluation_set_score_versions", evaluation_set_id)
    except jobs.QUEUE_ERRORS:
        logger.exception("could not queue the scoring of evaluation set %s", evaluation_set_id)


# The gate ------------------------------------------------------------------------------------------------

def _average(task: str) -> str:
    """The F1 a task's versions report (its registry entry): span micro F1, document-class macro F1."""
    return task_spec(task).average


def _where(evaluation_set: EvaluationSet | None, documents: int) -> str:
    if evaluation_set is None:
        return _("the run's %(n)d validation documents (there is no evaluation set yet)") % {"n": documents}
    return _("evaluation set #%(number)d (%(n)d documents)") % {"number": evaluation_set.number,
                                                                "n": documents}


def gate_judge(*, task: str, candidate: dict, reference: dict | None, reference_version: ModelVersion | None,
               evaluation_set: EvaluationSet | None, seed: int = 0,
               learnt_by_both: bool = False, held_out_documents: int = 0) -> tuple[str, str, dict]:
    """(status, reason, figures) of a new version, from its scores and the active version's on the same
    documents (each with `per_document` counts). Pure apart from the settings; no database writes.

    `held_out_documents` (a feedback update, reference_held_out): on that many of the documents, the
    reference holds the scores of the parent's full run before its refit learnt them; said in the figures
    and, on a refusal, in the reason.

    `learnt_by_both` (a full run before any evaluation set, whose validation documents the active version
    learnt too: gate_scores_for_run): the two are not compared closely, since both scores would measure
    what each memorised; the run, trained on every reviewed document with the full recipe, must only
    reach LEARNT_SHARE of the active version's F1 there (and the first version's floor). Its own
    validation F1 (before the refit) is the honest figure; the evaluation set, once sampled, compares
    versions on documents neither learnt."""
    from training.ml.gate import floor_check, gate_compare
    from training.ml.metrics import BLOCK_WORDS, PASSAGE_WORDS, passages_current

    if held_out_documents and reference_version is not None and not learnt_by_both:
        status, reason, figures = gate_judge(task=task, candidate=candidate, reference=reference,
                                             reference_version=reference_version,
                                             evaluation_set=evaluation_set, seed=seed)
        figures = {**figures, "reference": "held out before the refit",
                   "held_out_documents": held_out_documents}
        if status == Gate.REJECTED:
            reason = " ".join((reason, ngettext(
                "On %(n)d validation document, which version %(ref)d learnt in its full run's refit, the "
                "reference is that run's score there before the refit learnt it.",
                "On %(n)d validation documents, which version %(ref)d learnt in its full run's refit, the "
                "reference is that run's score there before the refit learnt them.", held_out_documents) % {
                "n": held_out_documents, "ref": reference_version.number}))
        return status, reason, figures
    counts = candidate.get("per_document") or []
    where = _where(evaluation_set, len(counts))
    base = {"evaluation_set": evaluation_set.number if evaluation_set else None, "documents": len(counts)}
    if not counts:
        return Gate.UNGATED, "", base
    if learnt_by_both and reference_version is not None:
        reference_f1 = floor_check((reference or {}).get("per_document") or [], average=_average(task))[
            "candidate_f1"]
        check = floor_check(counts, average=_average(task), min_f1=settings.DOCLOOP_GATE_FIRST_MIN_F1)
        f1 = check["candidate_f1"]
        figures = {**base, "rule": "learnt by both", "reference_version": reference_version.number, **check,
                   "reference_f1_learnt": reference_f1, "min_share_f1": LEARNT_SHARE * reference_f1}
        figures["passed"] = check["passed"] and f1 >= figures["min_share_f1"]
        if figures["passed"]:
            return Gate.PASSED, "", figures
        return Gate.REJECTED, _(
            "Version %(ref)d and this version both learnt %(where)s, so their F1s there measure what each "
            "memorised and are not compared closely; but this version reached only %(f1).3f there, under "
            "half of version %(ref)d's %(ref_f1).3f: it did not learn them. Version %(ref)d stays "
            "active.") % {
            "where": where, "f1": f1, "ref": reference_version.number,
            "ref_f1": reference_f1}, figures
    if reference_version is None:
        check = floor_check(counts, average=_average(task), min_f1=settings.DOCLOOP_GATE_FIRST_MIN_F1)
        figures = {**base, "first": True, **check}
        if check["passed"]:
            return Gate.PASSED, "", figures
        return Gate.BELOW_FLOOR, _(
            "As the task's first version it must reach an F1 above %(floor).3f on %(where)s; it reached "
            "%(f1).3f (it finds no entity there), so it was published inactive.") % {
            "floor": settings.DOCLOOP_GATE_FIRST_MIN_F1, "where": where, "f1": check["candidate_f1"]}, figures
    if reference is None or len(reference.get("per_document") or []) != len(counts):
        return Gate.SUPERSEDED, _("Version %(ref)d, the active version, has no score on %(where)s to compare "
                                  "with; this version was published inactive.") % {
            "ref": reference_version.number, "where": where}, {
            **base, "reference_version": reference_version.number}
    labels = sorted(set(candidate.get("per_label") or {}) | set(reference.get("per_label") or {}))
    units, reference_units, candidate_units = "documents", reference["per_document"], counts
    blocks = (candidate.get("per_block") or [], reference.get("per_block") or [])
    words = 0
    if (len(counts) < settings.DOCLOOP_EVAL_MIN_DOCUMENTS and len(blocks[0]) > len(counts)
            and len(blocks[0]) == len(blocks[1])
            and passages_current(candidate) and passages_current(reference)):
        # Too few documents for a bootstrap over documents (entities only): resample the passages they are
        # cut into (about BLOCK_WORDS words, shorter where that makes too few), so that one or two long
        # documents still tell noise from a fall.
        from training.ml.gate import passages

        cut = {"min_units": settings.DOCLOOP_EVAL_MIN_DOCUMENTS, "fine_words": PASSAGE_WORDS,
               "coarse_words": BLOCK_WORDS}
        candidate_units, words = passages(blocks[0], **cut)
        reference_units, _words = passages(blocks[1], **cut)
        units = "passages"
    result = gate_compare(reference_units, candidate_units, average=_average(task), labels=labels,
                          tolerance=settings.DOCLOOP_GATE_TOLERANCE,
                          confidence=settings.DOCLOOP_GATE_CONFIDENCE,
                          samples=settings.DOCLOOP_GATE_BOOTSTRAP_SAMPLES, seed=seed,
                          min_documents=settings.DOCLOOP_EVAL_MIN_DOCUMENTS)
    figures = {**base, **result, "documents": len(counts), "units": units, "samples_of": len(candidate_units),
               "reference_version": reference_version.number, **({"passage_words": words} if words else {})}
    if not result["worse"]:
        return Gate.PASSED, "", figures
    if result["rule"] == "observed drop" and units == "passages":
        return Gate.REJECTED, _(
            "Validation F1 fell from %(before).3f (version %(ref)d) to %(after).3f on %(where)s. On "
            "fewer than %(floor)d passages of about %(words)d words (they make %(passages)d) the bootstrap "
            "cannot tell a fall from noise, so a drop beyond the tolerance of %(tolerance).3f is refused. "
            "Version %(ref)d stays active.") % {
            "before": result["reference_f1"], "after": result["candidate_f1"],
            "ref": reference_version.number, "where": where, "floor": result["min_documents"],
            "words": words, "passages": len(candidate_units), "tolerance": result["tolerance"]}, figures
    if units == "passages":
        return Gate.REJECTED, _(
            "Validation F1 fell from %(before).3f (version %(ref)d) to %(after).3f on %(where)s, beyond "
            "noise: a paired bootstrap over their %(passages)d passages of about %(words)d words puts the "
            "change at %(low)+.3f to %(high)+.3f (%(confidence)d%% confidence), below the tolerance of "
            "-%(tolerance).3f. Version %(ref)d stays active.") % {
            "before": result["reference_f1"], "after": result["candidate_f1"],
            "ref": reference_version.number, "where": where, "passages": len(candidate_units),
            "words": words, "low": result["low"], "high": result["high"],
            "confidence": round(100 * result["confidence"]), "tolerance": result["tolerance"]}, figures
    if result["rule"] == "observed drop":
        return Gate.REJECTED, _(
            "Validation F1 fell from %(before).3f (version %(ref)d) to %(after).3f on %(where)s. On fewer "
            "than %(floor)d documents the bootstrap cannot tell a fall from noise, so a drop beyond the "
            "tolerance of %(tolerance).3f is refused. Version %(ref)d stays active.") % {
            "before": result["reference_f1"], "after": result["candidate_f1"],
            "ref": reference_version.number, "where": where, "floor": result["min_documents"],
            "tolerance": result["tolerance"]}, figures
    return Gate.REJECTED, _(
        "Validation F1 fell from %(before).3f (version %(ref)d) to %(after).3f on %(where)s, beyond noise: a "
        "paired bootstrap over the documents puts the change at %(low)+.3f to %(high)+.3f (%(confidence)d%% "
        "confidence), below the tolerance of -%(tolerance).3f. Version %(ref)d stays active.") % {
        "before": result["reference_f1"], "after": result["candidate_f1"], "ref": reference_version.number,
        "where": where, "low": result["low"], "high": result["high"],
        "confidence": round(100 * result["confidence"]), "tolerance": result["tolerance"]}, figures


def version_learnt_documents(*, version: ModelVersion) -> set[int]:
    """The documents `version` learnt from, itself or through its parents: a full run's training documents
    and, when its refit ran, its validation documents (the refit learns them); a feedback update's
    documents and replay (not its validation documents)."""
    learnt: set[int] = set()
    seen: set[int] = set()
    while version is not None and version.pk not in seen:
        seen.add(version.pk)
        run = version.run
        stats = run.dataset_stats or {}
        keys = ["train_documents", "replay_documents"]
        if run.kind == TrainingRun.Kind.FULL and (run.hyperparameters or {}).get("refit", True):
            keys.append("eval_documents")
        learnt.update(pk for key in keys for pk in stats.get(key) or [] if isinstance(pk, int))
        version = version.parent
    return learnt


def _gold_total(counts: dict) -> int:
    return sum(int(values[2]) for values in counts.values())


def reference_held_out(*, before: dict, documents: list[int], held_out: dict | None, learnt: set[int],
                       passages: list[int] | None, average: str = "micro") -> tuple[dict, list[int]]:
    """The parent's scores on the guardrail's validation `documents`, with each document that the parent
    learnt (`learnt`) and that its root run held out (`held_out`: that run's chosen epoch on its validation
    documents, measured before its refit learnt them) scored as that run scored it then. On a document the
    parent memorised, its own F1 measures memory, and any update forgets some of it (5 to 11 points of a
    full-length document here); the score before the refit is what the lineage reached there without
    having seen it. Kept per document (`per_document`) and per passage (`per_block`, split by `passages`,
    each document's count), so the paired bootstrap compares the same units. A document whose gold
    entities changed since (re-reviewed) or whose passages differ keeps the parent's own score.

    Returns (reference, ids of the documents scored from before the refit); (before, []) when none is."""
    if not held_out or not before.get("per_document") or len(before["per_document"]) != len(documents):
        return before, []
    index = {pk: i for i, pk in enumerate(held_out.get("documents") or [])}
    held_counts = held_out.get("per_document") or []
    blocks = before.get("per_block")
    held_blocks = held_out.get("per_block")
    split = (blocks is not None and passages is not None and sum(passages) == len(blocks)
             and len(passages) == len(documents))
    if blocks is not None and (not split or held_blocks is None
                               or held_out.get("passage_words") != before.get("passage_words")):
        return before, []  # passages that would not pair up: the parent's own scores, as before
    per_document, per_block, swapped, start = [], [], [], 0
    for i, pk in enumerate(documents):
        own = before["per_document"][i]
        own_blocks = blocks[start:start + passages[i]] if split else None
        if split:
            start += passages[i]
        j = index.get(pk)
        usable = (pk in learnt and j is not None and j < len(held_counts)
                  and _gold_total(held_counts[j]) == _gold_total(own)
                  and (own_blocks is None or len(held_blocks[j]) == len(own_blocks)))
        if usable:
            swapped.append(pk)
        per_document.append(held_counts[j] if usable else own)
        if own_blocks is not None:
            per_block.extend(held_blocks[j] if usable else own_blocks)
    if not swapped:
        return before, []
    from training.ml.gate import f1_from_counts
    from training.ml.metrics import macro_f1, scores_from_counts

    reference = {**before, **scores_from_counts(per_document), "per_document": per_document}
    reference["macro_f1"] = macro_f1(reference["per_label"])
    if average != "micro":  # the document class: macro scores over the classes, and the accuracy
        per_label = list(reference["per_label"].values())
        reference.update(f1=f1_from_counts(per_document, average=average),
                         precision=sum(s["precision"] for s in per_label) / max(1, len(per_label)),
                         recall=sum(s["recall"] for s in per_label) / max(1, len(per_label)),
                         accuracy=sum(values[0] for counts in per_document for values in counts.values())
                         / max(1, len(per_document)))
    if blocks is not None:
        reference["per_block"] = per_block
    return reference, swapped


def _learnt_by_both(*, run: TrainingRun, active: ModelVersion) -> bool:
    """Whether a run without an evaluation set is judged on documents that both it and the active version
    learnt: its refit learnt its validation documents, and the active version (often a feedback chain that
    was sent them) learnt every one of them too."""
    run = TrainingRun.objects.get(pk=run.pk)  # dataset_stats as the run wrote them
    if not (run.hyperparameters or {}).get("refit", True):
        return False
    validation = {pk for pk in (run.dataset_stats or {}).get("eval_documents") or [] if isinstance(pk, int)}
    return bool(validation) and validation <= version_learnt_documents(version=active)


def gate_scores_for_run(*, run: TrainingRun, model_dir, evaluation_set: EvaluationSet | None,
                        fallback_documents: list) -> dict:
    """A finished run's gate inputs, computed on the worker: the new artefact's scores on the evaluation set
    (else on the run's validation documents) and the active version's on the same documents; and, without
    an evaluation set, whether both versions learnt those documents (`learnt_by_both`: gate_judge then
    asks only for LEARNT_SHARE of the active version's F1, since a closer comparison would measure what
    each memorised)."""
    ml = task_spec(run.task).ml()
    if evaluation_set is not None:
        documents = [ml.document_from_row(row) for row in evaluation_rows(evaluation_set=evaluation_set)]
    else:
        documents = list(fallback_documents)
    if not documents:
        return {}
    candidate = ml.evaluate_saved(model_dir, documents)
    active = ModelVersion.objects.filter(task=run.task, is_active=True).first()
    reference = None
    if active is not None:
        try:
            reference = (version_score_on(version=active, evaluation_set=evaluation_set, documents=documents)
                         if evaluation_set is not None
                         else version_evaluate(version=active, documents=documents))
        except (FileNotFoundError, OSError) as exc:
            logger.warning("the active version %s could not be scored: %s", active, exc)
    return {"candidate": scores_summary(candidate),
            "reference": scores_summary(reference) if reference else None,
            "reference_version": active.pk if active else None,
            "evaluation_set": evaluation_set.pk if evaluation_set else None,
            "learnt_by_both": bool(evaluation_set is None and active is not None
                                   and _learnt_by_both(run=run, active=active))}


def gate_apply(*, version: ModelVersion, inputs: dict, seed: int = 0) -> tuple[str, str]:
    """Inside the publishing transaction: judge `version` against the task's active version now (the one
    scored with it, or another with a stored score on the same set) and record the outcome and scores on
    the version. Returns (status, reason); the caller activates only on Gate.PASSED."""
    if not inputs:
        return Gate.UNGATED, ""
    evaluation_set = (EvaluationSet.objects.filter(pk=inputs["evaluation_set"]).first()
                      if inputs.get("evaluation_set") else None)
    active = (ModelVersion.objects.select_for_update().filter(task=version.task, is_active=True)
              .exclude(pk=version.pk).first())
    reference = None
    if active is not None:
        if active.pk == inputs.get("reference_version"):
            reference = inputs.get("reference")
        else:
            reference = version_score_cached(version=active, evaluation_set=evaluation_set)
    # Learnt by both: said of the version active when the run was scored; another one is compared as usual.
    learnt_by_both = bool(inputs.get("learnt_by_both") and active is not None
                          and active.pk == inputs.get("reference_version"))
    status, reason, figures = gate_judge(task=version.task, candidate=inputs["candidate"],
                                         reference=reference, reference_version=active,
                                         evaluation_set=evaluation_set, seed=seed,
                                         learnt_by_both=learnt_by_both)
    if evaluation_set is not None:
        version_score_store(version=version, evaluation_set=evaluation_set, scores=inputs["candidate"])
        if active is not None and reference is not None and active.pk == inputs.get("reference_version"):
            version_score_store(version=active, evaluation_set=evaluation_set, scores=reference)
    ModelVersion.objects.filter(pk=version.pk).update(gate_status=status, gate_reason=reason, gate=figures,
                                                      evaluation_set=evaluation_set)
    return status, reason
