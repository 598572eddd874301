#!/bin/bash
# berth's dashboard and /metrics with N running containers (default 200), dockerd's
# /metrics beside (dockerd has engine metrics only, no per-container ones):
#   1. the dashboard's container list in headless Chromium: first byte → load event
#      (Navigation Timing; the list is drawn before the load event), median of R loads
#   2. GET /metrics (curl's time_total, median of 50; and the body's size)
#   3. the daemon's RSS idle, then with the dashboard open on the N containers
#      streaming live stats for 30 s (and the daemon's CPU meanwhile)
# Usage (root): bench/ui/run.sh [loads] [containers]     results → bench/results/ui.md
set -euo pipefail
runs=${1:-20}
n=${2:-200}
top=$(cd "$(dirname "$0")/../.." && pwd)
berth=$top/target/release/berth
docker=${DOCKER:-/usr/local/bin/docker}
command -v chromedriver >/dev/null || apt-get install -y -qq chromium chromium-driver >/dev/null
work=$(mktemp -d /var/tmp/berth-bench-ui.XXXXXX)
dport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
berth_extra="--ui 127.0.0.1:0 --metrics-addr 127.0.0.1:0"
dockerd_extra="--metrics-addr 127.0.0.1:$dport"
. "$top/bench/lib/side-by-side.sh"
ui=$(cat "$work/berth-run/ui-addr")
token=$(cat "$work/berth-run/ui-token")
bmetrics=$(cat "$work/berth-run/metrics-addr")

for h in "$B" "$D"; do for i in $(seq "$n"); do $docker -H "$h" run -d busybox sleep 3600 >/dev/null; done; done

median() { sort -n | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m*1000}'; }
metrics_ms() { for i in $(seq 50); do curl -s -o /dev/null -w '%{time_total}\n' "http://$1/metrics"; done | median; }
for i in 1 2 3; do curl -s -o /dev/null "http://$bmetrics/metrics"; curl -s -o /dev/null "http://127.0.0.1:$dport/metrics"; done
b_ms=$(metrics_ms "$bmetrics"); d_ms=$(metrics_ms "127.0.0.1:$dport")
b_size=$(curl -s "http://$bmetrics/metrics" | wc -c); d_size=$(curl -s "http://127.0.0.1:$dport/metrics" | wc -c)
b_series=$(curl -s "http://$bmetrics/metrics" | grep -vc '^#'); d_series=$(curl -s "http://127.0.0.1:$dport/metrics" | grep -vc '^#')

timing=$(python3 "$top/bench/ui/webdriver.py" timing "http://$ui" "$token" "$runs")

rss() { awk '/VmRSS/{print $2}' /proc/$1/status; }
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
sleep 12
idle=$(rss $bpid)
# The dashboard open for 30 s: the list watches every container (a stats sample each a second).
python3 "$top/bench/ui/webdriver.py" hold "http://$ui" "$token" 30 >"$work/hold.json" &
hold=$!
sleep 5
c0=$(cpu $bpid); peak=0
for i in $(seq 25); do r=$(rss $bpid); [ "$r" -gt "$peak" ] && peak=$r; sleep 1; done
c1=$(cpu $bpid)
wait $hold
live_rows=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rows_with_live_cpu"])' "$work/hold.json")
ticks=$(getconf CLK_TCK)
cpu_pct=$(echo "scale=1; ($c1 - $c0) * 100 / $ticks / 25" | bc)

j() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$timing" "$1"; }
out=$top/bench/results/ui.md
{
echo "# berth's dashboard and metrics, $n running containers"
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) cores; berth $(git -C "$top" rev-parse --short HEAD) (release), dockerd $(dockerd --version | awk '{print $3}' | tr -d ,), Chromium $(chromium --version 2>/dev/null | awk '{print $2}') headless. Command: \`bench/ui/run.sh $runs $n\`."
echo
echo "## The container list in headless Chromium ($(j rows) rows)"
echo
echo "| | median | min | max |"
echo "|---|---:|---:|---:|"
echo "| first byte → load event (the list drawn) | $(j load_median_ms) ms | $(j load_min_ms) ms | $(j load_max_ms) ms |"
echo "| first byte → DOMContentLoaded | $(j dcl_median_ms) ms | | |"
echo "| request → first byte (the page, its $n rows inlined: $(j html_bytes) bytes) | $(j ttfb_median_ms) ms | | |"
echo
echo "Navigation Timing of $runs loads (\`bench/ui/webdriver.py timing\`): the page inlines the container list and draws it before the load event."
echo
echo "## GET /metrics"
echo
echo "| | berth | dockerd |"
echo "|---|---:|---:|"
echo "| time (curl time_total, median of 50) | $b_ms ms | $d_ms ms |"
echo "| body | $b_size bytes, $b_series samples | $d_size bytes, $d_series samples |"
echo "| what | engine + API + per-container cgroup metrics of $n containers | engine only (no per-container metrics) |"
echo
echo "## Daemon memory with the dashboard open"
echo
echo "| | berth |"
echo "|---|---:|"
echo "| daemon RSS, idle ($n containers, 12 s without a request) | $((idle/1024)) MB |"
echo "| daemon RSS, peak while the list is open and $n containers stream stats (25 s) | $((peak/1024)) MB |"
echo "| daemon CPU meanwhile (a stats sample of $n containers each second) | $cpu_pct % of one core |"
echo "| rows showing live CPU in the page | $live_rows of $n |"
} >"$out"
cat "$out"
