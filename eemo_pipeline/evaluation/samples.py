"""Small copies of every benchmark in its native format, for tests and the demo (``write_sample_benchmarks``).

Each carries the quirks of the real files: Python-dict option strings and Windows-style image paths
(EEmo-Bench's question files), the authors' released EEmo-Bench layout (``write_sample_eemo_bench_released``:
option objects, judge and choose questions per record, a ground-truth file whose records carry an older
open-ended question or none, pair records with an empty, missing or older one), the authors' released test files beside the original datasets' files (``test_ArtEmis.json``
with list-valued ``emotion``/``utterance`` and ``./test_dominant_images\\00000.jpg`` paths, ``test_Artphoto.json``,
``test_UNIAA_Sent.json``, ``test_AesBench_AesE.json``), non-NFC painting names, non-image files in an image
folder, newline option strings with a missing space (AesE).
"""

from __future__ import annotations

import csv
import json
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eemo_pipeline.evaluation.eemo_bench import (
    EEMO_BENCH_GROUND_TRUTH,
    EEMO_BENCH_OPEN_PAIR,
    EEMO_BENCH_OPEN_SINGLE,
    EEMO_BENCH_PAIR,
    EEMO_BENCH_PAIRS,
    EEMO_BENCH_SINGLE,
)
from eemo_pipeline.evaluation.readers import (
    AESBENCH_RELEASED,
    ARTEMIS_CSV,
    ARTEMIS_RELEASED,
    ARTPHOTO_LABELS,
    ARTPHOTO_RELEASED,
    UNIAA_RELEASED,
)

SAMPLE_AESBENCH_ANSWER_KEY = "AesE_answer_key.json"

def _dump(path: Path, value: Any, **options: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, **options), encoding="utf-8")


_SAMPLE_IMAGES = (
    ("1.jpg", "Animal", [["joy", 39], ["neutral", 37], ["surprise", 33]], (6.0, 4.22, 6.44)),
    ("2.jpg", "Abstract/Cartoon image", [["fear", 56], ["disgust", 32], ["sadness", 10]], (2.22, 7.89, 2.44)),
    ("3.jpg", "Human", [["sadness", 48], ["fear", 30], ["neutral", 12]], (2.9, 3.6, 3.2)),
    ("4.jpg", "Daily life scene", [["joy", 46], ["surprise", 33], ["neutral", 28]], (6.56, 6.0, 6.33)),
    ("5.jpg", "Natural landscape", [["neutral", 50], ["joy", 30], ["surprise", 13]], (5.9, 3.1, 6.1)),
    ("6.jpg", "Stationary object", [["anger", 35], ["disgust", 30], ["fear", 23]], (3.0, 6.7, 4.0)),
)


def _ground_truth_records(root: Path, write_image: Callable[[Path, int], None]) -> list[dict[str, Any]]:
    """The sample images (written under ``images/``) and their ground-truth records."""
    records = []
    for index, (name, category, emotions, vad) in enumerate(_SAMPLE_IMAGES):
        write_image(root / "images" / name, index)
        records.append({"image_name": name, "category": category, "emotion_list": emotions,
                        **{dim: [value, 0.8, 1.5] for dim, value in zip(("Valence", "Arousal", "Dominance"), vad)}})
    return records


