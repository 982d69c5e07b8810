"""Class names with synonyms, as UniCL samples them, and WordNet synonyms of class names.

UniCL (Yang et al. 2022, https://arxiv.org/abs/2204.03610) lets a class carry several names: its
``prompt_engineering(classnames)`` (github.com/microsoft/UniCL, ``data/language/prompt_engineering.py``)
takes ``random.choice(classnames)`` when a class's names are a list, uniformly, then puts that name
into a random template. A source's ``classes`` option takes, per class, one name or a list of names;
the first name is the class's own (its ``class_name``, its UniCL target, its name in evaluation), the
whole list is its ``synonyms``, which the ``text_prompt`` view draws from per sample.

:func:`wordnet_synonyms` builds such lists from WordNet 3.0 as Debian's ``wordnet-base`` installs it
(the files text EDA reads): the lemmas of the name's most frequent ``noun.artifact`` sense (the order
of ``index.noun``), e.g. ``t-shirt -> [t-shirt, jersey, tee shirt]``. Restricting to one sense of
the man-made-object kind is our choice: WordNet's other senses of "bag" or "sneaker" are an udder or
an informer.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

WORDNET_DIR = Path("/usr/share/wordnet")
ARTIFACT = "06"  # lex_filenum of noun.artifact (WordNet's lexnames file)


def class_names(classes: list, where: str) -> tuple[list[str], list[list[str]]]:
    """``classes`` (per class a name or a non-empty list of names) -> (first names, name lists)."""
    names, synonyms = [], []
    for i, entry in enumerate(classes):
        group = [entry] if isinstance(entry, str) else entry
        if not isinstance(group, list) or not group or not all(isinstance(n, str) and n for n in group):
            raise ValueError(
                f"{where}: class {i} must be a name or a non-empty list of names (synonyms), got {entry!r}"
            )
        group = list(dict.fromkeys(group))  # duplicates would skew the draw
        names.append(group[0])
        synonyms.append(group)
    return names, synonyms


def _lemma_key(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


@lru_cache(maxsize=4)
def _noun_index(root: str) -> dict[str, list[int]]:
    """lemma -> synset offsets in ``data.noun``, most frequent sense first (``index.noun``)."""
    index: dict[str, list[int]] = {}
    with (Path(root) / "index.noun").open(encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):  # the licence header
                continue
            fields = line.split()
            # lemma pos synset_cnt p_cnt [ptr_symbol x p_cnt] sense_cnt tagsense_cnt offsets...
            synsets, pointers = int(fields[2]), int(fields[3])
            index[fields[0]] = [int(o) for o in fields[6 + pointers : 6 + pointers + synsets]]
    return index


def _synset(root: str, offset: int) -> tuple[str, list[str]]:
    """(lex_filenum, lemmas) of the ``data.noun`` synset at byte ``offset``."""
    from synclip.data.views.text_eda import parse_wordnet_line

    with (Path(root) / "data.noun").open("rb") as f:
        f.seek(offset)
        line = f.readline().decode("latin-1")
    return line.split()[1], parse_wordnet_line(line)


def wordnet_synonyms(name: str, root: str | Path = WORDNET_DIR) -> list[str]:
    """``[name, *other lemmas of its most frequent noun.artifact sense]``; ``[name]`` when WordNet has
    no such sense. Multi-word names are looked up as WordNet joins them (``ankle_boot``), a plural
    without its own entry as its singular (``trousers -> trouser``, WordNet's morphy rule)."""
    root = Path(root)
    if not (root / "index.noun").is_file():
        raise FileNotFoundError(
            f"WordNet not found at {root}; install Debian's wordnet-base "
            "(`apt-get update && apt-get install -y wordnet-base`, as root)"
        )
    index, key = _noun_index(str(root)), _lemma_key(name)
    if key not in index and key.endswith("s"):  # WordNet's morphy rule for plural nouns: -s -> ""
        key = key[:-1]
    for offset in index.get(key, []):
        lexfile, lemmas = _synset(str(root), offset)
        if lexfile == ARTIFACT:
            return list(dict.fromkeys([name, *(w for w in lemmas if w != name.lower())]))
    return [name]


def with_wordnet_synonyms(classes: list, root: str | Path = WORDNET_DIR) -> list[list[str]]:
    """Each class's names (one or a list) extended with :func:`wordnet_synonyms` of its first name."""
    _, groups = class_names(classes, "with_wordnet_synonyms")
    return [list(dict.fromkeys([*group, *wordnet_synonyms(group[0], root)])) for group in groups]
