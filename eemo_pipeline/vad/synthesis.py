"""VAD scores per image on 0-1: native ratings rescaled, or synthesized from comment keywords and Warriner norms.

Plain, vectorised functions over polars frames (no Dagster). The paper (section 3.1, appendix C.2) builds
VAD labels for Affection, whose images carry only comments, "by averaging the VAD scores of extracted
keywords" from the 13,915 Warriner lemmas; "these scores are subsequently normalized to generate the
distribution shown in Fig. 3". Here a keyword is a comment word with a lexicon entry that is not on
``KEYWORD_STOPLIST``; the per-image keyword means (1-9) are kept and then normalised by the versioned bounds of
``data_contracts/vad_bounds.yaml`` (``eemo_pipeline/vad/bounds.py``), the same in every partition. Rated sources
keep their own ratings, min-max rescaled from their native scale.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable

import polars as pl

from eemo_pipeline.contracts import table_contract
from eemo_pipeline.frames import fixed_order_mean, fixed_order_sum
from eemo_pipeline.vad.bounds import DIMENSIONS, VadBounds, shipped_vad_bounds
from eemo_pipeline.vad.lexicon import SCALE, lookup_table

ORIGINS: tuple[str, ...] = ("rated", "lexicon")
LEMMA_LANGUAGE = "en"
# A word: a run of letters (any script), possibly joined by single apostrophes ("it's", "o'doul's").
# Digits, hyphens, slashes and every other character separate words; quotes around a word are dropped.
WORD_PATTERN = r"\p{L}+(?:'\p{L}+)*"
# Typographic apostrophes are read as the ASCII one before tokenizing.
APOSTROPHES = r"[\u2019\u2018\u02bc`]"
# Clitic 's (possessive or "is"): "dog's" is looked up as "dog" when "dog's" itself is no entry.
CLITIC = "'s"
# Words that are not keywords although the lexicon rates them: the forms of be/have/do, the modals, and the verbs
# and fillers commenters use to frame any comment ("it looks like", "makes me feel", "reminds me of", "the way
# the ..."). Without a part-of-speech tagger this closed list stands in for "nouns, adjectives, verbs and adverbs
# that carry content"; on ArtEmis comments these words were 30% of all lexicon hits, valence 4.8-7.8 whatever the
# image, and pulled every image towards the middle. Compared with the token and with its lexicon entry (lemma).
KEYWORD_STOPLIST: frozenset[str] = frozenset("""
    be am is are was were been being have has had having do does did done doing
    can could will would shall should may might must
    look seem appear make feel see remind think know get go give take want find tell use bring come say
    like one two three first way thing kind bit lot sure right just really very also even still much many more most
