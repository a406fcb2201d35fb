"""Run the fuzz targets of ``tests/fuzzsupport.py`` for a while: ``make fuzz`` (see ``fuzz/README.md``).

``python fuzz/run.py [--seconds N] [TARGET ...]`` runs each target (all by default) for N seconds:
with atheris (coverage-guided, libFuzzer) when it is installed, otherwise with hypothesis (random bytes
and mutations of the corpus). A failing input is written to ``fuzz/crashes/<target>-<sha1>`` and the
run stops with status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
CRASHES = HERE / "crashes"


def _save(name: str, data: bytes) -> Path:
    CRASHES.mkdir(exist_ok=True)
    path = CRASHES / f"{name.replace(':', '-')}-{hashlib.sha1(data).hexdigest()[:12]}"
    path.write_bytes(data)
    return path


def _atheris(name: str, seconds: int) -> int:
    """One target under atheris, in a fresh process (libFuzzer exits the process when it is done)."""
    import atheris

    with atheris.instrument_imports(include=["midstream"]):  # coverage feedback from midstream's code
        from fuzzsupport import TARGETS, seeds

    target = TARGETS[name]
    with tempfile.TemporaryDirectory() as work:
        corpus = Path(work) / "corpus"
        corpus.mkdir()
        for n, seed in enumerate(seeds(name)):
            (corpus / f"seed-{n}").write_bytes(seed)

        def one(data: bytes) -> None:
            try:
                target(data)
            except BaseException:
                print(f"{name}: failing input saved as {_save(name, data)}", file=sys.stderr)
                raise

        args = [
            sys.argv[0],
            f"-max_total_time={seconds}",
            "-max_len=8192",
            f"-artifact_prefix={work}/",
            str(corpus),
        ]
        atheris.Setup(args, one)
        atheris.Fuzz()
    return 0


def _hypothesis(name: str, seconds: int) -> int:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from fuzzsupport import TARGETS, seeds
    from test_fuzz import mutated

    target = TARGETS[name]
    corpus = seeds(name) or [b"{}"]
    deadline = time.monotonic() + seconds
    failing: list[bytes] = []

    # Long batches of examples until the time is up; past it the rest of a batch does nothing. (A
    # test that raised to stop would be a failure to hypothesis, which replays it to shrink it and
    # reports the replay's pass as a flaky failure; short batches would restart its search from the
    # simplest inputs too often.)
    @settings(max_examples=5000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.binary(max_size=2048), mutated(corpus)))
    def run(data: bytes) -> None:
        if time.monotonic() > deadline:
            return
        try:
            target(data)
        except AssertionError:
            failing.append(data)
            raise

    while time.monotonic() < deadline:
        try:
            run()
        except Exception as exc:
            where = _save(name, failing[-1]) if failing else None
            print(f"{name}: {type(exc).__name__}: {exc}\n  failing input: {where}", file=sys.stderr)
            return 1
    return 0


def _child(name: str, seconds: int, engine: str) -> None:
    code = _atheris(name, seconds) if engine == "atheris" else _hypothesis(name, seconds)
    os._exit(code)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="*", help="default: all (decode:<dialect>, partial_json, ...)")
    parser.add_argument("--seconds", type=int, default=30, help="per target (default 30)")
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    options = parser.parse_args()
    engine = options.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "hypothesis"
    from fuzzsupport import TARGETS

    names = options.targets or sorted(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)}")
    failed = []
    for name in names:
        print(f"== {name} ({engine}, {options.seconds} s)", flush=True)
        child = multiprocessing.get_context("spawn").Process(
            target=_child, args=(name, options.seconds, engine)
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            failed.append(name)
    if failed:
        print(f"failing targets: {', '.join(failed)} (inputs in {CRASHES})", file=sys.stderr)
        raise SystemExit(1)
    print(f"all {len(names)} targets held their invariants")


if __name__ == "__main__":
    main()
