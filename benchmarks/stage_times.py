"""Per-stage breakdown of a study run from its Snakemake benchmark files.

Every rule writes benchmarks/[<run name>/]rules/<rule>/…/*.tsv (wall seconds ``s``, peak
resident memory ``max_rss`` in MB, ``cpu_time``). This prints, per rule, the number of jobs,
their summed and mean wall time, the longest job and the largest peak memory, as a Markdown
table (the README's performance section).

    python benchmarks/stage_times.py [benchmarks/rules]
"""

import csv
import sys
from collections import defaultdict
from pathlib import Path


def stage_times(root: Path) -> dict[str, list[dict[str, float]]]:
    """Rule name → the benchmark rows of its jobs (last row of each file)."""
    rows = defaultdict(list)
    for path in sorted(root.rglob("*.tsv")):
        with path.open() as fh:
            records = list(csv.DictReader(fh, delimiter="\t"))
        if records:
            rule = path.relative_to(root).parts[0]
            rows[rule].append({k: float(v) for k, v in records[-1].items()
                               if k in ("s", "max_rss", "cpu_time") and v not in ("", "-")})
    return dict(rows)


def main(root="benchmarks/rules"):
    root = Path(root)
    rows = stage_times(root)
    if not rows:
        sys.exit(f"no benchmark files under {root}: run snakemake first")
    print("| rule | jobs | wall, summed (s) | mean (s) | longest (s) | peak memory (MB) |")
    print("|---|---|---|---|---|---|")
    total = 0.0
    for rule, jobs in sorted(rows.items(), key=lambda kv: -sum(j["s"] for j in kv[1])):
        wall = [j["s"] for j in jobs]
        total += sum(wall)
        rss = max(j.get("max_rss", float("nan")) for j in jobs)
        print(f"| {rule} | {len(jobs)} | {sum(wall):.1f} | {sum(wall) / len(wall):.2f} | "
              f"{max(wall):.2f} | {rss:.0f} |")
    print(f"| all | {sum(map(len, rows.values()))} | {total:.1f} | | | |")


if __name__ == "__main__":
    main(*sys.argv[1:])
