#!/usr/bin/env bash
# (h) Server memory under big lists: COUNT ConfigMaps of SIZE bytes each in
# one namespace (created through the API), then VmRSS and the peak VmHWM of
# the server (/proc/PID/status; RssAnon is the heap, RssFile mostly the binary) when idle, after the load, after one list of
# the namespace, after 8 concurrent lists, and 10 s later (does it come
# back?). Each list is checked to be complete.
# Usage: bench/list-memory.sh [COUNT] [SIZE]   (default 4000 ConfigMaps of 4096 bytes)
# SKIFF_BIN=path measures another build of skiff (nothing is built then); GLIBC_TUNABLES (e.g.
# glibc.malloc.arena_max=2) is passed to the server as any environment is.
source "$(dirname "$0")/lib.sh"
COUNT="${1:-4000}"
SIZE="${2:-4096}"
if [ -n "${SKIFF_BIN:-}" ]; then SKIFF="$SKIFF_BIN"; else build_release; fi
netns_up
d="$WORK/skiff"; mkdir -p "$d"
start_skiff "$d"
ca="$(skiff_ca "$d")"; token="$(skiff_token "$d")"
base="https://127.0.0.1:$PORT/api/v1/namespaces"
NSNAME=big

kib() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$SKIFF_PID/status"; }
report() { echo "$1: rss_kib=$(kib VmRSS) anon_kib=$(kib RssAnon) file_kib=$(kib RssFile) hwm_kib=$(kib VmHWM)"; }

# One list of the namespace; prints the number of the bench's items
# (checked below; the namespace also holds kube-root-ca.crt).
list_items() {
    in_ns curl -sS --fail --max-time 300 --cacert "$ca" -H "Authorization: Bearer $token" \
        "$base/$NSNAME/configmaps" | grep -o '"name":"cm-[0-9]*"' | wc -l
}

sleep 2
report "idle"

# Create the ConfigMaps: one curl process, 8 parallel connections.
in_ns curl -sS --fail --cacert "$ca" -H "Authorization: Bearer $token" -H "Content-Type: application/json" \
    -o /dev/null -d "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$NSNAME\"}}" "$base"
payload="$(head -c "$SIZE" /dev/zero | tr '\0' x)"
mkdir -p "$WORK/cms"
cfg="$WORK/curl.cfg"
: >"$cfg"
for i in $(seq 1 "$COUNT"); do
    printf '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm-%d","labels":{"bench":"list"}},"data":{"payload":"%s"}}' \
        "$i" "$payload" >"$WORK/cms/$i.json"
    # Options after `next` apply to the next URL only: repeat them all.
    [ "$i" = 1 ] || echo next >>"$cfg"
    printf 'url = "%s/%s/configmaps"\ncacert = "%s"\ndata-binary = "@%s/cms/%d.json"\nheader = "Content-Type: application/json"\nheader = "Authorization: Bearer %s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nsilent\nshow-error\n' \
        "$base" "$NSNAME" "$ca" "$WORK" "$i" "$token" >>"$cfg"
done
created="$(in_ns curl -sS --no-progress-meter --parallel --parallel-max 8 -K "$cfg" | grep -c '^201$' || true)"
rm -rf "$WORK/cms" "$cfg"
[ "$created" = "$COUNT" ] || { echo "bench: only $created of $COUNT ConfigMaps were created" >&2; exit 1; }
report "after creating $COUNT ConfigMaps of $SIZE bytes"

n="$(list_items)"
[ "$n" = "$COUNT" ] || { echo "bench: a list returned $n of $COUNT items" >&2; exit 1; }
report "after 1 list"

pids=()
for j in $(seq 1 8); do
    list_items >"$WORK/list-$j" &
    pids+=("$!")
done
for p in "${pids[@]}"; do wait "$p"; done
for j in $(seq 1 8); do
    [ "$(cat "$WORK/list-$j")" = "$COUNT" ] || { echo "bench: concurrent list $j was incomplete" >&2; exit 1; }
done
report "after 8 concurrent lists"
sleep 10
report "10 s later"
stop_skiff
