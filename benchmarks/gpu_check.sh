#!/usr/bin/env bash
# benchmarks/gpu_check.sh OUT_DIR: every GPU figure of skinseg in one call of under 9 minutes (issue #11, part 4).
#
# On a CUDA machine with a copy of this repository and the 256 px ISIC 2018 copy in .gpu-data/isic2018-256, it
# runs, each stage under its own `timeout`, going on to the next when one fails (the failure is recorded):
#   a. env       (30 s)  GPU, driver, Python, torch, CUDA; `pip install --no-deps --no-build-isolation
#                        --no-index -e .` (offline; falls back to PYTHONPATH=src)                -> env.txt
#   b. prepare   (30 s)  skinseg prepare of the copy at 256 px into /tmp (outside the repository)
#   c. cuda-tests(60 s)  pytest -m cuda (exit 5, nothing collected, is recorded as "no CUDA tests")
#   d. precision (90 s)  benchmarks/precision.py --device cuda --sizes 128,256                   -> precision.json
#   e. speed    (150 s)  benchmarks/train_speed.py, settings b16,b64,b64-compile,b128-compile, 2 epochs each
#                        (rebuilt from its printed lines if it is stopped before it writes it) -> train_speed.json
#   f. recipe   (rest)   skinseg train --precision auto --compile --batch-size 64 --lr 4e-3 --epochs N, N sized
#                        from stage e's b64-compile epoch times to end inside what is left of the 530 s
#                        -> metrics.csv, curves.png, best.safetensors; first epoch with val Dice >= 0.89
#   then summary.txt (every stage's exit status and seconds, the speed rows, the precision table, the time to
#   val Dice 0.89) and gpu_check.log (everything printed, each line stamped with seconds since the start).
# That is 8 files, the most the device tool brings back. The recipe run uses the CLI, not train_speed.py's
# --target-epochs: it is the product's own path (--precision, curves, weights) and its length can be sized.
#
# Before the call, once, in the checkout the session was started in (only that one travels):
#   python benchmarks/gpu_data.py         # .gpu-data/isic2018-256: 2,594 pairs, about 25 MiB, ignored by git
# The device-tool call (the whole script stops itself after about 540 s):
#   run(command="bash benchmarks/gpu_check.sh $OUT", carry=[".gpu-data"], timeout_s=560)
# then record the figures of summary.txt in docs/benchmarks.md.
#
# A CPU dry run of the plumbing (40 pairs at 64 px, tiny epochs, no compile; the stages whose code is missing
# fail and are recorded):
#   SKINSEG_GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh /tmp/gc
# Other knobs: GPU_CHECK_TOTAL_S (530), GPU_CHECK_DATA, GPU_CHECK_TMP, GPU_CHECK_EPOCHS (fixes N),
# GPU_CHECK_EPOCH_OVERHEAD_S (1.0: weights, state and curves.png written after every epoch, outside `seconds`).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: bash benchmarks/gpu_check.sh OUT_DIR" >&2
    exit 2
fi
if [[ -z ${EPOCHREALTIME:-} ]]; then
    echo "gpu_check.sh needs bash 5 or later (EPOCHREALTIME)" >&2
    exit 2
fi
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
LOG=$OUT/gpu_check.log
: >"$LOG"
exec 3>&1 4>&2
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!

