"""Small option sets that keep objectives fast in tests (a module of its own: several folders have a
conftest.py, so ``from conftest import ...`` would depend on which one was imported first)."""

SMALL = {
    "simclr": {"mlp_dim": 64, "embed_dim": 32},
    "simsiam": {"proj_dim": 64, "pred_dim": 32},
    "text_simsiam": {"heads_of": None, "proj_dim": 64, "pred_dim": 32},  # alone: heads of its own
    "nearest_neighbour": {"queue_size": 64},
    "nclip": {"num_prototypes": 64, "hidden_dim": 64, "bottleneck_dim": 32},
    "mim_distill": {"teacher": "efficientnet-lite0", "teacher_size": 64},  # a teacher that installs offline
    "mae": {"decoder_width": 32},
    "aclip": {"simclr_mlp_dim": 64, "simclr_dim": 32, "byol_mlp_dim": 64, "byol_dim": 32},
    "self_distill": {"prototypes": 64, "hidden_dim": 32, "bottleneck_dim": 16},
    "masked_prediction": {"prototypes": 64, "hidden_dim": 32, "bottleneck_dim": 16},
}


def shrink(objectives: dict) -> dict:
    """Recipe objectives with the small head / queue sizes of SMALL (per objective type)."""
    out = {}
    for name, options in objectives.items():
        options = dict(options or {})
        kind = options.get("type", name)
        out[name] = {**options, **{k: v for k, v in SMALL.get(kind, {}).items()}}
    return out
