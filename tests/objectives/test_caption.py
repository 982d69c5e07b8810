"""The ``caption`` objective (CoCa's captioner, CapPa): its loss, parallel prediction, training the
``coca`` and ``cappa`` recipes, generation through ``synclip.load`` and ``synclip export``, the CLI."""

import pytest
import torch

from run_helpers import small_run_overrides
from synclip.api import load
from synclip.cli import main
from synclip.config import load_config
from synclip.io.checkpoint import read_synclip_checkpoint
from synclip.losses.caption import caption_loss
from synclip.models.caption_generation import EOT_ID
from synclip.objectives.base import Encoded
from synclip.objectives.caption import CaptionHead
from synclip.recipe import Recipe
from synclip.train.loop import train

SMALL = {"n_queries": 8, "layers": 1}  # a small pooler and decoder keep the tests fast


def test_the_loss_is_caption_loss_on_the_decoders_own_outputs(micro_model, make_batch):
    batch = make_batch(micro_model, ["image", "text"], n=8)
    for options in ({}, {"text_input": "embedding", "n_queries": None}):
        recipe = Recipe(micro_model, {"caption": {**SMALL, **options}}).eval()
        objective = recipe.objectives["caption"]
        out = recipe(Encoded(micro_model, batch), batch)
        x = objective.decoder_inputs(Encoded(micro_model, batch), batch)
        tokens = batch["pairs"]["text"]
        longest = int((tokens != 0).sum(1).max())
        assert torch.equal(x["targets"], tokens[:, 1:longest])  # cut after the longest caption
        if options:
            assert torch.equal(x["inputs"], tokens[:, : longest - 1])
        expected = caption_loss(objective.decoder(x["image"], x["text"]), x["targets"])
        assert torch.allclose(out["caption_loss"], expected["loss"])
        # only real tokens count: a batch padded further gives the same loss
        logits = objective.decoder(x["image"], x["text"])
        padded = torch.cat([x["targets"], torch.zeros_like(x["targets"])], dim=1)
        more = torch.cat([logits, torch.randn_like(logits)], dim=1)
        assert torch.allclose(caption_loss(more, padded)["loss"], expected["loss"])


def test_parallel_prediction_masks_every_input_token_of_the_chosen_captions(micro_model, make_batch):
    recipe = Recipe(
        micro_model,
        {"caption": {**SMALL, "text_input": "embedding", "n_queries": None, "parallel_fraction": 0.5}},
    ).train()
    objective = recipe.objectives["caption"]
    views = {read.view for read in objective.reads()}
    assert views == {"image", "text", "uniform"}  # each caption's draw comes from the loader
    batch = make_batch(micro_model, sorted(views), n=16)
    x = objective.decoder_inputs(Encoded(micro_model, batch), batch)
    chosen = x["parallel"]
    assert 0 < int(chosen.sum()) < 16
    assert torch.equal(chosen, batch["pairs"]["uniform"] < 0.5)  # the sample's seeded draw decides
    torch.manual_seed(3)  # not the process RNG: the same batch makes the same choice (1 or N ranks)
    assert torch.equal(objective.decoder_inputs(Encoded(micro_model, batch), batch)["parallel"], chosen)
    mask_id = objective.embedding.mask_id
    assert (x["inputs"][chosen] == mask_id).all()  # every input token, pads included
    assert not (x["inputs"][~chosen] == mask_id).any()
    assert torch.equal(x["targets"][chosen], batch["pairs"]["text"][chosen][:, 1 : x["targets"].shape[1] + 1])
    out = recipe(Encoded(micro_model, batch), batch)
    assert torch.isfinite(out["caption_loss"]) and "caption_parallel" in out
    undrawn = {"pairs": {k: v for k, v in batch["pairs"].items() if k != "uniform"}}
    with pytest.raises(ValueError, match="'uniform' view"):  # never a silent draw from the process RNG
        objective.decoder_inputs(Encoded(micro_model, undrawn), undrawn)
    objective.eval()  # no parallel prediction at evaluation
    assert not objective.decoder_inputs(Encoded(micro_model, batch), batch)["parallel"].any()
    assert not objective.decoder_inputs(Encoded(micro_model, undrawn), undrawn)["parallel"].any()
    with pytest.raises(ValueError, match="text_input='embedding'"):
        Recipe(micro_model, {"caption": {"parallel_fraction": 0.75}})


def _train(recipe, emoji_subset, out_dir, **extra):
    settings = {"train.max_steps": 3, "train.name": recipe, **extra}
    overrides = small_run_overrides(emoji_subset, out_dir, **settings)
    overrides.append("objectives.caption.n_queries=" + ("null" if recipe == "cappa" else "8"))
    return train(load_config(recipe, overrides))


