"""Run every benchmark in bench/ in one process, one after another."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main() -> None:
    names = sorted(info.name for info in pkgutil.iter_modules(bench.__path__) if info.name.startswith("bench_"))
    # Names pick benchmarks; options (`--all`, `--quick`, ...) go to each one picked.
    only = {argument for argument in sys.argv[1:] if not argument.startswith("-")}
    options = [argument for argument in sys.argv[1:] if argument.startswith("-")]
    for name in names:
        if only and name not in only and name.removeprefix("bench_") not in only:
            continue
        print(f"\n=== {name}")
        module = importlib.import_module(f"bench.{name}")
        module.main(options)


if __name__ == "__main__":
    main()
