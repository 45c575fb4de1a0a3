"""The description judge over real HTTP to the local OpenAI-compatible server, and the written report."""

from pathlib import Path

import polars as pl
import pytest

from eemo_pipeline.evaluation import readers as b
from eemo_pipeline.evaluation.judge import judge_descriptions, parse_judge_score
from eemo_pipeline.evaluation.report import (
    RANDOM_RANKING_NOTE,
    TABLE1,
    load_published,
    report_notes,
    source_file_rows,
    write_report,
)
from eemo_pipeline.evaluation.runner import run_items, score_all
from eemo_pipeline.evaluation.samples import write_sample_benchmarks, write_sample_eemo_bench_released
from eemo_pipeline.generation.cache import ResponseCache
from eemo_pipeline.generation.offline_server.server import running_in_thread
from eemo_pipeline.settings import EndpointSettings

REPLIES = {
    "single/5": "<answer>The playful animal and the warm light evoke joy with calm neutral moments and a little "
                "surprise; valence is high and arousal is moderate.</answer>",
    "single/6": "<answer>Nice colours.</answer>",
    "pair/3": "",  # unparseable: scores 0 without a judge call
}


class Describer:
    name = "describer"

    def generate(self, requests):
        return [f"{r.tags['sub_task']}: 0.{r.images[0].stem}" if r.tags["task"] == "vad"
                else REPLIES.get(r.tags["item_id"], "<answer>B</answer>") for r in requests]

    def keyword_probabilities(self, requests, keywords):
        return None


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    roots = write_sample_benchmarks(tmp_path_factory.mktemp("benchmarks"))
    items = b.read_eemo_bench(roots["eemo_bench"])
    return run_items(items.filter(pl.col("task").is_in(["description", "perception", "ranking", "vad"])), Describer()).predictions


def test_parse_judge_score():
    assert parse_judge_score("Completeness: [2]", "completeness") == 2
    assert parse_judge_score("Preciseness: 1\nPrecision: 0", "precision") == 0
    assert parse_judge_score("Relevance: 3", "relevance") is None


def test_judge_through_the_local_server_and_cache(predictions, tmp_path):
    cache = ResponseCache(tmp_path / "judge.sqlite")
    with running_in_thread() as server:
        config = EndpointSettings(role="judge", base_url=server.base_url, model="judge-model")
        result = judge_descriptions(predictions, config, cache, rounds=2)
        assert result.stats["calls"] == 2 * 3 * 2 and result.quarantine == []
        again = judge_descriptions(predictions, config, cache, rounds=2)
        assert again.stats["calls"] == 0 and again.stats["cache_hits"] == 12  # a rerun repeats no call
    judged = {row["item_id"]: row for row in result.judged.iter_rows(named=True)}
    good, poor, empty = judged["single/5"], judged["single/6"], judged["pair/3"]
    assert good["completeness"] == 2 and good["relevance"] == 2 and good["valid_rounds"] == 2
    assert poor["completeness"] == 0 and poor["score"] < good["score"]
    assert empty["parse_failed"] and empty["score"] == 0.0
    table = score_all(predictions, result.judged)
    overall = table.filter((pl.col("task") == "description") & (pl.col("breakdown") == "overall")).row(0, named=True)
    assert overall["value"] == pytest.approx((good["score"] + poor["score"] + 0.0) / 3) and overall["unparsed"] == 1


def test_descriptions_without_a_reference_cost_no_judge_call_and_say_so(tmp_path):
    """The authors' released EEmo-Bench files have no reference answers: nothing to judge against."""
    items = b.read_eemo_bench(write_sample_eemo_bench_released(tmp_path / "released"))
    described = run_items(items.filter(pl.col("task") == "description"), Describer()).predictions
    assert described.height == 5 and described["truth"].null_count() == 5
    with running_in_thread() as server:
        config = EndpointSettings(role="judge", base_url=server.base_url, model="judge-model")
        result = judge_descriptions(described, config, ResponseCache(tmp_path / "judge.sqlite"), rounds=2)
        assert server.total_requests() == 0 and result.stats["calls"] == 0
    assert not result.judged["reference"].any() and result.judged["score"].null_count() == 5
    table = score_all(described, result.judged).filter(pl.col("task") == "description")
    assert table.select("group", "value", "n").rows() == [("no reference", None, 5)]
    assert any("no EEmo-Bench open-ended question has a reference answer" in note for note in report_notes(table))


def test_write_report(predictions, tmp_path):
    table = score_all(predictions)
    files = write_report(table, predictions, tmp_path / "report", notes=["a caller note"])
    text = files.markdown.read_text()
    assert "| describer | this run |" in text and "| EEmo-Logic (Ours) | published | 71.73% |" in text
    assert "| Qwen2.5-VL-7B | published | 0.80/0.74 |" in text
    assert "a caller note" in files.notes
    assert "describer (direct)" in files.html.read_text()
    assert [f.name for f in files.figures] == ["vad_histograms.png", "radar.png"]
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files.figures)
    assert pl.read_parquet(files.predictions).height == predictions.height


def test_report_prints_the_exact_random_ranking_baseline_beside_the_paper(predictions, tmp_path):
    text = write_report(score_all(predictions), predictions, tmp_path / "report").markdown.read_text()
    lines = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| Random")}
    published, computed = lines["Random guess w/o open-ended"], lines["Random guess, exact (3 of 7)"]
    assert " | published | " in published and " 25.48% |" in published
    assert " | computed | " in computed and " 27.86% |" in computed and computed.count("NA") == len(TABLE1) - 1
    assert f"\n\n{RANDOM_RANKING_NOTE}\n\n### Table 2" in text  # the note on why they differ, under Table 1
    assert "195/7 = 27.86" in RANDOM_RANKING_NOTE and "25.48" in RANDOM_RANKING_NOTE
    assert "<tr class=\"computed\">" in (tmp_path / "report" / "report.html").read_text()


def test_report_names_each_benchmark_file(predictions, tmp_path):
    rows = source_file_rows(predictions)
    assert [(r["benchmark"], Path(r["source_file"]).name, r["items"]) for r in rows] == [
        ("eemo_bench", "EEmo-Bench(pair).json", 4), ("eemo_bench", "EEmo-Bench(single).json", 7),
        ("eemo_bench", "Ebench_1_data(jac_en_check).json", 12)]
    text = write_report(score_all(predictions), predictions, tmp_path / "report").markdown.read_text()
    assert "| benchmark | items | source_file |" in text and f"| eemo_bench | 7 | {rows[1]['source_file']} |" in text


def test_published_numbers_match_the_paper():
    published = load_published()
    ours = published["table1"][-1]
    assert ours["model"] == "EEmo-Logic (Ours)" and ours["perception_overall"] == 68.54 and ours["ranking"] == 67.97
    assert {row["model"]: row for row in published["table1"]}["Qwen2.5-VL-7B"]["ranking"] == 61.88
    assert published["table2"][-1]["dominance"] == [0.78, 0.74]
