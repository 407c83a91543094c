"""Line coverage per package of the combined test run, with the floors the project holds.

Run after the unit and integration tests (``scripts/test.sh`` does): it reads ``.coverage``
(subprocesses included, combined by pytest-cov) and exits 1 when a package is under its floor.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import coverage

FLOORS = {"agents": 90.0, "models": 90.0, "streams": 80.0}  # percent of lines; services omitted


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    cov = coverage.Coverage(data_file=str(root / ".coverage"))
    cov.load()
    data = cov.get_data()
    lines: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # package -> [covered, total]
    for filename in data.measured_files():
        rel = Path(filename).resolve().relative_to(root)
        _, statements, _, missing, _ = cov.analysis2(filename)
        package = rel.parts[0]
        lines[package][0] += len(statements) - len(missing)
        lines[package][1] += len(statements)
    failed = False
    print(f"{'package':10} {'lines':>7} {'covered':>8}  floor")
    for package, (hit, total) in sorted(lines.items()):
        pct = 100.0 * hit / total if total else 100.0
        floor = FLOORS.get(package)
        bad = floor is not None and pct < floor
        failed |= bad
        mark = f"{floor:.0f} %" + ("  <-- below" if bad else "") if floor is not None else "-"
        print(f"{package:10} {total:7d} {pct:7.1f} %  {mark}")
    missing_packages = set(FLOORS) - set(lines)
    if missing_packages:
        print(f"no coverage data for {sorted(missing_packages)}")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
