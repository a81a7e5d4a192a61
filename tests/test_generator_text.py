"""The MiniLM text encoder: equal to sentence-transformers on the packaged model, offline, cached."""

from __future__ import annotations

import pytest
import torch

from avatar.generator.text import EMBED_DIM, TextEncoder, load_text_encoder, model_dir


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return load_text_encoder()


def test_matches_sentence_transformers(encoder):
    from sentence_transformers import SentenceTransformer

    texts = ["a long nose", "A woman with a round face and a small nose.", "", "dark-skinned man, very bushy eyebrows",
             "Ünïcödé façade — 3D head"]
    reference = torch.from_numpy(SentenceTransformer(str(model_dir()), device="cpu").encode(texts))
    ours = encoder.encode(texts)
    assert ours.shape == (len(texts), EMBED_DIM)
    assert torch.allclose(ours, reference, atol=1e-5)


def test_semantics_cache_and_padding(encoder):
    e = encoder.encode(["a long nose", "a longer nose", "dark skin"])
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2])
    # batching with padding gives the same vectors as one at a time
    alone = encoder.forward_single("dark skin")
    assert torch.allclose(alone, e[2], atol=1e-5)
    assert "a long nose" in encoder.cache and encoder.encode([]).shape == (0, EMBED_DIM)


def test_compound_colour_words_and_what_is_not_modelled():
    from avatar.generator.captions import check_prompt
    from avatar.generator.pipeline import prompt_warnings

    for text in ("a woman with light brown skin", "dark brown skin", "olive skin"):
        assert [m.key for m in check_prompt(text).mentions] == ["skin_tone-"]  # one request, no contradiction
    parsed = check_prompt("a young woman with long red hair and a long nose")
    assert [m.key for m in parsed.mentions] == ["nose_length+"] and parsed.unrecognised == []
    assert parsed.not_modelled == ["young (age)", "woman (gender)"]  # the hair is modelled (a layer)
    assert check_prompt("a man with braids").not_modelled == ["man (gender)", "braids (hair)"]
    assert any(n.startswith("not modelled: young (age)") for n in prompt_warnings(parsed))
    assert check_prompt("an old man").not_modelled == ["old (age)", "man (gender)"]
