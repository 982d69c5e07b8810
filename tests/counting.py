"""A model wrapper for tests that assert how much work evaluation does."""

from collections import Counter

import torch


class CountingModel(torch.nn.Module):
    """Delegates to a model and counts the images and texts it encodes in ``seen``."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, Counter()

    def encode_image(self, images, normalize=False):
        self.seen["images"] += len(images)
        return self.model.encode_image(images, normalize=normalize)

    def encode_text(self, tokens, normalize=False):
        self.seen["texts"] += len(tokens)
        return self.model.encode_text(tokens, normalize=normalize)
