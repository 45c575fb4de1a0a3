"""``eemo``: write the embedded sample, run the whole graph on it."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from eemo_pipeline.settings import Settings
from eemo_pipeline.sources import SOURCES

DEFAULT_SAMPLE = Path(".eemo") / "sample"


def _sample(args: argparse.Namespace) -> int:
    from eemo_pipeline.sample import SAMPLE_LEXICON, write_sample

    roots = write_sample(Path(args.directory), args.sources or SOURCES)
    for source, root in roots.items():
        print(f"{source:<11} {root}")
    print(f"{'lexicon':<11} {(Path(args.directory) / SAMPLE_LEXICON).resolve()}")
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command's --storage and --dagster-home on top."""
    settings = Settings.from_env()
    if getattr(args, "storage", None):
        settings = replace(settings, storage=Path(args.storage).expanduser().resolve())
    if getattr(args, "dagster_home", None):
        settings = replace(settings, dagster_home=Path(args.dagster_home).expanduser().resolve())
    return settings


def _demo(args: argparse.Namespace) -> int:
    from eemo_pipeline.demo import run_demo

    return 0 if run_demo(Path(args.sample_dir), _settings(args)) else 1


def _serve(args: argparse.Namespace) -> int:
    from eemo_pipeline.generation.offline_server.server import main as serve

    return serve(["--port", str(args.port), "--latency", str(args.latency)]) or 0


def _sql(args: argparse.Namespace) -> int:
    from eemo_pipeline.lineage import EXAMPLE_QUERIES, ensure_database, format_table, query, refresh

    if args.list_examples:
        for name, example in EXAMPLE_QUERIES.items():
            print(f"{name}\n    {example.description}")
        return 0
    params: dict[str, str] = {}
    for item in args.param or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"eemo sql: --param expects NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        params[name.strip()] = value
    if args.example:
        if args.query:
            print("eemo sql: give either a query or --example, not both", file=sys.stderr)
            return 2
        example = EXAMPLE_QUERIES.get(args.example)
        if example is None:
            print(f"eemo sql: unknown example {args.example!r}; see --list-examples", file=sys.stderr)
            return 2
        try:
            bound: dict | None = example.bind(params)
        except ValueError as error:
            print(f"eemo sql: {args.example}: {error}", file=sys.stderr)
            return 2
        sql = example.sql
    elif args.query:
        sql, bound = args.query, params or None
    else:
        print("eemo sql: give a query, --example NAME or --list-examples", file=sys.stderr)
        return 2
    storage = _settings(args).storage
    if not storage.is_dir():
        print(f"eemo sql: storage {storage} does not exist (set --storage or EEMO_STORAGE)", file=sys.stderr)
        return 2
    if args.refresh:
        refresh(storage)
    else:
        ensure_database(storage)  # rebuilt when a materialization was recorded after it
    import duckdb

    try:
        frame = query(storage, sql, bound)
    except duckdb.Error as error:
        hint = " (no view means the asset has no Parquet output yet; --refresh picks up new ones)" if isinstance(
            error, duckdb.CatalogException) else ""
        print(f"eemo sql: {error}{hint}", file=sys.stderr)
        return 1
    print(format_table(frame, max_rows=args.max_rows))
    return 0


def _assess(args: argparse.Namespace) -> int:
    from eemo_pipeline.evaluation.predict import run_assess

    cache = None if args.no_cache else Path(args.cache) if args.cache else _settings(args).storage / "llm_cache.sqlite"
    return run_assess(args.images, args.model, cache_path=cache, batch_size=args.batch_size,
                      max_new_tokens=args.max_new_tokens)


