"""``eemo``: write the embedded sample, run the whole graph on it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from eemo_pipeline.sources import SOURCES

DEFAULT_SAMPLE = Path(".eemo") / "sample"


def _sample(args: argparse.Namespace) -> int:
    from eemo_pipeline.sample import SAMPLE_LEXICON, write_sample

    roots = write_sample(Path(args.directory), args.sources or SOURCES)
    for source, root in roots.items():
        print(f"{source:<11} {root}")
    print(f"{'lexicon':<11} {(Path(args.directory) / SAMPLE_LEXICON).resolve()}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from eemo_pipeline.demo import run_demo

    if args.storage:
        os.environ["EEMO_STORAGE"] = str(Path(args.storage).resolve())
    return 0 if run_demo(Path(args.sample_dir), dagster_home=args.dagster_home) else 1


def _serve(args: argparse.Namespace) -> int:
    from eemo_pipeline.generation.local_server import main as serve

    return serve(["--port", str(args.port), "--latency", str(args.latency)]) or 0


def _sql(args: argparse.Namespace) -> int:
    from eemo_pipeline.lineage import EXAMPLE_QUERIES, ensure_database, format_table, query, refresh
    from eemo_pipeline.storage import storage_root

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
    storage = storage_root(args.storage)
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
