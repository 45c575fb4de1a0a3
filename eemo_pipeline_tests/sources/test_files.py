"""Every path a data set names stays inside its source root; the root's content fingerprint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eemo_pipeline.sources import source_module
from eemo_pipeline.sources.files import PathEscapeError, canonical_relative, resolve_inside, source_fingerprint
from eemo_pipeline.sources.ingest import ingest
from eemo_pipeline.sources.manifest import build_manifest


def test_resolve_inside_refuses_parent_absolute_and_linked_paths(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.jpg").write_bytes(b"x")
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    (root / "images" / "link.jpg").symlink_to(secret)

    assert resolve_inside(root, "images/a.jpg") == (root / "images" / "a.jpg").resolve()
    assert resolve_inside(root, "images/../images/a.jpg") == (root / "images" / "a.jpg").resolve()
    for relative in ("../secret.txt", "images/../../secret.txt", str(secret), "/etc/passwd", "C:\\Windows\\win.ini"):
        with pytest.raises(PathEscapeError, match="escapes the source root"):
            resolve_inside(root, relative)
    with pytest.raises(PathEscapeError) as escaped:
        resolve_inside(root, "images/link.jpg", where="ann.csv line 7")
    assert str(escaped.value) == (f"ann.csv line 7: path 'images/link.jpg' escapes the source root {root.resolve()} "
                                  f"(resolves to {secret.resolve()})")


def test_escaping_image_paths_are_quarantined_and_valid_rows_flow(tmp_path: Path) -> None:
    root = tmp_path / "findingemo"
    root.mkdir()
    source_module("findingemo").write_sample(root)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes((root / "Run_2" / "Loving toddlers sports" / "haiti-kids.jpg").read_bytes())
    # A valid image path whose file is a link out of the root.
    linked = root / "Run_1" / "Violent youth festival" / "1042373588.jpg"
    linked.unlink()
    linked.symlink_to(outside)
    annotations = root / "annotations_single.ann"
    text = annotations.read_text(encoding="utf-8")
    text = text.replace("/Run_2/Frustrated forty-something office/team-work.jpg", "/Run_2/../../../outside.jpg")
    text = text.replace("/Run_2/Loving toddlers sports/haiti-kids.jpg", "//" + str(outside).lstrip("/"))
    annotations.write_text(text, encoding="utf-8")

    result = ingest("findingemo", root)
    escaped = result.quarantine.filter(pl.col("reason").str.contains("escapes the source root"))
    assert escaped.height >= 2 and set(escaped["file"]) == {"annotations_single.ann"}
    assert escaped["line"].is_not_null().all()  # each names its row
    reasons = " ".join(escaped["reason"])
    assert "Run_2/../../../outside.jpg" in reasons and str(outside).lstrip("/") in reasons
    kept_paths = result.annotations["image_path"].drop_nulls()
    assert not kept_paths.str.contains(r"(^|/)\.\.(/|$)|^/").any()
    assert result.annotations["image_id"].n_unique() >= 5  # the valid rows keep flowing

    manifest, quarantine = build_manifest(result.annotations, root, "findingemo", workers=1)
    link_row = quarantine.filter(pl.col("reason").str.contains("escapes the source root"))
    assert link_row.height == 1
    assert f"resolves to {outside}" in link_row["reason"][0]
    assert json.loads(link_row["record"][0])["image_path"] == "Run_1/Violent youth festival/1042373588.jpg"
    assert manifest.filter("decodable").height == manifest.height - quarantine.height > 0
    assert outside.name not in " ".join(manifest.filter("decodable")["image_path"])


def test_fingerprint_changes_with_any_byte_and_does_not_follow_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "one.txt").write_text("one")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"z" * 1000)
    (root / "a" / "linked").symlink_to(outside)
    cache = tmp_path / "cache.json"

    first = source_fingerprint(root, cache)
    assert (first.files, first.hashed, first.bytes) == (2, 1, 3)  # the link counts by its target text only
    assert source_fingerprint(root, cache) == first.__class__(first.version, 2, 3, 0)  # unchanged: nothing re-read
    (outside / "big.bin").write_bytes(b"y" * 1000)
    assert source_fingerprint(root, cache).version == first.version
    (root / "a" / "one.txt").write_text("onE")
    os.utime(root / "a" / "one.txt", ns=(1, 1))
    assert source_fingerprint(root, cache).version != first.version


# Pieces that spell nothing (a '.', an empty segment, a folder and its '..') put around and between the segments of a path.
_NOTHING = st.sampled_from(["", ".", "x/..", "dir/./..", "a b/../."])


@st.composite
def _spellings(draw: st.DrawFn) -> tuple[str, str]:
    """``(canonical, another spelling of it)``."""
    segments = draw(st.lists(st.from_regex(r"[A-Za-z0-9 _-]{1,6}(\.[a-z]{1,3})?", fullmatch=True), min_size=1, max_size=4))
    pieces: list[str] = []
    for segment in segments:
        pieces += draw(st.lists(_NOTHING, max_size=3)) + [segment]
    pieces += draw(st.lists(_NOTHING, max_size=2))
    spelling = "/".join(pieces)
    return "/".join(segments), ("/" + spelling if draw(st.booleans()) else spelling) + ("/" if draw(st.booleans()) else "")


@given(_spellings())
def test_every_spelling_of_a_path_has_one_canonical_form(case: tuple[str, str]) -> None:
    """Hostile tester: ``x/../a.jpg``, ``./a.jpg``, ``.//a.jpg`` and ``/a.jpg`` were other images than ``a.jpg``."""
    canonical, spelling = case
    assert canonical_relative(spelling) == canonical
    assert canonical_relative(canonical) == canonical  # idempotent


@given(_spellings(), st.integers(min_value=1, max_value=3))
def test_a_path_climbing_above_its_start_has_no_canonical_form(case: tuple[str, str], climbs: int) -> None:
    canonical, spelling = case
    assert canonical_relative("../" * climbs + spelling) is None
    assert canonical_relative(spelling + "/.." * (canonical.count("/") + 1 + climbs)) is None