""".split())
RAW_COLUMNS: tuple[str, ...] = tuple(f"{d}_raw" for d in ("valence", "arousal", "dominance"))
_OUTPUT = ["image_id", *DIMENSIONS, "vad_origin", "n_ratings", "n_lexicon_words"]
_NO_RAW = [pl.lit(None, pl.Float64).alias(c) for c in RAW_COLUMNS]
TERTILES = (1 / 3, 2 / 3)
QUANTILE_METHOD = "linear"
LABEL_MEASURES_EXCLUDED = ("label_combined",)


def rescale(value: pl.Expr, low: pl.Expr | float, high: pl.Expr | float) -> pl.Expr:
    """Min-max rescaling of ``value`` from the scale ``low..high`` to 0-1."""
    return (value - low) / (high - low)


# --- rated sources ---------------------------------------------------------------------------------------


def rated_vad(annotations: pl.DataFrame) -> pl.DataFrame:
    """Mean rescaled rating per image from canonical ``valence``/``arousal``/``dominance`` rows.

    Each rating fact is rescaled with its own ``scale_min``/``scale_max``. For one image and measure, the
    per-annotator facts (``annotator`` not null) are used when there are any, else the aggregated ones
    (``annotator`` null): EMOTIC's val/test ship both per-annotator ratings and their combination, which would
    otherwise count twice. All persons (``subject``) of an image are averaged together. Every image of
    ``annotations`` gets a row: one without any rating keeps null V/A/D and ``n_ratings`` 0.

    Returns ``image_id, valence, arousal, dominance, vad_origin="rated", n_ratings, n_lexicon_words=null``.
    """
    ratings = annotations.lazy().filter(pl.col("measure").is_in(DIMENSIONS) & pl.col("value").is_not_null())
    bad_scale = ratings.filter(
        pl.col("scale_min").is_null() | pl.col("scale_max").is_null() | (pl.col("scale_max") <= pl.col("scale_min"))
    ).select(pl.len()).collect().item()
    if bad_scale:
        raise ValueError(f"{bad_scale} rating rows lack a valid scale_min < scale_max: cannot rescale them to 0-1")
    has_annotator = pl.col("annotator").is_not_null()
    used = (
        ratings.filter(~pl.col("value").is_nan())
        .filter(has_annotator | ~has_annotator.any().over("image_id", "measure"))
        .with_columns(rescale(pl.col("value"), pl.col("scale_min"), pl.col("scale_max")).alias("score"))
    )
    per_image = used.group_by("image_id").agg(
        *(fixed_order_mean(pl.col("score").filter(pl.col("measure") == d)).alias(d) for d in DIMENSIONS),
        pl.len().cast(pl.Int32).alias("n_ratings"),
    )
    return (
        _images(annotations)
        .join(per_image, on="image_id", how="left")
        .with_columns(
            pl.lit("rated").alias("vad_origin"),
            pl.col("n_ratings").fill_null(0),
            pl.lit(None, pl.Int32).alias("n_lexicon_words"),
            *_NO_RAW,
        )
        .select(*_OUTPUT, *RAW_COLUMNS)
        .sort("image_id")
        .collect()
    )


# --- lexicon synthesis -----------------------------------------------------------------------------------


def _token_lists(text: pl.Expr) -> pl.Expr:
    return text.str.to_lowercase().str.replace_all(APOSTROPHES, "'").str.extract_all(WORD_PATTERN)


def tokenize(texts: pl.DataFrame, text_column: str = "text") -> pl.DataFrame:
    """One row per word of ``texts[text_column]``: the other columns repeated, plus ``token``, in text order.

    A word (``WORD_PATTERN``) is a lower-cased run of letters of any script, possibly joined by single
    apostrophes: "It's" -> ``it's``, "don't" -> ``don't``, "'cheesy'" -> ``cheesy``, "dogs'" -> ``dogs``.
    Typographic apostrophes count as ``'``. Digits, hyphens, slashes and all other characters split words:
    "well-being" -> ``well``, ``being``; "Doubt/Confusion" -> ``doubt``, ``confusion``. A null or empty text
    yields no row.
    """
    return (
        texts.lazy()
        .with_columns(_token_lists(pl.col(text_column)).alias("token"))
        .drop(text_column)
        .explode("token")
        .filter(pl.col("token").is_not_null())
        .collect()
    )


@functools.lru_cache(maxsize=1 << 18)
def _lemma(word: str) -> str:
    import simplemma  # its dictionaries load on first use; kept out of the code location's import

    return simplemma.lemmatize(word, lang=LEMMA_LANGUAGE).lower()


def lemmatize(words: Iterable[str] | pl.Series) -> pl.DataFrame:
    """``token, lemma`` for each distinct word (simplemma, English, lower-cased), one call per distinct word."""
    series = words if isinstance(words, pl.Series) else pl.Series("token", list(words), dtype=pl.String)
    vocabulary = series.drop_nulls().unique(maintain_order=True)
    return pl.DataFrame(
        {"token": vocabulary, "lemma": [_lemma(word) for word in vocabulary.to_list()]},
        schema={"token": pl.String, "lemma": pl.String},
    )


def _candidates(token: str) -> list[str]:
    """Look-up keys tried for one token, in order (see ``match_vocabulary``)."""
    keys = [token]
    if "'" not in token:
        keys.append(_lemma(token))
    elif token.endswith(CLITIC) and len(token) > len(CLITIC):
        stem = token[: -len(CLITIC)]
        keys += [stem] if "'" in stem else [stem, _lemma(stem)]
    return keys


def match_keywords(tokens: Iterable[str] | pl.Series, lexicon: pl.DataFrame,
                   stoplist: frozenset[str] = KEYWORD_STOPLIST) -> pl.DataFrame:
    """``match_vocabulary`` without the tokens that are, or whose lexicon entry is, on ``stoplist``."""
    matched = match_vocabulary(tokens, lexicon)
    if not stoplist:
        return matched
    words = list(stoplist)
    return matched.filter(~pl.col("token").is_in(words) & ~pl.col("word").str.to_lowercase().is_in(words))


def match_vocabulary(tokens: Iterable[str] | pl.Series, lexicon: pl.DataFrame) -> pl.DataFrame:
    """The lexicon entry of each distinct token: ``token, word, valence, arousal, dominance`` (1-9).

    Tokens without an entry are left out. The look-up, once per distinct token, tries in order:
    1. the token itself, when it is an entry (Warriner's entries are lemmas already: "amused", "scared" and
       "bare" are rated in their own right, and lemmatizing them first would turn "bare" into "bear");
    2. its simplemma lemma ("dogs" -> dog, "smiling" -> smile, "happier" -> happy, "was" -> be);
    3. for a token ending in the clitic 's ("dog's", "children's"), the stem, then the stem's lemma.
    Other contractions ("don't", "can't", "won't", "i'm") match only when the lexicon spells them: their
    lemmas ("do", "will") would read a negation or an auxiliary as a content word. Matching ignores case
    (``lookup_table``); multi-word entries ("alarm clock") never match a single token.
    """
    table = lookup_table(lexicon)
    keys = set(table["key"].to_list())
    series = tokens if isinstance(tokens, pl.Series) else pl.Series("token", list(tokens), dtype=pl.String)
    vocabulary = series.drop_nulls().unique(maintain_order=True).to_list()
    found_tokens, found_keys = [], []
    for token in vocabulary:
        for key in _candidates(token):
            if key in keys:
                found_tokens.append(token)
                found_keys.append(key)
                break
    matched = pl.DataFrame({"token": found_tokens, "key": found_keys}, schema={"token": pl.String, "key": pl.String})
    return matched.join(table, on="key", how="left").drop("key")


def synthesize_vad(texts: pl.DataFrame, lexicon: pl.DataFrame,
                   stoplist: frozenset[str] = KEYWORD_STOPLIST) -> pl.DataFrame:
    """VAD per image from the lexicon entries of its keywords: the mean on 1-9, and that mean rescaled to 0-1.

    ``texts`` has ``image_id, text`` and optionally ``weight`` (Float64, default 1; a null weight counts as 1).
    Words are those of ``tokenize`` (lower-cased letter runs, apostrophes inside a word kept), looked up as in
    ``match_vocabulary`` (the word if it is an entry, else its lemma, else a clitic-'s stem); keywords are the
    matches not on ``stoplist`` (``KEYWORD_STOPLIST``; an empty set keeps every match). Each keyword occurrence
    counts once, with its text's weight: an image's V (A, D) is sum(w * V) / sum(w) over all keywords of all its
    texts, so a word repeated counts repeatedly and longer comments weigh more. Texts of weight 0 contribute
    nothing; a negative or NaN weight raises ValueError.

    Every image of ``texts`` gets a row; one with no keyword keeps null V/A/D and ``n_lexicon_words`` 0.
    Returns ``image_id, valence, arousal, dominance`` (the mean rescaled from 1-9 to 0-1), ``vad_origin="lexicon",
    n_ratings=null, n_lexicon_words`` (keyword occurrences) and ``valence_raw, arousal_raw, dominance_raw`` (the
    mean on 1-9). ``normalize_lexicon_vad`` spreads the 0-1 values over the scale with the versioned bounds.
    """
    weight = (
        pl.col("weight").cast(pl.Float64).fill_null(1.0) if "weight" in texts.columns else pl.lit(1.0, pl.Float64)
    )
    rows = texts.lazy().select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), pl.col("image_id"), weight.alias("weight"), pl.col("text")
    )
    invalid = rows.filter(pl.col("weight").is_nan() | (pl.col("weight") < 0)).select(pl.len()).collect().item()
    if invalid:
        raise ValueError(f"{invalid} texts have a negative or NaN weight")
    # Token lists of the weighted texts only, exploded to (row, token); image ids stay out of the explode.
    tokens = (
        rows.filter(pl.col("weight") > 0)
        .select("row", _token_lists(pl.col("text")).alias("token"))
        .explode("token")
        .filter(pl.col("token").is_not_null())
        .collect()
    )
    matches = match_keywords(tokens["token"].unique(), lexicon, stoplist).lazy()
    per_row = (
        tokens.lazy()
        .join(matches, on="token", how="inner")
        .group_by("row")
        .agg(*(fixed_order_sum(pl.col(d)) for d in DIMENSIONS), pl.len().alias("words"))
    )
    low, high = SCALE
    per_image = (
        rows.join(per_row, on="row", how="inner")
        .group_by("image_id")
        .agg(
            *(fixed_order_sum(pl.col(d) * pl.col("weight")).alias(d) for d in DIMENSIONS),
            fixed_order_sum(pl.col("words") * pl.col("weight")).alias("_mass"),
            pl.col("words").sum().cast(pl.Int32).alias("n_lexicon_words"),
        )
        .with_columns((pl.col(d) / pl.col("_mass")).alias(f"{d}_raw") for d in DIMENSIONS)
        .with_columns(rescale(pl.col(f"{d}_raw"), low, high).alias(d) for d in DIMENSIONS)
    )
    return (
        _images(texts)
        .join(per_image, on="image_id", how="left")
        .with_columns(
            pl.lit("lexicon").alias("vad_origin"),
            pl.lit(None, pl.Int32).alias("n_ratings"),
            pl.col("n_lexicon_words").fill_null(0),
        )
        .select(*_OUTPUT, *RAW_COLUMNS)
        .sort("image_id")
        .collect()
    )


def normalize_lexicon_vad(scores: pl.DataFrame, bounds: VadBounds) -> pl.DataFrame:
    """V/A/D of ``synthesize_vad``'s rows replaced by their raw means (1-9) mapped through the versioned ``bounds``
    (``VadBounds.normalize``): each image on its own, the order of images kept."""
    return scores.with_columns(bounds.normalize(pl.col(f"{d}_raw"), d).alias(d) for d in DIMENSIONS)


def keyword_rule_digest() -> str:
    """SHA-256 of what decides an image's keywords (word pattern, apostrophes, clitic, lemma language, stop list):
    the VAD bounds contract records it, so bounds computed under another rule are seen as such."""
    rule = "\n".join([WORD_PATTERN, APOSTROPHES, CLITIC, LEMMA_LANGUAGE, *sorted(KEYWORD_STOPLIST)])
    return hashlib.sha256(rule.encode()).hexdigest()


def comments(annotations: pl.DataFrame) -> pl.DataFrame:
    """``image_id, text`` of every row with a non-null ``text`` (Affection's utterances), in input order."""
    return annotations.filter(pl.col("text").is_not_null()).select("image_id", "text")


def label_words(annotations: pl.DataFrame) -> pl.DataFrame:
    """``image_id, text, weight``: each label fact as words, weighted by its value.

    Covers ``label_vote`` (weight = votes), ``label_prob`` (probability) and ``label_choice`` (1), not
    ``label_combined`` (EMOTIC's combination repeats its annotators' choices). The text is the native label
    ("Doubt/Confusion" tokenizes to doubt, confusion; each word carries the label's full weight).
    """
    is_label = pl.col("measure").str.starts_with("label_") & ~pl.col("measure").is_in(LABEL_MEASURES_EXCLUDED)
    return annotations.filter(is_label & pl.col("label").is_not_null()).select(
        "image_id", pl.col("label").alias("text"), pl.col("value").cast(pl.Float64).alias("weight")
    )


# --- the vad_scores table --------------------------------------------------------------------------------



def _images(frame: pl.DataFrame) -> pl.LazyFrame:
    return frame.lazy().select("image_id").unique()


def vad_scores(source: str, annotations: pl.DataFrame, lexicon: pl.DataFrame | None,
               bounds: VadBounds | None = None) -> pl.DataFrame:
    """One source's ``vad_scores`` rows (contract ``data_contracts/vad_scores.yaml``), decided image by image, so
    that an image's values depend on its own annotations and the versioned constants only, never on the other
    images of the partition.

    An image with valence/arousal/dominance facts keeps its ratings (``rated_vad``); one with comments and no
    ratings (Affection) is synthesized from their keywords (``synthesize_vad``) and normalised by the versioned
    ``bounds`` (``normalize_lexicon_vad``; default the contract shipped in the repository); one whose comments hold
    no lexicon word keeps null V/A/D and ``n_lexicon_words`` 0. An image with neither keeps null V/A/D (origin
    ``rated`` with ``n_ratings`` 0 in a source that has ratings, else ``lexicon``); a source with neither
    (Abstract-8) yields an empty frame. ``lexicon`` is only needed for comments.
    """
    contract = table_contract("vad_scores")
    is_rating = pl.col("measure").is_in(DIMENSIONS)
    rated_images = annotations.filter(is_rating).select("image_id").unique()
    has_text = annotations.filter(pl.col("text").is_not_null()).height > 0
    if not rated_images.height and not has_text:
        return contract.empty()
    parts = []
    if rated_images.height:
        # Every image without a comment falls to the rated side (null V/A/D, n_ratings 0 when it has no rating).
        commented = annotations.filter(pl.col("text").is_not_null()).select("image_id").unique()
        uncommented = _images(annotations).join(commented.lazy(), on="image_id", how="anti").collect()
        rated_side = rated_images.vstack(uncommented).unique()
        parts.append(rated_vad(annotations.join(rated_side, on="image_id", how="semi")))
    if has_text:
        if lexicon is None:
            raise ValueError(f"source {source!r} needs the VAD lexicon to synthesize scores from its comments")
        texts = annotations.join(rated_images, on="image_id", how="anti")
        if rated_images.height:
            texts = texts.filter(pl.col("text").is_not_null())
        if texts.height:
            synthesized = normalize_lexicon_vad(synthesize_vad(comments(texts), lexicon), bounds or shipped_vad_bounds())
            silent = _images(texts).join(synthesized.lazy(), on="image_id", how="anti").collect()
            parts += [synthesized, _no_words(silent)]
    scores = pl.concat(parts, how="vertical").sort("image_id")
    return contract.conform(scores.with_columns(pl.lit(source).alias("source")))


def _no_words(images: pl.DataFrame) -> pl.DataFrame:
    return images.select(
        "image_id",
        *(pl.lit(None, pl.Float64).alias(d) for d in DIMENSIONS),
        pl.lit("lexicon").alias("vad_origin"),
        pl.lit(None, pl.Int32).alias("n_ratings"),
        pl.lit(0, pl.Int32).alias("n_lexicon_words"),
        *_NO_RAW,
    )


# --- validation --------------------------------------------------------------------------------------------


def tertile_levels(values: pl.Expr) -> pl.Expr:
    """``low`` / ``medium`` / ``high`` by the column's own 1/3 and 2/3 quantiles (linear interpolation).

    Below the 1/3 quantile is low, above the 2/3 quantile high, anything between them (both bounds included)
    medium, so tied values always share a level. Nulls stay null.
    """
    q_low = values.quantile(TERTILES[0], QUANTILE_METHOD)
    q_high = values.quantile(TERTILES[1], QUANTILE_METHOD)
    return (
        pl.when(values.is_null())
        .then(pl.lit(None, pl.String))
        .when(values < q_low)
        .then(pl.lit("low"))
        .when(values > q_high)
        .then(pl.lit("high"))
        .otherwise(pl.lit("medium"))
    )


def validation_report(rated: pl.DataFrame, synthesized: pl.DataFrame) -> pl.DataFrame:
    """Agreement of synthesized with rated VAD, per dimension present (non-null) in both frames for some image.

    Frames are joined on ``image_id``; each dimension uses the images where both values are present. Columns:
    ``dimension, n_images, tertile_agreement`` (share of images whose rated and synthesized tertile levels,
    each cut by its own quantiles over those images, agree), ``pearson``, ``spearman`` (average ranks for
    ties); a correlation is null when undefined (fewer than two images or a constant column).
    """
    dimensions = [d for d in DIMENSIONS if d in rated.columns and d in synthesized.columns]
    joined = rated.select("image_id", *dimensions).join(
        synthesized.select("image_id", *dimensions), on="image_id", how="inner", suffix="_synthesized"
    )
    reports = []
    for dimension in dimensions:
        a, b = pl.col(dimension), pl.col(f"{dimension}_synthesized")
        pairs = joined.filter(a.is_not_null() & b.is_not_null() & a.is_not_nan() & b.is_not_nan()).sort("image_id")
        if pairs.is_empty():
            continue
        reports.append(
            pairs.select(
                pl.lit(dimension).alias("dimension"),
                pl.len().cast(pl.Int64).alias("n_images"),
                (tertile_levels(a) == tertile_levels(b)).mean().alias("tertile_agreement"),
                pl.corr(a, b, method="pearson").alias("pearson"),
                pl.corr(a.rank("average"), b.rank("average"), method="pearson").alias("spearman"),
            )
        )
    schema = {"dimension": pl.String, "n_images": pl.Int64, "tertile_agreement": pl.Float64,
              "pearson": pl.Float64, "spearman": pl.Float64}
    if not reports:
        return pl.DataFrame(schema=schema)
    report = pl.concat(reports, how="vertical").cast(schema)
    return report.with_columns(pl.col("pearson", "spearman").fill_nan(None))


VALIDATION_METHODS = ("all_words_rescaled", "keywords_normalized")


def validation_before_after(rated: pl.DataFrame, words: pl.DataFrame, lexicon: pl.DataFrame,
                            bounds: VadBounds | None = None) -> pl.DataFrame:
    """``validation_report`` of VAD synthesized from ``words`` against ``rated``, twice, with a ``method`` column:
    ``all_words_rescaled`` (every lexicon word, plain 1-9 to 0-1: the method before keywords and normalisation)
    and ``keywords_normalized`` (what ``vad_scores`` does: keywords, then the versioned ``bounds``, by default
    the repository's contract)."""
    before = synthesize_vad(words, lexicon, stoplist=frozenset())
    keywords = synthesize_vad(words, lexicon)
    after = normalize_lexicon_vad(keywords, bounds or shipped_vad_bounds())
    return pl.concat([
        validation_report(rated, synthesized).select(pl.lit(method).alias("method"), pl.all())
        for method, synthesized in zip(VALIDATION_METHODS, (before, after))
    ], how="vertical")


def vad_violations(frame: pl.DataFrame) -> list[str]:
    """Contract problems of a ``vad_scores`` frame (empty when clean), for blocking asset checks.

    Schema, nulls in required columns, duplicate keys, any V/A/D outside [0, 1] (NaN included), a
    ``vad_origin`` other than rated/lexicon, and a missing or negative count for the row's origin
    (``n_ratings`` on rated rows, ``n_lexicon_words`` on lexicon rows).
    """
    contract = table_contract("vad_scores")
    problems = contract.violations(frame)
    if frame.is_empty() or (problems and contract.schema_violations(frame)):
        return problems
    counts = frame.select(
        *(
            (pl.col(d).is_nan() | (pl.col(d) < 0) | (pl.col(d) > 1)).sum().alias(d)
            for d in DIMENSIONS
        ),
        (~pl.col("vad_origin").is_in(ORIGINS)).sum().alias("origin"),
        ((pl.col("vad_origin") == "rated") & (pl.col("n_ratings").is_null() | (pl.col("n_ratings") < 0)))
        .sum()
        .alias("n_ratings"),
        ((pl.col("vad_origin") == "lexicon") & (pl.col("n_lexicon_words").is_null() | (pl.col("n_lexicon_words") < 0)))
        .sum()
        .alias("n_lexicon_words"),
    ).row(0, named=True)
    problems += [f"{counts[d]} {d} values outside [0, 1]" for d in DIMENSIONS if counts[d]]
    if counts["origin"]:
        problems.append(f"{counts['origin']} rows with vad_origin outside {list(ORIGINS)}")
    if counts["n_ratings"]:
        problems.append(f"{counts['n_ratings']} rated rows without a non-negative n_ratings")
    if counts["n_lexicon_words"]:
        problems.append(f"{counts['n_lexicon_words']} lexicon rows without a non-negative n_lexicon_words")
    return problems