def _write_eemo_bench(root: Path, write_image: Callable[[Path, int], None]) -> None:
    _dump(root / EEMO_BENCH_GROUND_TRUTH, _ground_truth_records(root, write_image), indent=4)
    single = [
        {"id": 0, "image_url": "1.jpg", "image": "images\\1.jpg", "question": "Is joy one of the three main emotions you feel?",
         "options": "{'A': 'No', 'B': 'Yes'}", "correct_answer": "B", "question_type": "Yes-or-No",
         "perceptual_dimension": "Emotion perception", "question_concern": "Attributes perception"},
        {"id": 1, "image_url": "2.jpg", "question": "Which emotion does this picture evoke most strongly?",
         "options": "{'A': 'Disgust', 'B': 'Fear', 'C': 'Anger'}", "correct_answer": "B", "question_type": "What/How",
         "perceptual_dimension": "Emotion perception", "question_concern": "Attributes perception"},
        {"id": 2, "image_url": "3.jpg", "question": "Is the emotion you feel clearly negative?",
         "options": "{'A': 'Yes', 'B': 'No'}", "correct_answer": "A", "question_type": "Yes-or-No",
         "perceptual_dimension": "Valence perception", "question_concern": "Attributes perception"},
        {"id": 3, "image_url": "4.jpg", "question": "How aroused do you feel looking at this image?",
         "options": "{'A': 'Moderate arousal', 'B': 'High arousal', 'C': 'Low arousal'}", "correct_answer": "B",
         "question_type": "What/How", "perceptual_dimension": "Arousal perception", "question_concern": "Reasoning perception"},
        {"id": 4, "image_url": "5.jpg", "question": "Do you feel in control when you look at this image?",
         "options": "{'A': 'Yes', 'B': 'No'}", "correct_answer": "A", "question_type": "Yes-or-No",
         "perceptual_dimension": "Dominance perception", "question_concern": "Attributes perception"},
        {"id": 5, "image_url": "1.jpg", "question": "Which elements of the image most strongly evoke your emotions?",
         "correct_answer": "The playful animal and the warm light evoke joy, with calm neutral moments and a little "
                           "surprise at its pose; valence is high and arousal is moderate.",
         "question_type": "Open_ended", "describing_dimension": "Reasoning description"},
        {"id": 6, "image_url": "2.jpg", "question": "Describe the image and the three main emotions it evokes.",
         "correct_answer": "A dark distorted figure evokes fear first, then disgust at its texture and some "
                           "sadness; valence is low, arousal is high and the viewer feels helpless.",
         "question_type": "Open_ended", "describing_dimension": "Detailed description"},
    ]
    _dump(root / EEMO_BENCH_SINGLE, single, indent=4)
    label = "[Image{slot}] Ranking:{{'Joy': 39, 'Neutral': 37, 'Surprise': 33}}     category:{category}     Valence:6.0  Arousal:4.22  Dominance:6.44"
    pair = [
        {"id": 0, "image1_url": "1.jpg", "image1": "images\\1.jpg", "image2_url": "4.jpg", "image2": "images\\4.jpg",
         "image1_label": label.format(slot=1, category="Animal"), "image2_label": label.format(slot=2, category="Daily life scene"),
         "question": "Is joy one of the main emotions of both images?", "options": "{'A': 'No.', 'B': 'Yes.'}",
         "correct_answer": "B", "question_type": "Yes-or-No", "perceptual_dimension": "Emotion perception",
         "question_concern": "Similarity perception"},
        {"id": 1, "image1_url": "2.jpg", "image1": "images\\2.jpg", "image2_url": "5.jpg", "image2": "images\\5.jpg",
         "question": "Which of these two images evokes a more negative emotional experience?",
         "options": "{'A': 'The first picture.', 'B': 'The second picture.'}", "correct_answer": "A",
         "question_type": "What/How", "perceptual_dimension": "Valence perception",
         "question_concern": "Differences comparison"},
        {"id": 2, "image1_url": "3.jpg", "image1": "images\\3.jpg", "image2_url": "6.jpg", "image2": "images\\6.jpg",
         "question": "Compared to the first image, how does the arousal of the second measure up?",
         "options": "{'A': 'Much lower.', 'B': 'About the same.', 'C': 'Much higher.'}", "correct_answer": "C",
         "question_type": "What/How", "perceptual_dimension": "Arousal perception",
         "question_concern": "Differences comparison"},
        {"id": 3, "image1_url": "3.jpg", "image1": "images\\3.jpg", "image2_url": "4.jpg", "image2": "images\\4.jpg",
         "question": "Which image evokes more negative emotions, and why?",
         "correct_answer": "The first image evokes more negative emotions: its lonely figure brings sadness and "
                           "fear, while the second image's lively scene brings joy and surprise.",
         "question_type": "Open_ended", "describing_dimension": "Valence comparison"},
    ]
    _dump(root / EEMO_BENCH_PAIR, pair, indent=4)