T0=${EPOCHREALTIME//[^0-9]/}
elapsed() { local now=${EPOCHREALTIME//[^0-9]/}; echo $(((now - T0) / 1000000)); }
# Prefix each line with seconds since the start (the per-epoch lines of stage f then carry wall-clock time).
stamp() {
    local line now
    while IFS= read -r line || [[ -n $line ]]; do
        now=${EPOCHREALTIME//[^0-9]/}
        now=$(((now - T0) / 100000))
        printf '[%5d.%ds] %s\n' $((now / 10)) $((now % 10)) "$line"
    done
}

export PYTHONUNBUFFERED=1 COLUMNS=${COLUMNS:-140}
if [[ -z ${PYTHON:-} && -x /opt/torch/.venv/bin/python3 ]]; then PYTHON=/opt/torch/.venv/bin/python3; fi
PY=${PYTHON:-python3}
DEVICE=${SKINSEG_GPU_CHECK_DEVICE:-cuda}
QUICK=${GPU_CHECK_QUICK:-0}
DATA=${GPU_CHECK_DATA:-.gpu-data/isic2018-256}
TMPROOT=${GPU_CHECK_TMP:-/tmp/skinseg-gpu-check}
TOTAL=${GPU_CHECK_TOTAL_S:-530}
RESERVE=10  # seconds kept for copying files and the summary
OVERHEAD=${GPU_CHECK_EPOCH_OVERHEAD_S:-1.0}
PREP=$TMPROOT/prepared/isic256
RUN=$TMPROOT/runs/gpu256
if [[ $QUICK == 1 ]]; then
    SIZE=64 PRECISION_SIZES=64 SETTINGS=b16,b64 SPEED_EPOCHS=2 BATCH=8 CAP=16 COMPILE=0 EPOCHS=${GPU_CHECK_EPOCHS:-2}
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
else
    SIZE=256 PRECISION_SIZES=128,256 SETTINGS=b16,b64,b64-compile,b128-compile SPEED_EPOCHS=2 BATCH=64 CAP=0
    COMPILE=1 EPOCHS=${GPU_CHECK_EPOCHS:-}
fi
LR=4e-3
export PY OUT DEVICE REPO

rm -rf "$TMPROOT"
mkdir -p "$TMPROOT"
STAGES=$TMPROOT/stages.tsv
: >"$STAGES"
echo "skinseg GPU check: device $DEVICE, quick $QUICK, python $PY, out $OUT, $(date -u +%FT%TZ), budget ${TOTAL}s"

# run_stage NAME LIMIT_S COMMAND...: runs COMMAND under `timeout` (at most what is left of the budget), stamps
# its output into the log and $TMPROOT/NAME.log, and records NAME, exit status, seconds and a note. Never fails.
run_stage() {
    local name=$1 limit=$2 rc=0 start left note=""
    shift 2
    left=$((TOTAL - $(elapsed) - RESERVE))
    if ((limit > left)); then limit=$left; fi
    if ((limit < 5)); then
        echo "=== stage $name: skipped, ${left}s left"
        printf '%s\t-\t0\tskipped: no time left\n' "$name" >>"$STAGES"
        return 0
    fi
    echo "=== stage $name (limit ${limit}s): $*" | stamp | tee "$TMPROOT/$name.log"
    start=$(elapsed)
    set +e
    timeout -k 5 "$limit" "$@" </dev/null 2>&1 | stamp | tee -a "$TMPROOT/$name.log"
    rc=${PIPESTATUS[0]}
    set -e
    case $rc in
        0) note=ok ;;
        124 | 137) note="stopped by its ${limit}s limit" ;;
        *) note=failed ;;
    esac
    if [[ $name == cuda-tests && $rc == 5 ]]; then note="no CUDA tests collected (pytest exit 5)"; fi
    if [[ -n ${STAGE_NOTE:-} ]]; then note="$note; $STAGE_NOTE"; fi
    STAGE_NOTE=""
    echo "=== stage $name: exit $rc after $(($(elapsed) - start))s ($note)" | stamp
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(($(elapsed) - start))" "$note" >>"$STAGES"
}

# a. environment -> env.txt
stage_env() {
    {
        echo "# skinseg GPU check environment, $(date -u +%FT%TZ)"
        echo "## host"
        uname -a
        echo "cores: $(getconf _NPROCESSORS_ONLN)"
        free -g 2>/dev/null || true
        echo "## nvidia-smi"
        nvidia-smi || echo "nvidia-smi: not available"
        nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,clocks.max.sm,power.limit \
            --format=csv 2>/dev/null || true
        echo "## source"
        git -C "$REPO" rev-parse HEAD 2>/dev/null || echo "git: no repository here"
        (cd "$REPO" && cat src/skinseg/*.py src/skinseg/data/*.py | sha256sum | cut -c1-16 | sed 's/^/src digest: /')
        echo "## python: $PY"
        "$PY" -VV
        echo "## pip install --no-deps --no-build-isolation --no-index -e ."
        "$PY" -m pip install --no-deps --no-build-isolation --no-index --no-cache-dir -q -e "$REPO" 2>&1 | tail -n 5
        local pip_rc=${PIPESTATUS[0]}
        echo "pip exit $pip_rc"
        "$PY" - <<'EOF'
import importlib.metadata as md
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"cuda available {torch.cuda.is_available()}, threads {torch.get_num_threads()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"gpu {p.name}, capability {p.major}.{p.minor}, {p.total_memory / 2**30:.1f} GiB, "
          f"{p.multi_processor_count} SMs, bf16 {torch.cuda.is_bf16_supported()}")
for name in ("skinseg-unet", "setuptools", "numpy", "pillow", "scikit-image", "safetensors", "typer", "rich",
             "matplotlib", "pytest", "hypothesis", "triton", "onnx", "onnxruntime", "isic-challenge-scoring"):
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name} (not installed)")
EOF
        exit "$pip_rc"  # of the { } subshell that the pipe makes
    } 2>&1 | tee "$OUT/env.txt"
    return "${PIPESTATUS[0]}"
}
export -f stage_env
run_stage env 30 bash -c stage_env
if ! "$PY" -c "import skinseg, sys; sys.exit(not skinseg.__file__.startswith('$REPO/src/'))" 2>/dev/null; then
    export PYTHONPATH=$REPO/src${PYTHONPATH:+:$PYTHONPATH}
    echo "skinseg is not importable from this checkout after pip install: using PYTHONPATH=$REPO/src" | tee -a "$OUT/env.txt"
fi
if [[ $DEVICE == cuda ]] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "WARNING: torch sees no CUDA device; the CUDA stages will fail" | stamp
fi

# b. prepare (a 40-pair subset in the quick dry run)
if [[ $QUICK == 1 ]]; then
    images=ISIC2018_Task1-2_Training_Input masks=ISIC2018_Task1_Training_GroundTruth
    mkdir -p "$TMPROOT/quick-data/$images" "$TMPROOT/quick-data/$masks"
    mapfile -t quick < <(cd "$DATA/$images" && printf '%s\n' *.jpg | sort | head -n 40)
    for file in "${quick[@]}"; do
        cp "$DATA/$images/$file" "$TMPROOT/quick-data/$images/"
        cp "$DATA/$masks/${file%.jpg}_segmentation.png" "$TMPROOT/quick-data/$masks/"
    done
    DATA=$TMPROOT/quick-data
fi
run_stage prepare 30 "$PY" -m skinseg prepare --data "$DATA" --size "$SIZE" --out "$PREP"

# c. the CUDA-marked tests
run_stage cuda-tests 60 "$PY" -m pytest -m cuda -q -p no:cacheprovider

# d. the precision table
if [[ ! -f benchmarks/precision.py ]]; then STAGE_NOTE="benchmarks/precision.py is not in this checkout"; fi
run_stage precision 90 "$PY" benchmarks/precision.py --device "$DEVICE" --sizes "$PRECISION_SIZES" \
    --json "$OUT/precision.json"

# e. training speed
speed_args=(--data "$PREP" --device "$DEVICE" --settings "$SETTINGS" --epochs "$SPEED_EPOCHS"
    --json "$OUT/train_speed.json")
if ((CAP)); then speed_args+=(--max-train-images "$CAP"); fi
run_stage speed 150 "$PY" benchmarks/train_speed.py "${speed_args[@]}"
if [[ ! -f $OUT/train_speed.json && -s $TMPROOT/speed.log ]]; then  # stopped early: keep what it printed
    "$PY" - "$TMPROOT/speed.log" "$OUT/train_speed.json" <<'EOF' || true
import json, re, sys
rows = []
for line in open(sys.argv[1]):
    text = re.sub(r"^\[\s*[0-9.]+s\] ", "", line).strip()
    if text.startswith("{"):
        try:
            rows.append(json.loads(text))
        except ValueError:
            pass
header = next((r for r in rows if "device" in r), {})
speed = [r for r in rows if "setting" in r and "train_images_per_s" in r]
if header or speed:
    json.dump({**header, "speed": speed, "target": None, "incomplete": True}, open(sys.argv[2], "w"), indent=1)
    print(f"train_speed.json rebuilt from the log: {len(speed)} setting(s)")
EOF
fi

# f. the default recipe, timed to validation Dice 0.89
left=$((TOTAL - $(elapsed) - RESERVE))
if [[ -z $EPOCHS ]]; then
    EPOCHS=$("$PY" - "$OUT/train_speed.json" "$left" "$OVERHEAD" <<'EOF'
import json, math, sys
path, left, overhead = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
# Without stage e's figures: >= 2,000 train images/s at 256 px (1,561 images), fast validation, a 90 s compile.
epoch, first = 1561 / 2000 + 0.2, 90.0
try:
    rows = {r["setting"]: r for r in json.load(open(path))["speed"]}
    row = rows.get("b64-compile") or next(r for r in rows.values() if r.get("compile"))
    epoch, first = row["epoch_seconds"], row["first_epoch_seconds"]
except Exception:
    pass
startup = 20.0  # interpreter, torch, CUDA context, data onto the GPU
usable = 0.85 * left - startup - first - overhead  # 15% kept: the run must end inside its stage
print(max(2, min(150, 1 + math.floor(usable / (epoch + overhead)))))
EOF
) || EPOCHS=30
    echo "stage recipe: ${EPOCHS} epochs planned for ${left}s left" | stamp
fi
train_args=(--data "$PREP" --out "$RUN" --device "$DEVICE" --batch-size "$BATCH" --lr "$LR" --epochs "$EPOCHS")
if ((COMPILE)); then train_args+=(--compile); fi
if ((CAP)); then train_args+=(--max-train-images "$CAP"); fi
if "$PY" -m skinseg train --help 2>/dev/null | grep -q -- '--precision'; then
    train_args+=(--precision auto)
else
    STAGE_NOTE="no --precision in this checkout: ran without it (bf16 autocast is its CUDA default)"
    echo "stage recipe: $STAGE_NOTE" | stamp
fi
rm -rf "$RUN"
run_stage recipe "$left" "$PY" -m skinseg train "${train_args[@]}"
for name in metrics.csv curves.png best.safetensors; do
    if [[ -f $RUN/$name ]]; then cp "$RUN/$name" "$OUT/"; fi
done

# summary.txt
"$PY" - "$OUT" "$TMPROOT" "$EPOCHS" "${train_args[*]}" <<'EOF' || echo "summary: failed"
import csv, json, re, sys
from pathlib import Path
out, tmp, planned, command = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lines = []
env = (out / "env.txt").read_text() if (out / "env.txt").exists() else ""
picked = [l for l in env.splitlines() if l.startswith(("torch ", "gpu ", "cores:", "skinseg "))]
lines += ["# skinseg GPU check", "", *picked, "", "| stage | exit | seconds | note |", "| --- | --- | --- | --- |"]
for row in (tmp / "stages.tsv").read_text().splitlines():
    lines.append("| " + " | ".join(row.split("\t")) + " |")
def unstamped(name):
    path = tmp / f"{name}.log"
    return [re.sub(r"^\[\s*[0-9.]+s\] ", "", l) for l in path.read_text().splitlines()] if path.exists() else []
table = [l for l in unstamped("precision") if l.startswith("|")]
if table:
    lines += ["", "## Precision table (benchmarks/precision.py)", "", *table]
try:
    speed = json.loads((out / "train_speed.json").read_text())
    lines += ["", f"## Training speed (benchmarks/train_speed.py, {speed.get('size')} px, "
              f"{speed.get('train_images')} training images{', incomplete' if speed.get('incomplete') else ''})",
              "", "| setting | train images/s | epoch s (with validation) | first epoch s |", "| --- | --- | --- | --- |"]
    for r in speed["speed"]:
        lines.append(f"| {r['setting']} | {r['train_images_per_s']} | {r['epoch_seconds']} | {r['first_epoch_seconds']} |")
except (OSError, ValueError, KeyError) as exc:
    lines += ["", f"## Training speed: no figures ({type(exc).__name__})"]
lines += ["", "## Default recipe to validation Dice 0.89", "", f"skinseg train {command}"]
try:
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    walls = {}  # epoch -> seconds since the train command started (the stamped per-epoch lines)
    log = (tmp / "recipe.log").read_text().splitlines()
    begin = next((float(m.group(1)) for l in log if (m := re.match(r"^\[\s*([0-9.]+)s\] === stage recipe", l))), None)
    for l in log:
        m = re.match(r"^\[\s*([0-9.]+)s\] epoch\s+(\d+)\s", l)
        if m and begin is not None:
            walls[int(m.group(2))] = float(m.group(1)) - begin
    total, reached = 0.0, None
    for r in rows:
        total += float(r["seconds"])
        if reached is None and float(r["val_dice"]) >= 0.89:
            reached = (int(r["epoch"]), total)
    best = max(rows, key=lambda r: float(r["val_dice"]))
    lines.append(f"epochs: {len(rows)} of {planned} planned; best val Dice {float(best['val_dice']):.4f} at epoch "
                 f"{best['epoch']}; sum of `seconds` {total:.1f} s; last epoch ended {walls.get(len(rows), float('nan')):.1f} s "
                 f"after the command started (files, start-up and compilation included)")
    if reached:
        lines.append(f"val Dice >= 0.89 first at epoch {reached[0]}: {reached[1]:.1f} s of cumulative `seconds` "
                     f"(metrics.csv), {walls.get(reached[0], float('nan')):.1f} s wall-clock since the command started")
    else:
        lines.append("val Dice 0.89 not reached")
except (OSError, ValueError, KeyError) as exc:
    lines.append(f"no metrics.csv ({type(exc).__name__})")
(out / "summary.txt").write_text("\n".join(lines) + "\n")
EOF

echo "=== done after $(elapsed)s; files in $OUT:" | stamp
ls -l "$OUT"
count=$(find "$OUT" -type f | wc -l)
if ((count > 8)); then echo "WARNING: $count files in $OUT; the device tool brings back 8"; fi
if [[ -f $OUT/summary.txt ]]; then cat "$OUT/summary.txt"; fi
exec 1>&3 2>&4 3>&- 4>&-
for _ in 1 2 3 4 5 6 7 8 9 10; do  # let tee finish the log, but never wait on a process a stage left behind
    kill -0 "$TEE_PID" 2>/dev/null || break
    sleep 0.5
done
