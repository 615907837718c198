"""Prints criterion's results for the call-path benchmarks as one table with ratios.

Reads ``<criterion dir>/*/new/{benchmark,estimates}.json`` (medians, in ns) of the benchmarks
named ``call / <path> / <signature>`` and ``compile / <signature>``.
"""

import json
import sys
from pathlib import Path


def load_medians(criterion_dir: Path) -> dict[str, float]:
    medians = {}
    for benchmark in criterion_dir.glob("*/new/benchmark.json"):
        full_id = json.loads(benchmark.read_text())["full_id"]
        estimates = json.loads((benchmark.parent / "estimates.json").read_text())
        medians[full_id] = estimates["median"]["point_estimate"]
    return medians


def main() -> None:
    criterion_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    medians = load_medians(criterion_dir)
    signatures = sorted({key.split(" / ")[-1] for key in medians if key.startswith("call / ")})
    header = ("signature", "direct ns", "jit ns", "libffi ns", "jit/direct", "libffi/jit", "compile µs")
    rows = []
    for signature in signatures:
        direct = medians.get(f"call / direct / {signature}")
        jit = medians.get(f"call / jit / {signature}")
        libffi = medians.get(f"call / libffi / {signature}")
        compile_ns = medians.get(f"compile / {signature}")
        rows.append(
            (
                signature,
                f"{direct:.2f}",
                f"{jit:.2f}",
                f"{libffi:.2f}",
                f"{jit / direct:.2f}x",
                f"{libffi / jit:.2f}x",
                f"{compile_ns / 1000:.1f}" if compile_ns else "-",
            )
        )
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + " |")


if __name__ == "__main__":
    main()
