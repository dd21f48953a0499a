"""``coredump-agent export-parquet``: one run of the Parquet export flow."""

from __future__ import annotations

import argparse
import sys

from coredump_agent.prefect_env import apply_defaults


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "export-parquet",
        help="Write what changed since the last export to the Parquet dataset (export.dest).",
        description="Run the export-parquet flow once: every table's new and changed rows go to "
        "<dest>/<table>/date=YYYY-MM-DD/part-0.parquet (zstd), each touched partition swapped in whole, "
        "then the table's watermark in the database moves on.",
    )
    parser.add_argument(
        "--dest", metavar="PATH|s3://BUCKET/PREFIX",
        help="where the dataset goes: a folder or s3://bucket/prefix (default: export.dest; S3 uses the "
        "storage.s3 endpoint and region, credentials from the environment)",
    )
    parser.add_argument(
        "--full", action="store_true",
        help="rewrite every partition from the database, removing partitions that no longer have rows",
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from coredump_agent.cli import emit_json
    from coredump_agent.commands.args import configured
    from coredumps.export import parse_destination

    cfg = configured(args)
    parse_destination(args.dest or cfg.export.dest)
    apply_defaults()
    from flows.export_parquet import export_parquet

    result = export_parquet(dest=args.dest, full=args.full, config_path=args.config)
    if args.json:
        emit_json(result)
        return 0
    mode = "full export" if args.full else "export"
    sys.stdout.write(f"{mode} to {result['dest']}: {result['rows_written']} rows written, "
                     f"{result['partitions_touched']} partitions touched\n")
    for table in result["tables"]:
        sys.stdout.write(f"  {table['table']}: {table['rows_written']} rows in {len(table['partitions'])} partitions"
                         f"{', ' + str(len(table['removed'])) + ' removed' if table['removed'] else ''}\n")
    return 0