def _image_files(tsv, n):
    rows = tsv.read_text().splitlines()
    header = rows[0].split("\t")
    return [row.split("\t")[header.index("filepath")] for row in rows[1 : n + 1]]


@pytest.fixture(scope="module")
def coca_run(emoji_subset, tmp_path_factory):
    return _train("coca", emoji_subset, tmp_path_factory.mktemp("coca"))


def test_coca_trains_saves_the_decoder_and_generates(coca_run, emoji_subset, tmp_path):
    state = read_synclip_checkpoint(coca_run / "checkpoint.pt")
    head = state["heads"]["caption"]
    assert head["type"] == "caption" and head["state"]["text_input"] == "tower"
    assert "text_decoder.text_projection" in head["state"]["decoder"]
    assert set(state["model"]) >= {"logit_scale"}  # clip's temperature exported beside the towers

    model = load(coca_run / "checkpoint.pt")
    assert isinstance(model.heads["caption"], CaptionHead)
    assert "heads" not in dict(model.named_children())  # not a submodule: the state dict is unchanged
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in _image_files(emoji_subset, 3)]
    captions = model.generate(images)
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
    assert model.generate(images) == captions  # greedy is deterministic
    batch = torch.stack([model.preprocess(i) for i in images])
    assert model.generate(batch) == captions
    ids = model.heads["caption"].generate_ids(model, batch, max_len=12)
    for row in ids.tolist():  # stops at the end token: nothing but padding after it
        if EOT_ID in row:
            assert all(t == 0 for t in row[row.index(EOT_ID) + 1 :])
        else:
            assert len(row) == 12
    assert len(model.generate(batch, method="beam", beams=2, max_len=8)) == 3
    g = torch.Generator().manual_seed(0)
    assert len(model.generate(batch, method="sample", temperature=0.7, generator=g)) == 3

    out = tmp_path / "coca_open_clip.pt"
    assert main(["export", str(coca_run / "checkpoint.pt"), str(out)]) == 0
    exported = load(out, model_name="micro-vit-32")
    assert exported.generate(images) == captions


def test_generation_stops_at_the_end_token(coca_run):
    """A decoder whose next-token choice is forced to the end token stops after it."""
    model = load(coca_run / "checkpoint.pt")
    head = model.heads["caption"]
    with torch.no_grad():
        head.decoder.text_decoder.text_projection.zero_()
        head.decoder.text_decoder.text_projection[:, EOT_ID] = 1.0
        head.decoder.text_decoder.ln_final.bias.fill_(1.0)
        head.decoder.text_decoder.ln_final.weight.zero_()  # every position: logit 1 for EOT, 0 elsewhere
    x = torch.zeros(2, 3, model.image_size, model.image_size)
    ids = head.generate_ids(model, x, min_len=0)
    assert ids.tolist() == [[49406, EOT_ID]] * 2
    assert model.generate(x, min_len=0) == ["", ""]
    ids = head.generate_ids(model, x, min_len=2)  # EOT forbidden for 2 tokens, then taken
    assert ids.shape[1] == 4 and (ids[:, -1] == EOT_ID).all()


def test_cappa_trains_and_captions_on_the_command_line(emoji_subset, tmp_path, capsys):
    run_dir = _train("cappa", emoji_subset, tmp_path)
    state = read_synclip_checkpoint(run_dir / "checkpoint.pt")
    assert state["heads"]["caption"]["state"]["text_input"] == "embedding"
    assert state["heads"]["caption"]["options"]["parallel_fraction"] == 0.75
    model = load(run_dir / "checkpoint.pt")
    files = _image_files(emoji_subset, 2)
    from PIL import Image

    expected = model.generate([Image.open(p).convert("RGB") for p in files])
    capsys.readouterr()
    assert main(["caption", str(run_dir / "checkpoint.pt"), *files]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"{path}\t{caption}" for path, caption in zip(files, expected)]
    assert (
        main(["caption", str(run_dir / "checkpoint.pt"), files[0], "--method", "beam", "--beams", "2"]) == 0
    )


def test_a_model_without_a_decoder_says_so(emoji_subset, tmp_path, capsys):
    overrides = small_run_overrides(emoji_subset, tmp_path, **{"train.max_steps": 1})
    run_dir = train(load_config("clip", overrides))
    model = load(run_dir / "checkpoint.pt")
    with pytest.raises(ValueError, match="no captioning decoder.*coca, cappa"):
        model.generate(torch.zeros(1, 3, 32, 32))
    assert main(["caption", str(run_dir / "checkpoint.pt"), _image_files(emoji_subset, 1)[0]]) == 2
    assert "no captioning decoder" in capsys.readouterr().err
