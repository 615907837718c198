"""Prints criterion's results for the call-path benchmarks as one table with ratios.

Reads ``<criterion dir>/*/new/{benchmark,estimates}.json`` (medians, in ns) of the benchmarks
named ``call / <path> / <signature>`` and ``compile / <signature>``.
"""

import json
import sys
from pathlib import Path

PATHS = ("direct", "jit", "libffi")


def load_medians(criterion_dir: Path) -> dict[str, float]:
    medians = {}
    for benchmark in criterion_dir.glob("*/new/benchmark.json"):
        full_id = json.loads(benchmark.read_text())["full_id"]
        estimates = json.loads((benchmark.parent / "estimates.json").read_text())
        medians[full_id] = estimates["median"]["point_estimate"]
    return medians


def ns(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def ratio(numerator: float | None, denominator: float | None) -> str:
    return "-" if numerator is None or denominator is None else f"{numerator / denominator:.2f}x"


def main() -> None:
    criterion_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    medians = load_medians(criterion_dir)
    signatures = sorted({key.split(" / ")[-1] for key in medians if key.startswith("call / ")})
    header = ("signature", "direct ns", "jit ns", "libffi ns", "jit/direct", "libffi/jit")
    rows = [header + ("compile µs",)]
    for signature in signatures:
        direct, jit, libffi = (medians.get(f"call / {path} / {signature}") for path in PATHS)
        compile_ns = medians.get(f"compile / {signature}")
        compile_us = "-" if compile_ns is None else f"{compile_ns / 1000:.1f}"
        cells = (ns(direct), ns(jit), ns(libffi), ratio(jit, direct), ratio(libffi, jit))
        rows.append((signature, *cells, compile_us))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    rows.insert(1, tuple("-" * width for width in widths))
    for row in rows:
        padded = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("| " + " | ".join(padded) + " |")


if __name__ == "__main__":
    main()
