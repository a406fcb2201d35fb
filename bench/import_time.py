"""What importing midstream's layers costs, side by side with h11, httpx2 and the standard library.

Run ``python bench/import_time.py [--runs N]``. Each contender is imported by a fresh interpreter (the
venv's own), ``--runs`` times in interleaved rounds; each child measures only its import statement
(``time.perf_counter`` around ``import X``), so interpreter start-up is not counted, and reports which
third-party top-level packages the import loaded. The table shows the best and the median in
milliseconds.

Contenders: ``dataclasses`` + ``typing`` (what any module of frozen dataclasses pays first), ``h11``
(the sans-IO HTTP/1.1 model the wire layer follows), ``httpx2`` (the client's transport),
``midstream.wire`` (the sans-IO decoders: vocabulary, framing, timeline, every dialect's registry),
``midstream.core`` (adds partial JSON, tool arguments, retry) and ``midstream`` with one name from
the agent layer (``midstream.Agent``: pydantic, httpx2, anyio).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CONTENDERS: dict[str, str] = {
    "dataclasses + typing": "import dataclasses, typing",
    "h11": "import h11",
    "httpx2": "import httpx2",
    "midstream.wire": "import midstream.wire",
    "midstream.core (partial JSON, tool args)": "import midstream.core.toolargs",
    "midstream.Agent (the agent layer)": "import midstream; midstream.Agent",
}

_CHILD = """
import sys, time, json
before = set(sys.modules)
t = time.perf_counter()
{statement}
elapsed = time.perf_counter() - t
stdlib = set(sys.stdlib_module_names)
loaded = sorted({{m.split(".")[0] for m in set(sys.modules) - before}} - stdlib - {{"midstream"}})
print(json.dumps({{"ms": elapsed * 1000, "third_party": [m for m in loaded if not m.startswith("_")]}}))
"""


def measure(statement: str) -> tuple[float, list[str]]:
    """One fresh interpreter's cost of ``statement`` in ms, and the third-party packages it loaded."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(statement=statement)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    return float(result["ms"]), list(result["third_party"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per contender (default 15)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    packages: dict[str, list[str]] = {}
    for _ in range(args.runs):
        for name, statement in CONTENDERS.items():
            ms, loaded = measure(statement)
            times[name].append(ms)
            packages[name] = loaded
    print(f"import cost in a fresh interpreter, best / median of {args.runs} (ms)\n")
    print(f"{'contender':42} {'best':>7} {'median':>7}  third-party packages loaded")
    for name, values in times.items():
        loaded = ", ".join(packages[name]) or "none"
        print(f"{name:42} {min(values):7.1f} {statistics.median(values):7.1f}  {loaded}")


if __name__ == "__main__":
    main()
