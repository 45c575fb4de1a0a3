"""`eemo assess`: the GRPO questions on any images, one JSON object per image, local model or endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eemo_pipeline import cli
from eemo_pipeline.evaluation.predict import assessment_questions, read_assessment, reasoning_of
from eemo_pipeline.generation.offline_server.chat_api import DEFAULT_MODEL
from eemo_pipeline.generation.offline_server.faults import FaultPlan
from eemo_pipeline.generation.offline_server.server import running_in_thread
from eemo_pipeline.sources.sample_images import write_corrupt_image, write_image
from eemo_pipeline.tasks.questions import DEFAULT_SYSTEM_PROMPT

FIELDS = list(assessment_questions())
"""Every registered task's ``image_questions`` (ranking, valence, arousal, dominance, dominant_emotion)."""


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "photo.png", tmp_path / "pattern.jpg"]
    for index, path in enumerate(paths):
        write_image(path, index)
    return paths


def test_replies_are_read_like_the_training_answers() -> None:
    replies = dict.fromkeys(FIELDS, "I cannot tell.") | {
        "ranking": "<think>Grey skies, an empty bench.</think><answer>Emotion ranking: Sad, fear, sadness, "
                   "boredom, neutral, joy</answer>",
        "valence": "<think>Dim.</think><answer>Valence: 0.2125</answer>",
        "arousal": "<answer>Arousal: 1.7</answer>",  # outside 0-1
        "dominance": "I cannot tell.",
        "dominant_emotion": "<think>a</think><answer>x</answer><think>Mostly loss.</think><answer>Dominant emotion: "
                            "Sadness.</answer>",
    }
    read = read_assessment(replies)
    # read as the benchmark reads it: the first three distinct (sadness, fear, boredom), of which the targets
    assert {field: read[field] for field in ("ranking", "valence", "arousal", "dominance", "dominant_emotion")} == {
        "ranking": ["sadness", "fear"], "valence": 0.2125, "arousal": None, "dominance": None,
        "dominant_emotion": "sadness"}
    assert set(read) == {*FIELDS, "unparsed"} and read["unparsed"] == [f for f in FIELDS if read[f] is None]
    assert {"arousal", "dominance"} <= set(read["unparsed"]) and "valence" not in read["unparsed"]
    assert reasoning_of(replies["dominant_emotion"]) == "Mostly loss." and reasoning_of("no think") is None
    nothing = read_assessment(dict.fromkeys(FIELDS, "<answer>Emotion ranking: dog, cat</answer>"))
    assert nothing["unparsed"] == FIELDS and all(nothing[field] is None for field in FIELDS)