_JUDGE_CHOOSE = (  # per sample image: judge question, options, answer; choose question, options, answer
    ("What do you think of surprise as one of the three main emotions you felt from this image?",
     {"A": "No", "B": "Yes"}, "B", "When you look at this picture, how much dominance does it feel you have?",
     {"A": "A strong sense of dominance", "B": "Moderate control feeling", "C": "A weaker sense of control"}, "A"),
    ("Is fear the strongest emotion this image evokes in you?", {"A": "Yes", "B": "No"}, "A",
     "How strongly does this image arouse you?", {"A": "Calm", "B": "Moderately", "C": "Very strongly"}, "C"),
    ("Is joy one of the three main emotions you feel from this image?", {"A": "No", "B": "Yes"}, "A",
     "Which emotion does this image evoke second most?", {"A": "Joy", "B": "Fear", "C": "Anger"}, "B"),
    ("Do you feel joy when you look at this image?", {"A": "Yes", "B": "No"}, "A",
     "How pleasant is the feeling this image evokes?", {"A": "Unpleasant", "B": "Neutral", "C": "Pleasant"}, "C"),
    ("Is anger among the three main emotions of this image?", {"A": "No", "B": "Yes"}, "A",
     "How much in control do you feel looking at this landscape?",
     {"A": "Helpless", "B": "Moderately in control", "C": "In control"}, "C"),
    ("Is disgust one of the main emotions this object evokes?", {"A": "Yes", "B": "No"}, "A",
     "Which emotion does this image evoke most?", {"A": "Surprise", "B": "Anger", "C": "Neutral"}, "B"),
)
_SAMPLE_PAIRS = (  # image1, image2, judge question, options, answer, choose question, options, answer, open-ended
    ("1.jpg", "4.jpg", "Among the three main emotions of these two images, is joy one of them in both?",
     {"A": "No.", "B": "Yes."}, "B", "Which emotion is evoked in both images and is common to them?",
     {"A": "Neutral", "B": "Fear", "C": "Sadness", "D": "Joy"}, "D", ""),
    ("2.jpg", "5.jpg", "Do these two images convey emotions of the same valence?", {"A": "Yes.", "B": "No."}, "B",
     "Between these two images, which one primarily evokes fear?",
     {"A": "Both pictures.", "B": "The first picture.", "C": "Neither pictures.", "D": "The second picture."}, "B",
     "Between the two images, which one evokes more negative emotions, and what are the underlying reasons?"),
    ("3.jpg", "6.jpg", "Is sadness one of the three main emotions of the first image?", {"A": "No.", "B": "Yes."}, "B",
     "Compared to the first image, how does the arousal of the second measure up?",
     {"A": "Lower.", "B": "Higher."}, "B", None),
    ("5.jpg", "1.jpg", "Do both images evoke mainly positive or neutral emotions?", {"A": "Yes.", "B": "No."}, "A",
     "Which image evokes a stronger sense of dominance?",
     {"A": "The first picture.", "B": "The second picture.", "C": "About the same."}, "C",
     "Which image's emotional response shows a stronger sense of dominance, and why?"),
)


def write_sample_eemo_bench_released(root: Path, write_image: Callable[[Path, int], None] | None = None) -> Path:
    """A small EEmo-Bench in the layout the EEmo-Logic authors evaluate with (their ``test_data/`` files:
    ``eemo_bench.EEMO_BENCH_GROUND_TRUTH``, ``EEMO_BENCH_PAIRS``, ``EEMO_BENCH_OPEN_SINGLE``,
    ``EEMO_BENCH_OPEN_PAIR``) under ``root``, with images under ``images/``: 6 images, 4 pairs, 3 single and 2
    pair open-ended questions. Returns ``root``."""
    if write_image is None:
        from eemo_pipeline.sources.sample_images import write_image as sample_image

        def write_image(path: Path, index: int) -> None:
            sample_image(path, index, (64, 64))

    root.mkdir(parents=True, exist_ok=True)
    images = _ground_truth_records(root, write_image)
    for record, (judge_q, judge_a, judge_answer, choose_q, choose_a, choose_answer) in zip(images, _JUDGE_CHOOSE):
        record |= {"judge_Q": judge_q, "judge_A": judge_a, "judge_answer": judge_answer,
                   "choose_Q": choose_q, "choose_A": choose_a, "choose_answer": choose_answer}
    for record in images[:3]:  # as in the real file, some records carry an (older) open-ended question
        record["open_ended_Q"] = "Which elements in the image evoke the strongest emotional response from you?"
    _dump(root / EEMO_BENCH_GROUND_TRUTH, images, indent=4)
    # the open-ended files repeat the records with the questions the description script asks
    _dump(root / EEMO_BENCH_OPEN_SINGLE, [
        record | {"open_ended_Q": question} for record, question in zip(images[:3], (
            "Which specific elements in the image evoke your several main emotional responses? Please elaborate.",
            "Describe the content of this picture and the three main emotions you feel.",
            "Do you think the emotional transmission in this image is direct or indirect? Please explain."))],
        indent=4)
    pairs = [{"image1_url": first, "image2_url": second, "judge_question": judge_q, "judge_options": judge_a,
              "judge_answer": judge_answer, "choose_question": choose_q, "choose_options": choose_a,
              "choose_answer": choose_answer, "open_ended_question": open_ended}
             for first, second, judge_q, judge_a, judge_answer, choose_q, choose_a, choose_answer, open_ended
             in _SAMPLE_PAIRS]
    _dump(root / EEMO_BENCH_PAIRS, pairs, indent=4)
    _dump(root / EEMO_BENCH_OPEN_PAIR, [
        pairs[1] | {"open_ended_question": "Between the two images, which one evokes more negative emotions, and "
                                           "what are the underlying reasons?"},
        pairs[3] | {"open_ended_question": "Analyze the two images' three main emotions each, then compare their "
                                           "valence, arousal and dominance."}], indent=4)
    return root


