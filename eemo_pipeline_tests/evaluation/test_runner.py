"""The runner with a small deterministic VisionChatModel on the sample benchmarks."""

import polars as pl
import pytest

from eemo_pipeline.evaluation import readers as b
from eemo_pipeline.evaluation.chat_model import VisionChatModel
from eemo_pipeline.evaluation.runner import build_queries, run_items, score_all
from eemo_pipeline.evaluation.samples import write_sample_benchmarks


class ScriptedModel:
    """Answers by task: always option B, one fixed ranking, VAD from the image file name, no logits."""

    name = "scripted"

    def __init__(self, logits: bool):
        self.logits = logits
        self.batches: list[int] = []

    def generate(self, requests):
        self.batches.append(len(requests))
        replies = []
        for request in requests:
            task, image = request.tags["task"], request.images[0].name
            if task in ("perception", "multiple_choice"):
                replies.append("<think>hmm</think><answer>B</answer>")
            elif task == "ranking":
                replies.append("<answer>Emotion ranking: Joyful, neutral, fear</answer>")
            elif task == "dominant_emotion":
                replies.append("I am not sure." if image.startswith("sad") else f"Dominant emotion: {image.split('_')[0]}")
            elif task == "vad":
                replies.append(f"<answer>{request.tags['sub_task'].capitalize()}: 0.{image[0]}</answer>")
            else:
                replies.append("<answer>It evokes joy.</answer>")
        return replies

    def keyword_probabilities(self, requests, keywords):
        return [[0.7, 0.2, 0.1]] * len(requests) if self.logits else None


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    roots = write_sample_benchmarks(tmp_path_factory.mktemp("benchmarks"))
    return pl.concat([b.read_eemo_bench(roots["eemo_bench"]), b.read_artphoto(roots["artphoto"]),
                      b.read_uniaa(roots["uniaa"]), b.read_aesbench(roots["aesbench"])])


def value(table, **where):
    frame = table.filter(pl.all_horizontal(pl.col(k) == v for k, v in where.items()))
    assert frame.height == 1, where
    return frame.row(0, named=True)


def test_queries_per_task(items):
    queries = build_queries(items, vad_modes=("direct",))
    assert isinstance(ScriptedModel(True), VisionChatModel)
    assert len(queries) == items.height + 2 * 6  # three direct VAD requests per image
    pair = next(q for q in queries if q.item["item_id"] == "pair/1")
    assert len(pair.request.images) == 2 and "A: The first picture." in pair.request.prompt


def test_run_and_score(items):
    model = ScriptedModel(logits=True)
    run = run_items(items, model, batch_size=5)
    assert max(model.batches) == 5 and run.notes == []
    predictions = run.predictions
    assert predictions.filter(pl.col("mode") == "probability").height == 18
    assert predictions.filter(pl.col("mode") == "probability")["predicted_value"].unique().to_list() == [
        pytest.approx(0.8)]
    # joy, neutral, surprise against "joy, neutral, fear": 25 + 15 hit, two in order: 2/3 * 50
    assert value(predictions, item_id="ranking/1.jpg")["predicted_value"] == pytest.approx(40 + 100 / 3)
    table = score_all(predictions)
    perception = dict(zip(*table.filter((pl.col("task") == "perception")
                                        & pl.col("breakdown").is_in(["carrier_type", "carrier", "overall"]))
                          .select("group", "value").to_dict(as_series=False).values()))
    assert perception == {"single/Yes-or-No": pytest.approx(100 / 3), "single/What/How": 100.0,
                          "pair/Yes-or-No": 100.0, "pair/What/How": 0.0, "single": pytest.approx(200 / 3),
                          "pair": 50.0, "all": 50.0}  # overall weighs by count: 4 of 8
    artphoto = value(table, benchmark="artphoto", metric="accuracy")
    assert artphoto["value"] == pytest.approx(7 / 8 * 100) and artphoto["unparsed"] == 1
    assert value(table, benchmark="artphoto", metric="macro_f1")["value"] == pytest.approx(7 / 8 * 100)
    assert value(table, benchmark="aesbench")["group"] == "no answer key"
    assert value(table, benchmark="uniaa", breakdown="overall")["value"] == 50.0
    srcc = value(table, task="vad", breakdown="direct", group="valence", metric="srcc")
    assert srcc["n"] == 6 and -1 <= srcc["value"] <= 1


def test_model_without_logits_skips_probability_mode(items):
    run = run_items(items.filter(pl.col("task") == "vad"), ScriptedModel(logits=False))
    assert run.predictions["mode"].unique().to_list() == ["direct"]
    assert run.notes == ["scripted exposes no token probabilities: probability-mode VAD skipped"]
