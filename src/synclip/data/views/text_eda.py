"""The ``text_eda`` view: an EDA-augmented caption, tokenised to a LongTensor (context_length,).

EDA (Wei & Zou, 2019, https://arxiv.org/abs/1901.11196) as DeCLIP uses it (Li et al. 2022,
https://arxiv.org/abs/2110.05208): DeCLIP's model (github.com/Sense-GVT/DeCLIP,
``prototype/model/declip.py``) applies one ``textaugment.EDA`` operation per caption, chosen with
``choice([synonym_replacement, random_swap, random_deletion])``, so the default ``ops`` are synonym
replacement (``sr``), random swap (``rs``) and random deletion (``rd``). Random insertion (``ri``, in
Wei & Zou's EDA but not in DeCLIP) is available as an option. ``alpha`` sets how many words change
(max(1, alpha * n_words); for deletion, the probability of dropping each word); textaugment's defaults
(n=1, p=0.1) are what alpha=0.1 gives on captions under 20 words. Synonyms come from WordNet 3.0 as
Debian's ``wordnet-base`` installs it (``/usr/share/wordnet/data.{noun,verb,adj,adv}``), parsed here
and cached per process. Randomness comes from Python's ``random``, which synclip seeds per sample.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from synclip.data.cache import cache_dir
from synclip.data.views.base import register_view, sample_field
from synclip.io import atomic_write_text

WORDNET_DIR = Path("/usr/share/wordnet")
POS_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
OPS = ("sr", "ri", "rs", "rd")  # every operation this module implements
DECLIP_OPS = ("sr", "rs", "rd")  # the ones DeCLIP chooses among (declip.py)
STOP_WORDS = frozenset(
    "a an the of and or in on at to for with by from is are was were be been it its this that "
    "as into over under up down out off".split()
)


def parse_wordnet_line(line: str) -> list[str]:
    """Lemmas of one ``data.*`` synset line: ``offset lex_filenum ss_type w_cnt (word lex_id)+ ...``.

    ``w_cnt`` is two hexadecimal digits; multi-word lemmas use ``_``; adjectives may carry a syntactic
    marker such as ``(a)``.
    """
    fields = line.split()
    count = int(fields[3], 16)
    words = fields[4 : 4 + 2 * count : 2]
    return [re.sub(r"\(.*\)$", "", w).replace("_", " ").lower() for w in words]


@lru_cache(maxsize=4)
def synonym_table(root: str = str(WORDNET_DIR)) -> dict[str, tuple[str, ...]]:
    """word -> sorted synonyms (other lemmas of any synset holding it); {} when WordNet is missing.

    Parsing takes seconds, so the table is also cached as JSON in synclip's data cache, keyed by the
    WordNet files' sizes and modification times (each DataLoader worker then loads it quickly).
    """
    files = [Path(root) / name for name in POS_FILES if (Path(root) / name).exists()]
    if not files:
        return {}
    stamp = "-".join(f"{f.stat().st_size}.{int(f.stat().st_mtime)}" for f in files)
    cached = cache_dir() / f"wordnet_synonyms_{zlib.crc32(f'{root}:{stamp}'.encode()):08x}.json"
    if cached.exists():
        return {w: tuple(s) for w, s in json.loads(cached.read_text()).items()}
    table = _parse_wordnet(files)
    atomic_write_text(cached, json.dumps(table))  # concurrent workers never read half a file
    return table


def _parse_wordnet(files: list[Path]) -> dict[str, tuple[str, ...]]:
    table: dict[str, set[str]] = {}
    for path in files:
        with path.open(encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):  # the licence header
                    continue
                lemmas = parse_wordnet_line(line)
                for w in lemmas:
                    table.setdefault(w, set()).update(x for x in lemmas if x != w)
    return {w: tuple(sorted(s)) for w, s in table.items() if s}


def _synonyms(word: str, table: dict) -> tuple[str, ...]:
    return table.get(word.lower(), ())


def synonym_replacement(words: list[str], n: int, table: dict) -> list[str]:
    out = list(words)
    candidates = [i for i, w in enumerate(words) if w.lower() not in STOP_WORDS and _synonyms(w, table)]
    random.shuffle(candidates)
    for i in candidates[:n]:
        out[i] = random.choice(_synonyms(words[i], table))
    return out


def random_insertion(words: list[str], n: int, table: dict) -> list[str]:
    out = list(words)
    candidates = [w for w in words if w.lower() not in STOP_WORDS and _synonyms(w, table)]
    for _ in range(n if candidates else 0):
        out.insert(random.randint(0, len(out)), random.choice(_synonyms(random.choice(candidates), table)))
    return out


def random_swap(words: list[str], n: int) -> list[str]:
    out = list(words)
    for _ in range(n if len(out) > 1 else 0):
        i, j = random.sample(range(len(out)), 2)
        out[i], out[j] = out[j], out[i]
    return out


def random_deletion(words: list[str], p: float) -> list[str]:
    if len(words) <= 1:
        return list(words)
    kept = [w for w in words if random.random() > p]
    return kept or [random.choice(words)]


def eda(
    caption: str, ops: tuple[str, ...] = DECLIP_OPS, alpha: float = 0.1, table: dict | None = None
) -> str:
    """One randomly chosen EDA operation applied to ``caption``."""
    words = caption.split()
    if not words:
        return caption
    table = synonym_table() if table is None else table
    n = max(1, int(alpha * len(words)))
    op = random.choice(ops)
    if op == "sr":
        words = synonym_replacement(words, n, table)
    elif op == "ri":
        words = random_insertion(words, n, table)
    elif op == "rs":
        words = random_swap(words, n)
    else:
        words = random_deletion(words, alpha)
    return " ".join(words)


def _eda_tokens(tokenizer: Any, ops: tuple[str, ...], alpha: float, train: bool, sample: dict):
    caption = sample_field(sample, "caption", "text_eda")
    return tokenizer([eda(caption, ops, alpha) if train else caption])[0]


@register_view("text_eda", tower="text", ops=DECLIP_OPS, alpha=0.1)
def build_text_eda_view(cfg: dict[str, Any], tokenizer: Any, train: bool):
    """Build the EDA view (the plain caption when not training); needs a tokenizer."""
    if tokenizer is None:
        raise ValueError("the text_eda view needs a tokenizer (got None)")
    ops = tuple(cfg["ops"])
    unknown = sorted(set(ops) - set(OPS))
    if unknown or not ops:
        raise ValueError(f"text_eda view ops must be a non-empty subset of {OPS}, got {list(ops)}")
    if any(op in ("sr", "ri") for op in ops) and not synonym_table():
        raise ValueError(
            f"text_eda ops sr/ri need WordNet at {WORDNET_DIR} (Debian package wordnet-base); "
            "install it or set views.text_eda.ops=[rs, rd]"
        )
    return partial(_eda_tokens, tokenizer, ops, float(cfg["alpha"]), train)