def _write_artphoto(root: Path, write_image: Callable[[Path, int], None]) -> None:
    names = []
    for index, label in enumerate(ARTPHOTO_LABELS):
        names.append((label, f"{label}_{index + 1:04d}.jpg"))
        write_image(root / names[-1][1], 10 + index)
    (root / "readme.txt").write_text("Artphoto: labels are the file-name prefixes.\n", encoding="utf-8")
    (root / "Thumbs.db").write_bytes(b"\x00\x01not an image")
    order = [3, 0, 7, 5, 1, 6, 2, 4]  # the released list is not in file-name order
    _dump(root / ARTPHOTO_RELEASED, [{"id": i, "emotion": names[n][0], "image_path": names[n][1]}
                                     for i, n in enumerate(order)], indent=4)


def _write_artemis(root: Path, write_image: Callable[[Path, int], None]) -> None:
    nfd_name = unicodedata.normalize("NFD", "claude-monet_the-seine-at-argenteuil-é")
    artworks = [  # (style, painting as written in the CSV, emotions)
        ("Impressionism", nfd_name, ["contentment", "contentment", "awe", "excitement"]),
        ("Romanticism", "caspar-david-friedrich_the-sea-of-ice", ["fear", "awe", "fear", "sadness", "fear"]),
        ("Baroque", "rembrandt_the-night-watch", ["awe", "excitement", "awe"]),
        ("Expressionism", "edvard-munch_the-scream", ["fear", "sadness", "fear", "disgust"]),
        ("Cubism", "pablo-picasso_guernica", ["sadness", "anger", "sadness", "anger"]),  # tie: left out
        ("Pop_Art", "andy-warhol_soup", ["something else", "something else", "amusement"]),  # no emotion: left out
    ]
    lines = [["art_style", "painting", "emotion", "utterance", "repetition"]]
    for index, (style, painting, emotions) in enumerate(artworks):
        # images on disk carry the NFC spelling, as after unpacking on most file systems
        write_image(root / "wikiart" / style / f"{unicodedata.normalize('NFC', painting)}.jpg", 20 + index)
        lines += [[style, painting, emotion, f"It makes me feel {emotion}, see the colours, \"really\".", "5"]
                  for emotion in emotions]
    with (root / ARTEMIS_CSV).open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(lines)
    # The authors' released test set: its images are found at img_path (their renamed copy), else at
    # original_img_path, else in the CSV's wikiart/ layout; one record per image source here.
    released = [
        ("Post_Impressionism", "vincent-van-gogh_zouave-1888(1)", "amusement",
         ["something else", "amusement", "amusement", "sadness", "amusement"], "img_path"),
        ("Ukiyo_e", "utagawa-kuniyoshi_saito-oniwakamaru", "excitement",
         ["awe", "excitement", "excitement", "contentment", "excitement", "amusement"], "original_img_path"),
        ("Romanticism", "caspar-david-friedrich_the-sea-of-ice", "fear", ["fear", "awe", "fear", "sadness", "fear"],
         "wikiart"),
    ]
    records = []
    for new_id, (style, painting, dominant, emotions, stored) in enumerate(released):
        record = {"img_path": f"./test_dominant_images\\{new_id:05d}.jpg", "art_style": style, "painting": painting,
                  "emotion": emotions, "utterance": [f"The painting feels like {e} to me." for e in emotions],
                  "dominant": 1.0, "dominant_emotion": dominant,
                  "original_img_path": f"./images\\{style}\\{painting}.jpg", "new_id": new_id}
        if new_id == 1:  # some released records also carry the vote counts
            record |= {"ranking": 1.0, "emotion_ranking": {"excitement": 3, "awe": 1, "contentment": 1}}
        if stored != "wikiart":
            write_image(root / record[stored].removeprefix("./").replace("\\", "/"), 26 + new_id)
        records.append(record)
    _dump(root / ARTEMIS_RELEASED, records, indent=2)