def _status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    home = settings.dagster_home
    if not (home / "dagster.yaml").is_file() and not (home / "history").is_dir():
        print(f"eemo status: no Dagster instance at {home} (run `eemo demo`, or set DAGSTER_HOME or --dagster-home)",
              file=sys.stderr)
        return 2
    from dagster import DagsterInstance

    from eemo_pipeline.status import collect_status, format_status, to_json

    with DagsterInstance.from_config(str(home)) as instance:
        try:
            statuses = collect_status(instance, storage=settings.storage, assets=args.asset)
        except KeyError as error:
            print(f"eemo status: {error.args[0]}", file=sys.stderr)
            return 2
    print(to_json(statuses) if args.json else format_status(statuses))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eemo", description="EEmo-Logic pipeline: image-evoked emotion data sets, training and benchmarks."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sample = commands.add_parser(
        "sample", help="write the embedded sample data sets", description="Write a small data set per source "
        "into DIRECTORY/<source>/ in its native format (quirks and a few bad rows included)."
    )
    sample.add_argument("directory", help="folder to write into (each source's subfolder is replaced)")
    sample.add_argument("--sources", nargs="+", choices=SOURCES, help="only these sources (default: all)")
    sample.set_defaults(run=_sample)

    demo = commands.add_parser(
        "demo", help="write the sample and materialize every asset for every partition",
        description="Write the embedded sample, point every EEMO_<SOURCE>_ROOT at it and materialize the whole "
        "asset graph in the Dagster instance under DAGSTER_HOME (default ./.eemo/dagster_home), so the runs "
        "show in the UI. Outputs go under EEMO_STORAGE (default ./.eemo/storage).",
    )
    demo.add_argument("--sample-dir", default=str(DEFAULT_SAMPLE), help=f"where to write the sample (default {DEFAULT_SAMPLE})")
    demo.add_argument("--storage", help="output root (default: EEMO_STORAGE or ./.eemo/storage)")
    demo.add_argument("--dagster-home", help="Dagster instance folder (default: DAGSTER_HOME or ./.eemo/dagster_home)")
    demo.set_defaults(run=_demo)

    serve = commands.add_parser(
        "serve-offline", help="serve the offline rules model on 127.0.0.1 (OpenAI-compatible)",
        description="Serve eemo-offline-rules-v1, a rule-based stand-in for the describer and reasoner (no language "
        "model: its texts come from image statistics and the prompt's facts), at http://127.0.0.1:PORT/v1. "
        "Point EEMO_DESCRIBER_BASE_URL / EEMO_REASONER_BASE_URL at it to run the generation assets offline.",
    )
    serve.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    serve.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer (default 0)")
    serve.set_defaults(run=_serve)

    sql = commands.add_parser(
        "sql", help="query the outputs and their lineage with DuckDB (read-only)",
        description="Run a read-only DuckDB query over <storage>/lineage.duckdb: one view per asset over its Parquet "
        "files, generated_text, subset_rows, quarantine, and the materializations / materialization_inputs tables. "
        "The database is built when missing (or with --refresh). Values for $name placeholders come from "
        "--param NAME=VALUE and are always bound as data.",
    )
    sql.add_argument("query", nargs="?", help="SQL to run (omit with --example or --list-examples)")
    sql.add_argument("--storage", help="output root (default: EEMO_STORAGE or ./.eemo/storage)")
    sql.add_argument("--refresh", action="store_true", help="rebuild the lineage database first")
    sql.add_argument("--example", metavar="NAME", help="run a named example query (see --list-examples)")
    sql.add_argument("--param", action="append", metavar="NAME=VALUE", help="bind $NAME (repeatable)")
    sql.add_argument("--list-examples", action="store_true", help="print the example queries and their parameters")
    sql.add_argument("--max-rows", type=int, default=100, help="rows to print (default 100, -1 for all)")
    sql.set_defaults(run=_sql)

    status = commands.add_parser(
        "status", help="what is materialized, stale or failing, per asset and partition",
        description="For every asset and partition of the code location: whether it is materialized in the Dagster "
        "instance (DAGSTER_HOME) and when, whether it is stale (code version changed, or an input it read has new "
        "content since, from the lineage records under EEMO_STORAGE) and whether its latest run or a blocking check "
        "failed. States: failed, running, missing, stale, fresh.",
    )
    status.add_argument("--json", action="store_true", help="print JSON (one object per asset partition)")
    status.add_argument("--asset", action="append", metavar="NAME", help="only this asset (repeatable)")
    status.add_argument("--dagster-home", help="Dagster instance folder (default: DAGSTER_HOME or ./.eemo/dagster_home)")
    status.add_argument("--storage", help="output root with the lineage records (default: EEMO_STORAGE or ./.eemo/storage)")
    status.set_defaults(run=_status)

    assess = commands.add_parser(
        "assess", help="ask a trained model which emotions images evoke (one JSON object per image)",
        description="Ask the model the GRPO stage's questions about each image, with its system prompt: every "
        "registered task's (the emotion ranking, valence, arousal and dominance on 0-1, the dominant emotion). "
        "Prints one JSON object per line: "
        "those fields (null when a reply cannot be read, and named in 'unparsed'), the reasoning of each reply's "
        "think block and the raw replies. Answers are cached, so asking again costs nothing.",
    )
    assess.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    assess.add_argument("--model", required=True, metavar="SPEC",
                        help="a checkpoint directory (full model or PEFT adapter), http(s)://HOST/v1[#MODEL] "
                        "(key from EEMO_EVAL_API_KEY) or endpoint:ROLE (EEMO_<ROLE>_BASE_URL, _MODEL, _API_KEY)")
    assess.add_argument("--max-new-tokens", type=int, default=512, help="reply length limit (default 512)")
    assess.add_argument("--batch-size", type=int, default=8, help="requests per batch of a local model (default 8)")
    assess.add_argument("--cache", help="response cache file (default <EEMO_STORAGE>/llm_cache.sqlite)")
    assess.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    assess.set_defaults(run=_assess)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