def test_questions_are_the_assess_subsets() -> None:
    from eemo_pipeline.tasks.dominant_emotion import dominant_question
    from eemo_pipeline.tasks.ranking import ranking_question
    from eemo_pipeline.tasks.vad import vad_question

    questions = assessment_questions()
    assert list(questions)[:5] == ["ranking", "valence", "arousal", "dominance", "dominant_emotion"]
    assert questions["ranking"] == ranking_question() and questions["arousal"] == vad_question("arousal")
    assert questions["dominant_emotion"] == dominant_question(
        ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"))


def test_assess_an_endpoint_prints_one_json_object_per_image(images: list[Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache.sqlite"
    with running_in_thread() as server:
        argv = ["assess", *map(str, images), "--model", server.base_url, "--cache", str(cache)]
        assert cli.main(argv) == 0
        assert server.total_requests() == 2 * len(FIELDS)  # every question for each image
        printed = capsys.readouterr().out.splitlines()
        records = [json.loads(line) for line in printed]
        assert [r["image"] for r in records] == [str(p) for p in images]
        for record in records:
            assert record["model"] == DEFAULT_MODEL
            assert list(record["replies"]) == FIELDS and all(DEFAULT_MODEL in r for r in record["replies"].values())
            # The rules model answers no emotion questions: every field null and flagged, nothing invented.
            assert record["unparsed"] == FIELDS and all(record[field] is None for field in FIELDS)
            assert record["reasoning"] == dict.fromkeys(FIELDS)

        server.reset_log()
        assert cli.main(argv) == 0 and server.total_requests() == 0  # answered from the cache
        assert capsys.readouterr().out.splitlines() == printed


ASSESS = "import sys; from eemo_pipeline import cli; sys.exit(cli.main(sys.argv[1:]))"


def test_a_foreign_cache_moved_aside_is_said_once(images: list[Path], tmp_path: Path) -> None:
    # Hostile probe: the warning came three times (the cache's log, assess's line, the model's log after each batch).
    import sqlite3

    cache = tmp_path / "other.sqlite"
    with sqlite3.connect(cache) as db:
        db.execute("create table invoices (id integer)")
    with running_in_thread() as server:
        done = subprocess.run([sys.executable, "-c", ASSESS, "assess", *map(str, images), "--model",
                               f"{server.base_url}#{DEFAULT_MODEL}", "--cache", str(cache), "--batch-size", "5"],
                              capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2  # two images, asked in two batches
    lines = [line for line in done.stderr.splitlines() if "is not a response cache" in line]
    assert len(lines) == 1 and lines[0].startswith(f"eemo assess: response cache {cache} is not a response cache"), \
        done.stderr


def test_the_console_command_runs_in_its_own_process(images: list[Path], tmp_path: Path) -> None:
    with running_in_thread() as server:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("eemo")), "assess", str(images[0]), "--model",
             f"{server.base_url}#{DEFAULT_MODEL}", "--no-cache"],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert done.returncode == 0, done.stderr
        (record,) = [json.loads(line) for line in done.stdout.splitlines()]
        assert record["image"] == str(images[0]) and record["unparsed"] == FIELDS
        assert server.total_requests() == len(FIELDS)


def test_missing_and_undecodable_images_are_named_before_any_model_work(
        images: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_corrupt_image(tmp_path / "broken.jpg")
    with running_in_thread() as server:
        for bad, reason in ((tmp_path / "gone.png", "no such image file"), (tmp_path / "broken.jpg", "not a decodable")):
            assert cli.main(["assess", str(images[0]), str(bad), "--model", server.base_url, "--no-cache"]) == 2
            captured = capsys.readouterr()
            assert captured.out == "" and f"eemo assess: {bad}: {reason}" in captured.err
        assert server.total_requests() == 0
    assert cli.main(["assess", str(images[0]), "--model", str(tmp_path / "nowhere"), "--no-cache"]) == 2
    assert "neither an existing checkpoint directory" in capsys.readouterr().err


@pytest.mark.slow
def test_assess_the_tiny_local_model_with_the_training_system_prompt(
        images: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers", reason="the train extra is not installed")
    from eemo_pipeline.evaluation.models import load_model
    from eemo_pipeline.evaluation.predict import assess_images
    from eemo_pipeline.training.tiny import build_tiny_model

    build_tiny_model(tmp_path / "tiny")
    argv = ["assess", *map(str, images), "--model", str(tmp_path / "tiny"), "--cache", str(tmp_path / "c.sqlite"),
            "--max-new-tokens", "8"]
    assert cli.main(argv) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["image"] for r in records] == [str(p) for p in images] and {r["model"] for r in records} == {"tiny"}
    for record in records:
        assert list(record["replies"]) == FIELDS and all(isinstance(r, str) for r in record["replies"].values())
        assert record["unparsed"] == [field for field in FIELDS if record[field] is None]

    model = load_model(str(tmp_path / "tiny"), cache=None)
    direct = assess_images(model, images, system_prompt=DEFAULT_SYSTEM_PROMPT, max_new_tokens=8)
    assert [r["replies"] for r in direct] == [r["replies"] for r in records]
    assert model.stats["generated"] == 2 * len(FIELDS)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:  # bound and closed again: nobody listens there
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_assess_with_the_endpoint_down_exits_non_zero_naming_the_cause(
        images: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    # Without a model name the server is asked for its models; with one, the questions go out: both fail, named.
    assert cli.main(["assess", str(images[0]), "--model", url, "--no-cache"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and f"eemo assess: {url}: cannot list its models at GET /models" in captured.err
    assert cli.main(["assess", str(images[0]), "--model", f"{url}#{DEFAULT_MODEL}", "--no-cache"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"eemo assess: {len(FIELDS)} of {len(FIELDS)} requests to {DEFAULT_MODEL} at {url} failed; request " in captured.err
    assert f"image={images[0]}]: the endpoint {url} does not answer" in captured.err


def _decompression_bomb(path: Path, side: int = 100_000) -> Path:
    """A PNG whose header claims ``side`` x ``side`` pixels (10 gigapixels), in a few bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_named_with_its_cause_and_a_non_zero_exit(
        images: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bomb = _decompression_bomb(tmp_path / "bomb.png")
    with running_in_thread() as server:
        assert cli.main(["assess", str(images[0]), str(bomb), "--model", server.base_url, "--no-cache"]) == 2
        assert server.total_requests() == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"eemo assess: {bomb}: not a decodable image (image has more than " in captured.err
    assert "pixels (max_image_pixels in data_contracts/image_manifest.yaml); not decoded)" in captured.err


def test_a_fifo_or_a_directory_given_as_an_image_is_named_for_what_it_is(
        images: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # opening it would wait for a writer for ever
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    cache_folder = tmp_path / "cache-folder"
    cache_folder.mkdir()
    with running_in_thread() as server:
        for bad, kind in ((fifo, "a FIFO (named pipe)"), (folder, "a directory")):
            assert cli.main(["assess", str(images[0]), str(bad), "--model", server.base_url, "--no-cache"]) == 2
            captured = capsys.readouterr()
            assert captured.out == "" and f"eemo assess: {bad}: {kind}, not a file: give image files" in captured.err
        assert cli.main(["assess", str(images[0]), "--model", server.base_url, "--cache", str(cache_folder)]) == 2
        assert f"eemo assess: response cache {cache_folder} is a directory, not a file" in capsys.readouterr().err
        assert server.total_requests() == 0


def test_assess_refuses_a_timeout_that_is_no_finite_positive_number(images: list[Path],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # Hostile probe: `--timeout nan` was taken. Every number option of `eemo assess` is checked alike.
    for flag, value, message in (("--timeout", "nan", "must be a finite number above 0"),
                                 ("--timeout", "inf", "must be a finite number above 0"),
                                 ("--timeout", "0", "must be above 0"), ("--timeout", "-1", "must be above 0"),
                                 ("--max-new-tokens", "0", "must be above 0"), ("--batch-size", "-3", "must be above 0")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["assess", str(images[0]), "--model", "http://127.0.0.1:9/v1#m", "--no-cache", flag, value])
        assert exit_info.value.code == 2
        assert f"argument {flag}: {message}, got {value}" in capsys.readouterr().err


def test_assess_timeout_bounds_each_whole_request(images: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    # A server that sends each answer a byte every 0.05 s: no read waits long, but no answer is whole in 1 s.
    with running_in_thread(faults=FaultPlan(drip_s=0.05)) as server:
        started = time.monotonic()
        assert cli.main(["assess", str(images[0]), "--model", f"{server.base_url}#{DEFAULT_MODEL}", "--no-cache",
                         "--timeout", "1"]) == 1
        assert time.monotonic() - started < 60
    assert "no whole answer within timeout_s of 1 s" in capsys.readouterr().err
