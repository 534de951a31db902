"""training.ml.adapt on the packaged MiniLM with a tiny corpus: the encoder-only checkpoint gets a new MLM
head (fitted first, encoder frozen), the held-out perplexity falls, the saved encoder loads for both tasks with
the base's pooler, and a run stopped after a checkpoint resumes to the very same weights."""

from __future__ import annotations

import pytest
import torch
from django.conf import settings
from transformers import AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification

from training.ml.adapt import AdaptConfig, Blocks, adapt

TEXTS = [f"O réu {name} mora em {city} desde {2000 + i} . O processo foi distribuído à vara competente e as "
         f"partes foram intimadas para se manifestarem no prazo legal ."
         for i, (name, city) in enumerate([("João Silva", "Brasília"), ("Maria Souza", "Recife"),
                                           ("Pedro Santos", "Curitiba"), ("Ana Lima", "Salvador")] * 6)]


def _config(tmp_path, name: str, **overrides) -> AdaptConfig:
    values = {"steps": 6, "head_steps": 3, "batch_size": 4, "max_length": 32, "learning_rate": 3e-4,
              "checkpoint_every": 2, "seed": 5, **overrides}
    return AdaptConfig(base_model=settings.DOCLOOP_BASE_MODEL, output_dir=str(tmp_path / name), **values)


def test_blocks_cut_the_pages_tokens_into_blocks_of_the_maximum_length():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(settings.DOCLOOP_BASE_MODEL)
    blocks = Blocks(tokenizer, ["uma frase curta .", "", "outra página com mais palavras ."], max_length=64)
    assert len(blocks) == 1 and blocks.token_count > 8
    block = blocks.block(0)
    assert block[0] == tokenizer.cls_token_id and block[-1] == tokenizer.sep_token_id
    assert tokenizer.sep_token_id in block[1:-1]  # a separator between the two pages
    long = Blocks(tokenizer, TEXTS, max_length=32)
    assert all(len(long.block(i)) == 32 for i in range(len(long) - 1)) and len(long.block(len(long) - 1)) <= 32


@pytest.mark.slow
def test_it_adapts_the_encoder_and_saves_it_for_both_tasks(tmp_path):
    result = adapt(_config(tmp_path, "out", steps=12, head_steps=6, checkpoint_every=0), TEXTS[:20], TEXTS[20:])
    assert result["head_initialised"] and result["head_steps"] == 6 and result["steps"] == 12
    assert result["perplexity_after"] < result["perplexity_before"]

    base = AutoModel.from_pretrained(settings.DOCLOOP_BASE_MODEL)
    tagger = AutoModelForTokenClassification.from_pretrained(tmp_path / "out", num_labels=3)
    classifier = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out", num_labels=2)
    query = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(tagger.bert.state_dict()[query], base.state_dict()[query])
    assert torch.equal(tagger.bert.state_dict()[query], classifier.bert.state_dict()[query])
    # The pooler, which masked-language modelling does not train, is the base's, not a random one.
    assert torch.equal(classifier.bert.pooler.dense.weight, base.pooler.dense.weight)


@pytest.mark.slow
def test_a_stopped_adaptation_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    straight = adapt(_config(tmp_path, "straight"), TEXTS[:20], TEXTS[20:])

    class Killed(Exception):
        pass

    checkpoints = []

    def kill_after_step_4(info):  # overall step 3 + 4 = 7: after the checkpoint of adaptation step 4
        if info["step"] == 3 + 5:
            raise Killed

    with pytest.raises(Killed):
        adapt(_config(tmp_path, "killed"), TEXTS[:20], TEXTS[20:], on_step=kill_after_step_4,
              checkpoint_dir=tmp_path / "checkpoint", on_checkpoint=checkpoints.append)
    assert [c["step"] for c in checkpoints] == [0, 2, 4]
    steps = []
    resumed = adapt(_config(tmp_path, "resumed"), TEXTS[:20], TEXTS[20:], on_step=steps.append,
                    checkpoint_dir=tmp_path / "checkpoint")
    assert resumed["resumed_from"] == 4 and [s["step"] for s in steps] == [8, 9]
    assert resumed["perplexity_before"] == straight["perplexity_before"]
    assert resumed["perplexity_after"] == pytest.approx(straight["perplexity_after"], rel=1e-5)
    a = AutoModel.from_pretrained(tmp_path / "straight").state_dict()
    b = AutoModel.from_pretrained(tmp_path / "resumed").state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
