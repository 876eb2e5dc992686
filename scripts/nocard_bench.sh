#!/usr/bin/env bash
# The no-card path against a bare poem handler, side by side in one run
# (issue #11, item 11). Not run by CI.
#
#   scripts/nocard_bench.sh [ROUNDS] [SECONDS]          # default 3 rounds of 5 s
#   PERF=1 scripts/nocard_bench.sh                      # + perf profile of modbridge
#   MODBRIDGE_BIN=/tmp/modbridge-before scripts/nocard_bench.sh   # another build
#   NO_BUILD=1 scripts/nocard_bench.sh                  # the binaries already in target/profiling
#   CALLGRIND=1 scripts/nocard_bench.sh 1 10            # instructions per request, under valgrind
#
# Builds modbridge and src/bin/bare_poem.rs (feature bare-poem) with the `profiling` profile (the
# release profile with symbols kept), starts a redis-server of its own on a
# free port, writes 20 rules files of 50 keywords and 1 pattern each, and a
# ~500-byte post (its content) that matches none of them, then alternates
# wrk -t2 -c64 runs: bare, modbridge, bare, modbridge, ... Every request has
# a unique X-Cativa-Execution-Id (scripts/nocard_wrk.lua); the body is signed
# just before each run. Prints req/s and p99 of each run, the ratio, the CPU
# time per request of each server (and of redis-server during modbridge's
# runs, from /proc/PID/stat: a figure the other load on a shared machine
# skews much less than req/s), and
# checks that modbridge answered only 200s, counted them no_card and wrote
# nothing to Redis. RUST_LOG=warn. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-5}
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
[ -x /usr/bin/time ] || apt-get install -y time >/dev/null
command -v redis-server >/dev/null || { echo "redis-server is needed" >&2; exit 1; }
bin=target/profiling
[ "${NO_BUILD:-}" = 1 ] || cargo build --profile profiling --quiet --features bare-poem --bin modbridge --bin bare_poem

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
rport=$(port); mport=$(port); aport=$(port); bport=$(port)
tmp=$(mktemp -d)
srv=""; bare=""
cleanup() {
  [ -n "$srv" ] && kill "$srv" 2>/dev/null
  [ -n "$bare" ] && kill "$bare" 2>/dev/null
  [ -f "$tmp/redis.pid" ] && kill "$(cat "$tmp/redis.pid")" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
  --daemonize yes --pidfile "$tmp/redis.pid" >/dev/null
sleep 0.3

# 20 files × (50 keywords, every fifth a two-word phrase, + 1 pattern): the
# shape of benches/support/corpus.rs, made-up words that no English post has.
mkdir "$tmp/rules"
python3 - "$tmp/rules" <<'EOF'
import sys
syl = ["ka","lo","mi","ren","du","sa","vi","tor","pel","qui","zan","bo","fe","gu","ni","ra","te","xo","lu","mar"]
def word(n): return "".join(syl[(n // 20**i) % 20] for i in range(4))
def keyword(n): return f"{word(n)} {word(n + 50000)}" if n % 5 == 0 else word(n)
leet = {"a": "[a4@]", "e": "[e3]", "i": "[i1!]", "o": "[o0]"}
def pattern(n): return r"\b" + "".join(leet.get(c, c) for c in word(n)) + r"\b"
for f in range(20):
    kws = ", ".join(f'"{keyword(f * 50 + k)}"' for k in range(50))
    with open(f"{sys.argv[1]}/generated-{f:03}.toml", "w") as out:
        out.write(f'name = "Generated {f}"\ngroups = ["*"]\nto = ["trust-safety"]\n\n'
                  f'[[match]]\nname = "words"\nkeywords = [{kws}]\n\n'
                  f'[[match]]\nname = "shapes"\npatterns = [\'{pattern(100000 + f)}\']\n')
EOF
python3 - "$tmp/body.json" <<'EOF'
import json, sys
content = ("I have been reading this group for a few weeks and wanted to say thank you. "
           "The advice about bedtime routines really helped, and our son finally sleeps through the night. "
           "We still struggle with mornings, though: getting everyone dressed and out of the door by eight feels impossible. "
           "Does anyone have tips for packing lunches the night before without everything going soggy? "
           "Also, the school asked parents to volunteer for the spring fair, and I am not sure I can manage it.")
body = {"CustomerId": "01HQ0ABCDEF1234567890XYZ", "PostId": "01HQ8POST1234567890ABCDEFG",
        "GroupId": "01HQ2GROUP1234567890XYZAB",
        "User": {"Id": "01HQ7Z3X4Y5Z6A7B8C9D0E1F2G", "DisplayName": "Mary Smith", "Username": "mary.smith",
                 "CreatedAt": "2026-04-12T14:32:01Z", "Badges": []},
        "Content": content, "ImageUrl": None, "CreatedAt": "2026-05-08T14:32:01Z"}
open(sys.argv[1], "w").write(json.dumps(body, separators=(",", ":")))
EOF

wrapper=""; waits=100
if [ "${CALLGRIND:-}" = 1 ]; then
  command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null
  wrapper="valgrind --tool=callgrind --quiet --callgrind-out-file=$tmp/callgrind.out"
  waits=1200
fi
export CATIVA_WEBHOOK_SECRET=whsec_10adc3a7f9b2d4e6a8c0f1b3d5e7a9c2e4f6b8d0a1c3e5f7b9d2a4c6e8f0b1d3
REDIS_URL="redis://127.0.0.1:$rport/" RUST_LOG=warn MODBRIDGE_RULES="$tmp/rules" \
  MODBRIDGE_LISTEN="127.0.0.1:$mport" MODBRIDGE_ADMIN_LISTEN="127.0.0.1:$aport" \
  $wrapper "${MODBRIDGE_BIN:-$bin/modbridge}" serve --dry-run >/dev/null 2>"$tmp/serve.err" &
srv=$!
"$bin/bare_poem" "127.0.0.1:$bport" &
bare=$!
for _ in $(seq "$waits"); do
  curl -fs "http://127.0.0.1:$aport/readyz" >/dev/null 2>&1 \
    && curl -fs -o /dev/null -X POST -d '{}' "http://127.0.0.1:$bport/webhooks/cativa" 2>/dev/null && break
  sleep 0.1
done
echo "post content: $(python3 -c 'import json,sys;print(len(json.load(open(sys.argv[1]))["Content"]))' "$tmp/body.json") bytes; body: $(wc -c <"$tmp/body.json") bytes; rules: $(ls "$tmp/rules" | wc -l) files"

sign() {
  python3 - "$tmp/body.json" <<'EOF'
import hashlib, hmac, os, sys, time
body = open(sys.argv[1], "rb").read()
t = str(int(time.time()))
mac = hmac.new(os.environ["CATIVA_WEBHOOK_SECRET"].encode(), t.encode() + b"." + body, hashlib.sha256)
print(f"t={t},v1={mac.hexdigest()}")
EOF
}
# One request first: the answer must be the no-card answer.
first=$(curl -s -X POST "http://127.0.0.1:$mport/webhooks/cativa" -H 'Content-Type: application/json' \
  -H "X-Cativa-Signature: $(sign)" -H "X-Cativa-Execution-Id: probe-$$" --data-binary @"$tmp/body.json")
echo "modbridge answers: $first"
[ "$first" = '{"status":"accepted","cards":0}' ] || { echo "not the no-card answer" >&2; cat "$tmp/serve.err" >&2; exit 1; }

if [ "${CALLGRIND:-}" = 1 ]; then
  # Instructions per request, which no other load changes: modbridge runs
  # under callgrind (about 50x slower); its counters are zeroed after start
  # (rules compiled, first request served), dumped after a light load.
  callgrind_control -z "$srv" >/dev/null 2>&1
  out=$(NOCARD_BODY="$tmp/body.json" NOCARD_SIG="$(sign)" \
    wrk -t1 -c8 -d"${secs}s" -s scripts/nocard_wrk.lua "http://127.0.0.1:$mport/webhooks/cativa" -- "cg-$$" \
    | sed -n "s/^RESULT //p")
  echo "under callgrind: $out"
  callgrind_control -d "$srv" >/dev/null 2>&1
  dump=$(ls -t "$tmp"/callgrind.out* | head -1)
  callgrind_annotate --inclusive=yes "$dump" 2>/dev/null > target/nocard-callgrind.txt
  cp "$dump" target/nocard-callgrind.out
  requests=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$out")
  total=$(sed -n 's/^\([0-9,]*\) (100.0%).*PROGRAM TOTALS.*/\1/p' target/nocard-callgrind.txt | tr -d ,)
  echo "instructions per request (modbridge, user space): $(( total / requests ))" \
    "(callgrind_annotate --inclusive=yes target/nocard-callgrind.out; summary in target/nocard-callgrind.txt)"
  exit 0
fi

# CPU time (user + system, in clock ticks) a process has used so far: fields
# 14 and 15 of /proc/PID/stat, counted after the ")" that ends its name.
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
redis_pid=$(cat "$tmp/redis.pid")
run() { # name port tag server-pid
  local before rbefore out
  before=$(ticks "$4"); rbefore=$(ticks "$redis_pid")
  out=$(NOCARD_BODY="$tmp/body.json" NOCARD_SIG="$(sign)" \
    /usr/bin/time -f "wrk_secs=%U+%S" -o "$tmp/wrk.time" wrk -t2 -c64 -d"${secs}s" -s scripts/nocard_wrk.lua "http://127.0.0.1:$2/webhooks/cativa" -- "$3" \
    | sed -n "s/^RESULT /$1 /p")
  # CPU per request: load on a shared machine swings req/s, much less this.
  echo "$out cpu_ticks=$(( $(ticks "$4") - before )) redis_ticks=$(( $(ticks "$redis_pid") - rbefore )) hz=$hz" \
    "wrk_s=$(sed -n 's/^wrk_secs=\(.*\)+\(.*\)$/\1 \2/p' "$tmp/wrk.time" | awk '{ print $1 + $2 }')"
}
results="$tmp/results"
for r in $(seq "$rounds"); do
  run bare "$bport" "b$r-$$" "$bare" | tee -a "$results"
  run modbridge "$mport" "m$r-$$" "$srv" | tee -a "$results"
done
python3 - "$results" <<'EOF'
import re, sys
rows = [l.split() for l in open(sys.argv[1])]
def get(kind, key):
    return [float(dict(kv.split("=") for kv in r[1:])[key]) for r in rows if r[0] == kind]
b, m = get("bare", "req_s"), get("modbridge", "req_s")
mp99 = get("modbridge", "p99_ms")
ratios = [x / y for x, y in zip(m, b)]
print(f"bare:      {' · '.join(f'{x:,.0f}' for x in b)} req/s (mean {sum(b)/len(b):,.0f})")
print(f"modbridge: {' · '.join(f'{x:,.0f}' for x in m)} req/s (mean {sum(m)/len(m):,.0f}), p99 {' · '.join(f'{x:.2f}' for x in mp99)} ms")
print(f"ratio per round: {' · '.join(f'{x:.2f}' for x in ratios)}; of the means: {sum(m)/sum(b):.2f} (target >= 0.5, p99 <= 10 ms)")
def cpu_us(kind, key):
    # µs of CPU per request over all rounds of `kind`.
    return sum(t / hz for t, hz in zip(get(kind, key), get(kind, "hz"))) * 1e6 / sum(get(kind, "requests"))
cb, cm, cr = cpu_us("bare", "cpu_ticks"), cpu_us("modbridge", "cpu_ticks"), cpu_us("modbridge", "redis_ticks")
def wrk_us(kind):
    return sum(get(kind, "wrk_s")) * 1e6 / sum(get(kind, "requests"))
wb, wm = wrk_us("bare"), wrk_us("modbridge")
print(f"CPU µs/request: bare {cb:.1f}, modbridge {cm:.1f} (+ redis {cr:.1f}); wrk {wb:.1f} (bare runs), {wm:.1f} (modbridge runs)")
# On a saturated box every request costs its server's CPU and wrk's, so the
# req/s ratio tends to the ratio of those sums.
print(f"CPU-bound ratio estimate: (bare + wrk) / (modbridge + redis + wrk) = {(cb + wb) / (cm + cr + wm):.2f}")
bad = sum(get("modbridge", "non2xx")) + sum(get("modbridge", "socket_errors"))
print(f"modbridge non-2xx or socket errors: {bad:.0f}")
EOF
echo "redis keys written: $(redis-cli -p "$rport" DBSIZE)"
curl -fs "http://127.0.0.1:$aport/metrics" | grep '^modbridge_webhooks_total' || true

if [ "${PERF:-}" = 1 ]; then
  echo "== perf: modbridge under the same load, ${secs}s"
  NOCARD_BODY="$tmp/body.json" NOCARD_SIG="$(sign)" \
    wrk -t2 -c64 -d"$((secs + 2))s" -s scripts/nocard_wrk.lua "http://127.0.0.1:$mport/webhooks/cativa" -- "perf-$$" >/dev/null &
  load=$!
  sleep 1
  perf record -F 499 --call-graph dwarf,32768 -p "$srv" -o target/nocard-perf.data -- sleep "$secs" 2>/dev/null >/dev/null
  wait "$load"
  echo "perf data: target/nocard-perf.data"
  perf report -i target/nocard-perf.data --no-children --percent-limit 1.5 --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -40 > target/nocard-perf-top.txt
  cat target/nocard-perf-top.txt
  if command -v inferno-collapse-perf >/dev/null; then
    perf script -i target/nocard-perf.data 2>/dev/null | inferno-collapse-perf > target/nocard.folded
    inferno-flamegraph --title "modbridge no-card path under wrk -t2 -c64" < target/nocard.folded > target/nocard-flamegraph.svg
    echo "flame graph: target/nocard-flamegraph.svg (folded stacks: target/nocard.folded)"
  else
    echo "no flame graph: cargo install inferno"
  fi
fi
