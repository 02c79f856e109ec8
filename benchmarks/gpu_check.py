"""One GPU check of every benchmark at full size, in at most 8 minutes on one H100/H200.

Its tables, in BENCHMARKS.md's format, go to one file: $OUT/gpu_tables.md when $OUT is set,
else benchmarks/results/gpu_tables.md (or --out FILE), ending with the two targets read
back from them. Everything is generated locally (random weights, no network); the faces
come from ../shared/faces (or --faces DIR).

    python -m benchmarks.gpu_check [--dry-run] [--out FILE] [--faces DIR]

--dry-run: CPU (one thread), tiny networks and sizes: checks in CI that every benchmark
still runs and prints its table (tests/test_gpu_check.py); its numbers mean nothing.
Without it, the check stops at once when no CUDA GPU is available.

Each benchmark runs its own `main` in a process forked from this one, which has imported
every benchmark module once: a fresh process per benchmark (its own CUDA context, memory
peak and time limit) without paying torch's and diffusers' import again. This process never
touches CUDA, so the forked ones start it cleanly. A benchmark that fails or runs past its
time limit is recorded as failed in the file and the check goes on; the exit status is 1
when any failed.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Section:
    title: str
    module: str  # in benchmarks/
    gpu: str  # its arguments on the GPU
    dry_run: str  # its arguments in a dry run
    reads_faces: bool = False  # takes --faces


SECTIONS = (
    Section("FRC overhead per UNet step", "frc_overhead", "--dtype float16 --sizes 512 --repeats 20",
            "--tiny --sizes 64 --repeats 1"),
    Section("FORD extractors per face", "extract", "--batches 1 16 --repeats 5",
            "--tiny --batches 1 --repeats 1", reads_faces=True),
    Section("Training step", "train", "--precision bf16 --sizes 256 --batch 8 --repeats 5",
            "--tiny --sizes 64 --batch 1 --repeats 1"),
    # the dry run's one tiny size: 256 and 512 share one code path
    Section("Training step, larger image", "train", "--precision bf16 --sizes 512 --batch 8 --repeats 5",
            "--tiny --sizes 64 --batch 1 --repeats 1"),
    Section("Training step, CLIP tokens stored", "train",
            "--precision bf16 --sizes 256 --batch 8 --repeats 5 --clip-tokens",
            "--tiny --sizes 64 --batch 1 --repeats 1 --clip-tokens"),
    Section("Training step, eager attention", "train", "--precision bf16 --sizes 256 --batch 8 --repeats 5 "
            "--attention eager", "--tiny --sizes 64 --batch 1 --repeats 1 --attention eager"),
    Section("FaceXFormer analysis per face", "analysis", "--batches 1 16 --repeats 10",
            "--tiny --batches 1 --repeats 1", reads_faces=True),
    Section("Paste-back of a long video", "paste_back", "--frames 1000", "--frames 10 --size 128", reads_faces=True),
    Section("edit end to end", "edit", "--steps 20", "--tiny --steps 1 --runs 1", reads_faces=True),
)
GPU_TIME_LIMIT_S, DRY_RUN_TIME_LIMIT_S = 150, 120  # per benchmark
FRC = re.compile(r"^\| (\d+) \| [\d.]+ \| [\d.]+ \| ([\d.]+) \|", re.M)
SCHEDULE = re.compile(r"^\| (\d+) \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+M \| ([\d,.]+) h", re.M)


def default_out() -> Path:
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"], "gpu_tables.md")
    return ROOT / "benchmarks" / "results" / "gpu_tables.md"


def require_cuda() -> None:
    """Stop before any benchmark when torch sees no CUDA GPU. Asked in a child process:
    this one must not start CUDA before it forks the benchmarks."""
    probe = ("import torch; print(f'torch {torch.__version__}, CUDA build {torch.version.cuda}, '"
             "f'{torch.cuda.device_count()} GPUs'); raise SystemExit(not torch.cuda.is_available())")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    if result.returncode != 0:
        seen = result.stdout.strip() or result.stderr.strip()[-500:]
        raise SystemExit(f"gpu_check: no CUDA GPU is available ({seen}); the check measures on one. "
                         "Run it on a GPU machine, or with --dry-run for the CPU check of the scripts.")


def run_benchmark(module: str, argv: list[str], stdout: Path, stderr: Path) -> None:
    """In the forked process: `python -m benchmarks.<module> <argv>`, its output into the files."""
    for stream, path in ((1, stdout), (2, stderr)):
        with open(path, "w") as file:
            os.dup2(file.fileno(), stream)
    sys.argv = [f"benchmarks/{module}.py", *argv]
    importlib.import_module(f"benchmarks.{module}").main()


def run_section(section: Section, argv: list[str], limit_s: int, logs: Path) -> tuple[bool, str, str]:
    """(passed, stdout, stderr) of one benchmark in a forked process, killed after `limit_s`."""
    stdout, stderr = logs / f"{section.module}.out", logs / f"{section.module}.err"
    process = multiprocessing.get_context("fork").Process(
        target=run_benchmark, args=(section.module, argv, stdout, stderr))
    process.start()
    process.join(limit_s)
    if process.is_alive():
        process.kill()
        process.join()
        stderr.write_text(stderr.read_text() + f"\nkilled after its time limit of {limit_s} s\n")
    return process.exitcode == 0, stdout.read_text(), stderr.read_text()


def section_text(section: Section, command: str, seconds: float, passed: bool, stdout: str, stderr: str) -> str:
    """The section of the tables file: the device line and table, or the end of the error."""
    if passed:
        table = [line for line in stdout.splitlines() if line.startswith(("device:", "|"))]
        return f"\n## {section.title} (`{command}`, {seconds:.0f} s)\n\n" + "\n".join(table) + "\n"
    tail = "\n".join(stderr.splitlines()[-15:])
    return f"\n## {section.title} (`{command}`): FAILED after {seconds:.0f} s\n\n```\n{tail}\n```\n"


def targets(tables: str) -> str:
    """The two targets read from the tables: FRC ratio of medians at 512 (<= 1.06), and the
    generalist schedule (20k steps x batch 32) on one device (<= 2 h)."""
    lines = ["\n## Targets\n"]
    for section in tables.split("\n## ")[1:]:
        title = section.split(" (")[0]
        if title.startswith("FRC"):
            lines += [f"- FRC overhead at {size} px, ratio of medians: {ratio} (target <= 1.06 at 512 in fp16)"
                      for size, ratio in FRC.findall(section)]
        lines += [f"- {title}, {size} px: generalist schedule (20k x 32) on one device {hours} h "
                  "(target <= 2 h on one H100-class GPU)" for size, hours in SCHEDULE.findall(section)]
    return "\n".join(lines) + "\n"


def git_revision() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else "no git"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny networks and sizes (CI)")
    parser.add_argument("--out", type=Path, default=default_out(), help="the tables file")
    parser.add_argument("--faces", type=Path, help="the annotated faces folder (default ../shared/faces)")
    args = parser.parse_args()
    if args.dry_run:
        # one CPU thread (unless OMP_NUM_THREADS says otherwise): on a shared 2-core machine two
        # threads that wait on each other made the dry run 4x slower (122 s against 32 s)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    else:
        require_cuda()
    for module in dict.fromkeys(section.module for section in SECTIONS):  # imported once, shared by every fork
        importlib.import_module(f"benchmarks.{module}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    header = f"# GPU check ({datetime.datetime.now(datetime.UTC):%Y-%m-%d}, {git_revision()})\n"
    if args.dry_run:
        header += "\nDRY RUN: CPU, tiny networks and sizes; the numbers only show the scripts run.\n"
    args.out.write_text(header)
    limit_s = DRY_RUN_TIME_LIMIT_S if args.dry_run else GPU_TIME_LIMIT_S
    failed = False
    with tempfile.TemporaryDirectory() as logs:
        for section in SECTIONS:
            argv = ["--device", "cpu" if args.dry_run else "cuda",
                    *(section.dry_run if args.dry_run else section.gpu).split(),
                    *(["--faces", str(args.faces)] if args.faces and section.reads_faces else [])]
            command = f"python -m benchmarks.{section.module} {' '.join(argv)}"
            print(f"== {section.title}: {command}", file=sys.stderr, flush=True)
            start = time.perf_counter()
            passed, stdout, stderr = run_section(section, argv, limit_s, Path(logs))
            failed |= not passed
            with args.out.open("a") as out:
                out.write(section_text(section, command, time.perf_counter() - start, passed, stdout, stderr))
            print(stdout, file=sys.stderr, flush=True)
    summary = targets(args.out.read_text())
    with args.out.open("a") as out:
        out.write(summary)
    print(summary)
    print(f"tables: {args.out}", file=sys.stderr)
    return int(failed)


if __name__ == "__main__":
    raise SystemExit(main())