def _write_uniaa(root: Path, write_image: Callable[[Path, int], None]) -> None:
    records = [
        ("sentiment", "solitude", "what", "What kind of atmosphere does this photo create?",
         ["It conveys loneliness and tranquility.", "It conveys a warm and excited atmosphere.",
          "It conveys an awkward atmosphere.", "It conveys a noisy atmosphere."], 0),
        ("sentiment", "vitality", "yes_no", "Can you feel joy and vitality in this photo?", ["Yes.", "No."], 0),
        ("sentiment", "negative", "how", "How does this photo make you feel?",
         ["Calm and relaxed.", "Sad and uneasy.", "Excited and happy."], 1),
        ("sentiment", "serenity", "yes_no", "Does this photo feel noisy and chaotic?", ["Yes.", "No."], 1),
        # other UNIAA dimensions, as in the full UNIAA-QA file (the released test file has sentiment only)
        ("composition", "balance", "yes_no", "Is the composition balanced?", ["Yes.", "No."], 0),
        ("color", "warm", "what", "What is the dominant colour tone?", ["Warm.", "Cool."], 1),
    ]
    data = []
    for index, (dimension, category, kind, question, candidates, correct) in enumerate(records):
        image = f"emotion_images/{index:09d}.jpg"
        write_image(root / "images" / image, 30 + index)
        options = {chr(ord("A") + i): text for i, text in enumerate(candidates)}
        data.append({"dataset": "WILD", "dimension": dimension, "category": category, "type": kind,
                     "img_path": image, "question": question, "candidates": candidates,
                     "correct_ans": candidates[correct], "source": "WILD", "id": index, "options": options,
                     "answer": chr(ord("A") + correct),
                     "category_list": ["solitude", "vitality", "warmth", "serenity", "negative", "positive"]})
    _dump(root / UNIAA_RELEASED, data, indent=4)


def _write_aesbench(root: Path, write_image: Callable[[Path, int], None]) -> None:
    items = {
        "43129b8b_62e5_4129_897e_2256bb12b905.jpg": ("How does this picture influence the viewer's aesthetic emotions?",
            "A) It enhances intrigue and emotional engagement.\nB) It has no significant effect.\nC) It reduces "
            "the viewer's emotional response.", "A", "Interest"),
        "43957.jpg": ("What atmosphere does the image evoke?",
            "A) An eerie and unsettling atmosphere\nB) A sense of warmth and comfort\nC) A vibrant and lively\n"
            "ambiance\nD)A feeling of boredom", "D", "Vibe"),
        "44152.png": ("Why does the lake scene feel relaxing?",
            "A) It gives a sense of leisure close to nature.\nB) It shows urban excitement.\nC) It creates suspense.",
            "A", "Emotion"),
        "44252.jpg": ("Does the image evoke a feeling of uniqueness?", "A) Yes\nB) No", "B", "Uniqueness"),
    }
    data, key = {}, {}
    for index, (name, (question, options, answer, dimension)) in enumerate(items.items()):
        write_image(root / "images" / name, 40 + index)
        data[name] = {"AesP_data": {"Question": "Which aspect of aesthetic perception stands out?",
                                    "Options": "A) Colour\nB) Depth\nC) Light\nD)Texture"},
                      "AesE_data": {"Question": question, "Options": options},
                      "AesA1_data": {"Question": "How is the aesthetic quality of this image?",
                                     "Options": "A) High\nB) Medium\nC) Low"},
                      "AesI_data": {"Question": "Explain the aesthetic quality."}}
        key[name] = {"answer": answer, "dimension": dimension}
    _dump(root / AESBENCH_RELEASED, data, indent=4)
    _dump(root / SAMPLE_AESBENCH_ANSWER_KEY, key, indent=2)


def write_sample_benchmarks(directory: Path) -> dict[str, Path]:
    """A small copy of every benchmark in its native format under ``directory/<benchmark>/``, with generated
    and photographed images (``eemo_pipeline.sources.sample_images``), and an AesE answer key at
    ``aesbench/AesE_answer_key.json``. Returns the root of each benchmark, by name."""
    from eemo_pipeline.sources.sample_images import write_image

    def small_image(path: Path, index: int) -> None:
        write_image(path, index, (64, 64))

    writers = {"eemo_bench": _write_eemo_bench, "artphoto": _write_artphoto, "artemis": _write_artemis,
               "uniaa": _write_uniaa, "aesbench": _write_aesbench}
    roots = {}
    for name, writer in writers.items():
        root = Path(directory) / name
        root.mkdir(parents=True, exist_ok=True)
        writer(root, small_image)
        roots[name] = root
    return roots
