#!/usr/bin/env bash
# One GPU check of every benchmark at full size, in at most 8 minutes on one H100/H200, its
# tables in BENCHMARKS.md's format in one file: $OUT/gpu_tables.md when $OUT is set, else
# benchmarks/results/gpu_tables.md (or --out FILE). Everything is generated locally (random
# weights, no network); the faces come from ../shared/faces (or --faces DIR).
#
#   benchmarks/gpu_check.sh [--dry-run] [--out FILE] [--faces DIR]
#
# --dry-run: CPU, tiny networks and sizes: checks in CI that the script and every benchmark
# still run and print their tables (tests/test_gpu_check.py); its numbers mean nothing.
# A benchmark that fails or runs past its time limit is recorded as failed in the file and
# the check goes on; the exit status is 1 when any failed. PYTHON picks the interpreter.
set -uo pipefail
cd "$(dirname "$0")/.."

dry_run=0
out="${OUT:+$OUT/gpu_tables.md}"
faces=""
while (($#)); do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --out) out="$2"; shift ;;
    --faces) faces="$2"; shift ;;
    *) echo "gpu_check.sh: unknown argument $1; use --dry-run, --out FILE, --faces DIR" >&2; exit 2 ;;
  esac
  shift
done
out="${out:-benchmarks/results/gpu_tables.md}"
python="${PYTHON:-python}"
faces_flag=(${faces:+--faces "$faces"})

if ((dry_run)); then
  device=(--device cpu)
  frc=(--tiny --sizes 64 --repeats 1)
  extract=(--tiny --batches 1 --repeats 1)
  train=(--tiny --sizes 64 --batch 1 --repeats 1)
  train_512=(--tiny --sizes 64 --batch 1 --repeats 1)  # the same path as 256 vs 512: one size is enough
  paste=(--frames 10 --size 128)
  edit=(--tiny --steps 1 --runs 1)
  limit=120
else
  device=(--device cuda)
  frc=(--dtype float16 --sizes 512 --repeats 20)
  extract=(--batches 1 16 --repeats 5)
  train=(--precision bf16 --sizes 256 --batch 8 --repeats 5)
  train_512=(--precision bf16 --sizes 512 --batch 8 --repeats 5)
  paste=(--frames 1000)
  edit=(--steps 20)
  limit=150
fi

mkdir -p "$(dirname "$out")"
{
  echo "# GPU check ($(date -u +%Y-%m-%d), $(git rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
  ((dry_run)) && echo && echo "DRY RUN: CPU, tiny networks and sizes; the numbers only show the scripts run."
} >"$out"

failed=0
# section TITLE MODULE ARGS...: run one benchmark, append its device line and table
section() {
  local title="$1" module="$2"
  shift 2
  local command="python -m benchmarks.$module $*"
  echo "== $title: $command" >&2
  local start=$SECONDS log
  log=$(mktemp)
  if timeout "$limit" "$python" -m "benchmarks.$module" "$@" >"$log" 2>"$log.err"; then
    {
      echo
      echo "## $title (\`$command\`, $((SECONDS - start)) s)"
      echo
      grep -E '^(device:|\|)' "$log"
    } >>"$out"
  else
    failed=1
    {
      echo
      echo "## $title (\`$command\`): FAILED after $((SECONDS - start)) s"
      echo
      echo '```'
      tail -n 15 "$log.err"
      echo '```'
    } >>"$out"
  fi
  cat "$log" >&2
  rm -f "$log" "$log.err"
}

section "FRC overhead per UNet step" frc_overhead "${device[@]}" "${frc[@]}"
section "FORD extractors per face" extract "${device[@]}" "${extract[@]}" "${faces_flag[@]}"
section "Training step" train "${device[@]}" "${train[@]}"
section "Training step, larger image" train "${device[@]}" "${train_512[@]}"
section "Training step, CLIP tokens stored" train "${device[@]}" "${train[@]}" --clip-tokens
section "Training step, eager attention" train "${device[@]}" "${train[@]}" --attention eager
section "Paste-back of a long video" paste_back "${device[@]}" "${paste[@]}" "${faces_flag[@]}"
section "edit end to end" edit "${device[@]}" "${edit[@]}" "${faces_flag[@]}"

# the two targets, read from the tables: FRC ratio of medians at 512 (<= 1.06), and the
# generalist schedule (20k steps x batch 32) on one device (<= 2 h)
"$python" - "$out" <<'EOF' | tee -a "$out"
import re
import sys

FRC = re.compile(r"^\| (\d+) \| [\d.]+ \| [\d.]+ \| ([\d.]+) \|", re.M)
SCHEDULE = re.compile(r"^\| (\d+) \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+M \| ([\d,.]+) h", re.M)
print("\n## Targets\n")
for section in open(sys.argv[1]).read().split("\n## ")[1:]:
    title = section.split(" (")[0]
    if title.startswith("FRC"):
        for size, ratio in FRC.findall(section):
            print(f"- FRC overhead at {size} px, ratio of medians: {ratio} (target <= 1.06 at 512 in fp16)")
    for size, hours in SCHEDULE.findall(section):
        print(f"- {title}, {size} px: generalist schedule (20k x 32) on one device {hours} h "
              "(target <= 2 h on one H100-class GPU)")
EOF
echo "tables: $out" >&2
exit "$failed"
