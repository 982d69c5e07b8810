"""The objective contract from the outside: a new objective with an inference head, written in this test
file alone (registry + recipe dict), trains, saves, and its head comes back from ``synclip.load`` and
through ``synclip export``, without touching any file of the package. Also: checkpoints written before
heads had their own key still resume and give their heads."""

import open_clip
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from run_helpers import small_run_overrides
from synclip.api import load
from synclip.cli import main
from synclip.config import load_config
from synclip.io.checkpoint import read_synclip_checkpoint, save_atomic
from synclip.objectives.base import Encoded, Objective, Read, RunContext
from synclip.recipe import Recipe
from synclip.registry import OBJECTIVES
from synclip.train.loop import train


class ToyHead(nn.Module):
    """The toy objective's head at inference: scores image features against K learned directions."""

    def __init__(self, weight: torch.Tensor, temperature: float):
        super().__init__()
        self.temperature = temperature
        self.register_buffer("weight", weight.clone())  # (K, D)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features @ F.normalize(self.weight, dim=-1).T / self.temperature  # (B, K)


@OBJECTIVES.register("toy_bucket")
class ToyBucket(Objective):
    """Classifies each image into the bucket of its caption length (short / medium / long): a head that
    a user needs at inference, with a learned bias exported beside the towers."""

    has_head = True

    def __init__(self, model: nn.Module, source: str = "pairs", buckets: int = 3, temperature: float = 0.1):
        super().__init__(model, source)
        self.temperature = temperature
        self.weight = nn.Parameter(torch.randn(buckets, int(model.embed_dim)) * 0.02)  # (K, D)
        self.toy_bias = nn.Parameter(torch.zeros(()))

    def reads(self) -> list[Read]:
        return [Read("image", "image", self.source), Read("text", None, self.source)]

    def forward(self, enc: Encoded, batch: dict) -> dict[str, torch.Tensor]:
        image = enc.image("image", self.source)["features"]  # (B, D)
        lengths = (batch[self.source]["text"] != 0).sum(-1)  # (B,) tokens per caption
        target = torch.bucketize(lengths, torch.tensor([5, 7], device=lengths.device))  # (B,) in 0..2
        logits = image @ F.normalize(self.weight, dim=-1).T / self.temperature + self.toy_bias  # (B, K)
        return {"loss": F.cross_entropy(logits, target)}

    def export_state(self) -> dict[str, torch.Tensor]:
        return {"toy_bias": self.toy_bias.detach()}

    def inference_state(self) -> dict:
        return {"weight": self.weight.detach().clone()}

    @classmethod
    def inference_head(cls, options: dict, state: dict) -> nn.Module:
        return ToyHead(state["weight"], options["temperature"])


def _train(emoji_subset, out_dir, *extra):
    settings = {"train.max_steps": 3, "train.name": "toy", **dict(e.split("=", 1) for e in extra)}
    overrides = small_run_overrides(emoji_subset, out_dir, **settings)
    overrides.append("objectives={clip: {}, toy_bucket: {weight: 0.5, temperature: 0.2}}")
    return train(load_config("clip", overrides))


def test_a_new_objective_with_a_head_reaches_load_and_export(emoji_subset, tmp_path):
    run_dir = _train(emoji_subset, tmp_path)
    state = read_synclip_checkpoint(run_dir / "checkpoint.pt")
    trained = state["recipe"]["objectives.toy_bucket.weight"]  # (3, D)
    assert state["heads"]["toy_bucket"]["type"] == "toy_bucket"
    assert state["heads"]["toy_bucket"]["options"]["temperature"] == 0.2  # the run's option, not the default
    assert "toy_bias" in state["model"] and "logit_scale" in state["model"]  # exported beside the towers

    model = load(run_dir / "checkpoint.pt")
    head = model.heads["toy_bucket"]
    assert isinstance(head, ToyHead) and head.temperature == 0.2
    assert torch.equal(head.weight, trained)
    images = torch.stack([model.preprocess(img) for img in _images(emoji_subset, 4)])
    with torch.no_grad():
        scores = head(F.normalize(model.encode_image(images), dim=-1))
    assert scores.shape == (4, 3)

    out = tmp_path / "toy_open_clip.pt"
    assert main(["export", str(run_dir / "checkpoint.pt"), str(out)]) == 0
    exported = load(out, model_name="micro-vit-32")
    assert torch.equal(exported.heads["toy_bucket"].weight, trained)
    reference = open_clip.create_model("micro-vit-32")  # open_clip reads the towers and ignores the heads
    missing, unexpected = reference.load_state_dict(
        {k: v for k, v in torch.load(out, weights_only=True)["state_dict"].items() if k != "toy_bias"}
    )
    assert not missing and not unexpected


def test_a_model_without_heads_loads_with_none(emoji_subset, tmp_path):
    overrides = small_run_overrides(emoji_subset, tmp_path, **{"train.max_steps": 1})
    run_dir = train(load_config("clip", overrides))
    assert read_synclip_checkpoint(run_dir / "checkpoint.pt")["heads"] == {}
    assert load(run_dir / "checkpoint.pt").heads == {}


def test_checkpoints_from_before_heads_resume_and_keep_their_heads(emoji_subset, tmp_path):
    """The format main wrote before this contract had no ``heads`` key: such a run resumes, and its
    heads are read from the objectives' state."""
    run_dir = _train(emoji_subset, tmp_path, "train.max_steps=2")
    state = read_synclip_checkpoint(run_dir / "checkpoint.pt")
    del state["heads"]
    state["model"].pop("toy_bias")
    save_atomic(state, run_dir / "checkpoint.pt")
    trained = state["recipe"]["objectives.toy_bucket.weight"]
    assert torch.equal(load(run_dir / "checkpoint.pt").heads["toy_bucket"].weight, trained)

    _train(emoji_subset, tmp_path, "train.max_steps=3", "train.resume=auto")
    resumed = read_synclip_checkpoint(run_dir / "checkpoint.pt")
    assert resumed["step"] == 3 and "toy_bucket" in resumed["heads"]


def test_reads_declare_towers_and_drive_prefetch_and_ddp_needs(micro_model):
    recipe = Recipe(micro_model, {"toy_bucket": {}})
    assert recipe.views() == {"pairs": ["image", "text"]}
    assert recipe.objectives["toy_bucket"].requests() == [("image", "image", "pairs", 0.0)]  # text: no tower
    assert recipe.may_leave_unused()  # it reads no text through the text tower: that tower gets no gradient
    assert not Recipe(micro_model, {"clip": {}}).may_leave_unused()
    with pytest.raises(ValueError, match="image or the text tower"):
        Read("image", "pixels")


def _images(tsv, n):
    from synclip.data.sources import CsvImageText

    source = CsvImageText(tsv, caption_key="caption")
    return [source[i]["image"] for i in range(n)]


def test_a_view_read_through_the_wrong_tower_is_refused_when_the_recipe_is_built(micro_model):
    context = RunContext(views={"caption_as_image": {"kind": "text"}})
    with pytest.raises(
        ValueError, match="reads view 'caption_as_image' through the image tower, but a 'text'"
    ):
        Recipe(micro_model, {"clip": {"image_view": "caption_as_image"}}, context)
    Recipe(micro_model, {"clip": {"text_view": "text_prompt"}}, context)  # a text view for the text tower
