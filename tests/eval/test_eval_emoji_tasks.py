import pytest
import torch

from synclip.eval import emoji_tasks as et


@pytest.fixture(scope="module")
def rows(emoji_corpus):
    return {style: et.read_rows(emoji_corpus, style) for style in et.STYLES}


def test_caption_positives_handle_shared_captions():
    rows = [{"caption": "a"}, {"caption": "b"}, {"caption": "a"}]
    captions, positives = et.caption_positives(rows)
    assert captions == ["a", "b"]
    assert positives.tolist() == [[True, False, True], [False, True, False]]


def test_words_and_base_names():
    assert et.words("Eight O’clock") == {"eight", "o", "clock"}
    assert et.base_name("Santa Claus medium-light skin tone") == "santa claus"
    assert et.base_name("kiss: man, man, light skin tone, dark skin tone") == "kiss man, man"
    assert et.base_name("woman technologist: medium skin tone") == et.base_name("woman technologist")


def test_head_noun_label_needs_exactly_one_class_noun():
    nouns = ["cat", "face", "heart"]
    assert et.head_noun_label("grinning cat", nouns) == 0
    assert et.head_noun_label("cat face", nouns) is None  # two class nouns
    assert et.head_noun_label("catalogue", nouns) is None  # not a whole word
    assert et.head_noun_label("face with tears of joy", nouns) == 1


def test_head_nouns_are_frequent_distinct_words_of_the_real_corpus(rows):
    """The fixed HEAD_NOUNS list, verified: each labels >= 8 captions from >= 4 skin-tone-free names."""
    assert 20 <= len(et.HEAD_NOUNS) <= 30 and len(set(et.HEAD_NOUNS)) == len(et.HEAD_NOUNS)
    for style in et.STYLES:
        stats = et.head_noun_stats(rows[style], et.HEAD_NOUNS)
        weak = {
            n: s for n, s in stats.items() if s["labelled"] < et.MIN_CAPTIONS or s["names"] < et.MIN_NAMES
        }
        assert not weak, (style, weak)


def test_head_noun_labels_are_consistent_with_captions(emoji_corpus, rows):
    for style in et.STYLES:
        task = et.head_noun_task(emoji_corpus, style, rows[style])
        assert len(task.index) == len(task.labels) > 500
        assert sorted(set(task.labels)) == list(range(len(et.HEAD_NOUNS)))  # every class has images
        for i, label in zip(task.index, task.labels):
            caption_words = et.words(rows[style][i]["caption"])
            assert task.class_names[label] in caption_words
            assert sum(noun in caption_words for noun in task.class_names) == 1
        kept = set(task.index)
        for i, row in enumerate(rows[style]):  # every dropped caption has no or several class nouns
            if i not in kept:
                assert sum(noun in et.words(row["caption"]) for noun in et.HEAD_NOUNS) != 1


def test_category_names_never_occur_in_captions(emoji_corpus, rows):
    """Why category zero-shot is expected to stay at chance after training on the names."""
    task = et.label_task(emoji_corpus, "twemoji", rows["twemoji"], "category")
    assert len(task.class_names) >= 9 and "people and body" in task.class_names
    assert all("&" not in name and name == name.lower() for name in task.class_names)
    captions = " ".join(r["caption"].lower() for r in rows["twemoji"])
    assert not any(name in captions for name in task.class_names if " and " in name)
    sub = et.label_task(emoji_corpus, "twemoji", rows["twemoji"], "subcategory")
    assert len(sub.class_names) > 50 and len(sub.index) == len(sub.labels)


def test_styles_pair_up_and_limit_keeps_them_paired(emoji_corpus, rows):
    tw, om = rows["twemoji"], rows["openmoji"]
    assert [r["codepoints"] for r in tw] == sorted(r["codepoints"] for r in tw)
    assert {r["codepoints"] for r in om} <= {r["codepoints"] for r in tw}
    if len(om) != len(tw):
        pytest.skip("this corpus build has fewer OpenMoji than Twemoji images")
    small = {s: et.read_rows(emoji_corpus, s, limit=50) for s in et.STYLES}
    assert len(small["twemoji"]) == 50
    assert [r["codepoints"] for r in small["twemoji"]] == [r["codepoints"] for r in small["openmoji"]]
    assert small["twemoji"][-1]["codepoints"] != tw[49]["codepoints"]  # spread over the file, not a prefix


def test_retrieval_task_positives_and_images(emoji_corpus, rows):
    task = et.retrieval_task(emoji_corpus, "openmoji", rows["openmoji"][:40])
    assert task.positives.shape == (len(task.captions), 40)
    assert task.positives.sum(dim=0).eq(1).all()  # each image has exactly one caption
    assert task.positives.sum() == 40 and task.positives.dtype == torch.bool
    image = task.images[0]
    assert image.mode == "RGB" and len(task.images) == 40


def test_image_retrieval_queries_find_the_other_styles_drawings_of_their_caption(emoji_corpus, rows):
    twemoji, openmoji = rows["twemoji"][:300], rows["openmoji"][:200]
    task = et.image_retrieval_task(emoji_corpus, "twemoji", twemoji, "openmoji", openmoji)
    gallery_captions = [row["caption"] for row in openmoji]
    # queries: exactly the Twemoji images with a drawing of their caption in the gallery
    assert task.query_index == [i for i, row in enumerate(twemoji) if row["caption"] in gallery_captions]
    assert 0 < len(task.query_index) < 300 and task.positives.shape == (len(task.query_index), 200)
    for q, i in enumerate(task.query_index):
        caption = twemoji[i]["caption"]
        assert task.query_names[q] == caption
        assert task.positives[q].tolist() == [c == caption for c in gallery_captions]
    assert (task.query_set, task.gallery_set) == ("emoji/twemoji", "emoji/openmoji")
    assert len(task.query_images) == 300 and len(task.gallery_images) == 200  # whole collections
