#!/usr/bin/env bash
# Bounded fuzzing: builds the cargo-fuzz targets in fuzz/ and runs each one for SECONDS (argument,
# else $FUZZ_SECONDS, else 45) from a scratch copy of its committed corpus, so a run never changes
# the repository. Exits non-zero if any target finds a crash, leak, timeout or out-of-memory, after
# printing the input that caused it. Needs the nightly toolchain (sanitizers); installs cargo-fuzz.
#
#   bash .ci/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-${FUZZ_SECONDS:-45}}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz: SECONDS must be a positive whole number, got '$seconds'" >&2
    exit 2
fi

# target name and the largest input worth trying for it, in bytes.
targets=(
    "publish_body 65536"      # event bodies; 64 KiB holds any realistic event and keeps runs fast
    "verify_signature 8192"   # secret, headers and a body; each input is ~80 HMACs
    "endpoint_url 4096"       # twice MAX_URL_LEN, so the length limit itself is exercised
    "event_filter 512"        # names are at most 128 bytes; a filter and a type fit easily
)

echo "== fuzz: toolchain"
if ! cargo +nightly --version; then
    echo "fuzz: the nightly toolchain is required (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
cargo +nightly fuzz --version

echo "== fuzz: build"
build_started=$SECONDS
# FUZZ_TARGET_DIR lets CI keep the (slow, sanitizer-instrumented) build outside the clone.
fuzz_target_dir="${FUZZ_TARGET_DIR:-fuzz/target}"
cargo +nightly fuzz build --target-dir "$fuzz_target_dir"
echo "fuzz: built in $((SECONDS - build_started)) s"
binaries="$fuzz_target_dir/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# Crash inputs must outlive the scratch directory so that they can be looked at after the run.
artifacts="${FUZZ_ARTIFACTS_DIR:-${TMPDIR:-/tmp}/hookd-fuzz-artifacts}/$(date +%Y%m%d-%H%M%S)-$$"
mkdir -p "$artifacts"
# As cargo-fuzz runs them: Rust's codegen units trip ASan's one-definition-rule check falsely.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}"

failed=()
summaries=()
for entry in "${targets[@]}"; do
    read -r target max_len <<<"$entry"
    echo "== fuzz: $target (${seconds} s)"
    corpus="$scratch/corpus/$target"
    mkdir -p "$corpus" "$artifacts/$target"
    cp -R "fuzz/corpus/$target/." "$corpus/"
    seeds=$(find "$corpus" -type f | wc -l)
    dictionary=()
    if [[ -f "fuzz/dict/$target.dict" ]]; then
        dictionary=("-dict=fuzz/dict/$target.dict")
    fi
    log="$scratch/$target.log"
    status=0
    "$binaries/$target" "$corpus" "${dictionary[@]}" \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len="$max_len" -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$artifacts/$target/" >"$log" 2>&1 || status=$?

    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    elapsed=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n1)
    found=$(find "$corpus" -type f | wc -l)
    if [[ $status -eq 0 ]]; then
        summary="fuzz: $target: ok, ${runs:-?} executions in ${elapsed:-?} s (${rate:-?}/s), corpus $seeds -> $found"
        echo "$summary"
        summaries+=("$summary")
        continue
    fi

    failed+=("$target")
    summaries+=("fuzz: $target: FAILED (exit $status) after ${runs:-?} executions")
    echo "fuzz: $target FAILED (libFuzzer exit $status); the end of its log:" >&2
    tail -n 60 "$log" >&2
    for input in "$artifacts/$target"/*; do
        [[ -f "$input" ]] || continue
        echo "fuzz: failing input: $input ($(wc -c <"$input") bytes)" >&2
        echo "fuzz: reproduce with: cargo +nightly fuzz run $target $input" >&2
        # CI logs may be all there is afterwards, so show small inputs in full.
        if [[ $(wc -c <"$input") -le 4096 ]]; then
            echo "fuzz: input as base64: $(base64 -w0 "$input")" >&2
        fi
    done
done

# Keep only the directories that hold something to look at.
find "$artifacts" -depth -type d -empty -delete

echo "== fuzz: summary"
printf '%s\n' "${summaries[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: failing targets: ${failed[*]}" >&2
    exit 1
fi
