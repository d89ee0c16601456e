#!/usr/bin/env python3
"""The Athena row of `cargo xtask bench` (bench-trail): trail-for's own Athena queries, run by
DuckDB over the same local log files the streaming reader reads.

usage: bench-athena-duckdb.py ROOT BUCKET LAYOUT ROUNDS QUERY.sql...

ROOT is a copy of the trail bucket (AWSLogs/... below it), BUCKET the name "$path" gives it,
LAYOUT `org` or `account`. Each round runs every query once, in order, each over a fresh
DuckDB connection and view (as Athena reads the objects again for every query). Prints one
JSON line: {"duckdb": version, "threads": N, "rounds": [seconds, ...], "queries": [{"name",
"rows", "scanned_bytes"}]}.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import athena_duckdb  # noqa: E402


def main() -> None:
    root, bucket, layout, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    queries = []
    for path in sys.argv[5:]:
        with open(path) as f:
            queries.append((os.path.basename(path).rsplit(".", 1)[0], f.read()))
    files = athena_duckdb.local_files(root, bucket)
    times, seen = [], []
    for _ in range(rounds):
        t0 = time.monotonic()
        seen = []
        for name, sql in queries:
            _, rows, scanned = athena_duckdb.execute_files(sql, files, layout)
            seen.append({"name": name, "rows": len(rows), "scanned_bytes": scanned})
        times.append(time.monotonic() - t0)
    import duckdb

    print(json.dumps({"duckdb": duckdb.__version__, "threads": os.cpu_count(), "files": len(files),
                      "rounds": times, "queries": seen}))


if __name__ == "__main__":
    main()
