#!/usr/bin/env bash
# (s) Server memory under hostile API clients, with the in-flight bounds in
# force: for DURATION seconds, WRITERS curl loops post the most expensive
# bodies there are (1.5 MB creates of a ConfigMap with as many labels as
# an object may hold: each is validated and gets managedFields built before
# the stored-size check refuses it — a larger body is refused as soon as it
# is decoded; and valid ConfigMaps with 1 MiB of data in many small keys),
# while READERS curl loops list a namespace of big objects (half of them
# whole, half with limit=500). Reports the server's VmRSS/VmHWM idle, at the
# peak, and 10 s after, and how many requests got each status (429 = refused
# by a bound).
# Usage: bench/hostile-memory.sh [DURATION] [WRITERS] [READERS]   (default 30 16 8)
# SKIFF_BIN=path measures another build (nothing is built then). LIMITS is
# YAML given to the server as its config file, e.g.
#   LIMITS='max-request-body-bytes-inflight: 0' (no body budget).
source "$(dirname "$0")/lib.sh"
DURATION="${1:-30}"
WRITERS="${2:-16}"
READERS="${3:-8}"
if [ -n "${SKIFF_BIN:-}" ]; then SKIFF="$SKIFF_BIN"; else build_release; fi
netns_up
d="$WORK/skiff"; mkdir -p "$d"
if [ -n "${LIMITS:-}" ]; then
    printf '%s\n' "$LIMITS" >"$WORK/config.yaml"
    export SKIFF_CONFIG_FILE="$WORK/config.yaml"
fi
start_skiff "$d"
ca="$(skiff_ca "$d")"; token="$(skiff_token "$d")"
base="https://127.0.0.1:$PORT/api/v1/namespaces"
NSNAME=big
OBJECTS=200

kib() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$SKIFF_PID/status"; }
report() { echo "$1: rss_kib=$(kib VmRSS) anon_kib=$(kib RssAnon) hwm_kib=$(kib VmHWM)"; }
acurl() { in_ns curl -sS --cacert "$ca" -H "Authorization: Bearer $token" "$@"; }

sleep 2
report "idle"

# The namespace to list: OBJECTS ConfigMaps of 64 KiB (about 13 MB). The
# writers create in another one, so that what a list costs stays the same.
for n in "$NSNAME" hostile; do
    acurl --fail -o /dev/null -H "Content-Type: application/json" \
        -d "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$n\"}}" "$base"
done
payload="$(head -c 65536 /dev/zero | tr '\0' x)"
cfg="$WORK/create.cfg"; : >"$cfg"
mkdir -p "$WORK/cms"
for i in $(seq 1 "$OBJECTS"); do
    printf '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm-%d"},"data":{"payload":"%s"}}' \
        "$i" "$payload" >"$WORK/cms/$i.json"
    [ "$i" = 1 ] || echo next >>"$cfg"
    printf 'url = "%s/%s/configmaps"\ncacert = "%s"\ndata-binary = "@%s/cms/%d.json"\nheader = "Content-Type: application/json"\nheader = "Authorization: Bearer %s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nsilent\nshow-error\n' \
        "$base" "$NSNAME" "$ca" "$WORK" "$i" "$token" >>"$cfg"
done
created="$(in_ns curl -sS --no-progress-meter --parallel --parallel-max 4 -K "$cfg" | grep -c '^201$' || true)"
rm -rf "$WORK/cms" "$cfg"
[ "$created" = "$OBJECTS" ] || { echo "bench: only $created of $OBJECTS ConfigMaps were created" >&2; exit 1; }
report "after creating $OBJECTS ConfigMaps of 64 KiB"

# The bodies. (1) 1.5 MB of labels, each a distinct 7-byte key with an empty
# value: the most JSON objects per byte in an object that is not refused
# before its managedFields are built. (2) a valid ConfigMap: as many
# 40-byte values under 7-byte keys as keep it within the stored-size limit
# (managedFields repeats every key).
awk 'BEGIN {
    printf "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"NAME\",\"labels\":{";
    n = int((1500000 - 200) / 13);
    for (i = 0; i < n; i++) printf "%s\"k%06d\":\"\"", (i ? "," : ""), i;
    printf "}}}";
}' >"$WORK/labels.json"
awk -v v="$(head -c 40 /dev/zero | tr '\0' v)" 'BEGIN {
    printf "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"NAME\"},\"data\":{";
    n = int(1048576 / 56);
    for (i = 0; i < n; i++) printf "%s\"d%06d\":\"%s\"", (i ? "," : ""), i, v;
    printf "}}";
}' >"$WORK/data.json"
echo "bodies: labels=$(stat -c %s "$WORK/labels.json") bytes, data=$(stat -c %s "$WORK/data.json") bytes"

# Each loop writes one HTTP status per request to its own file.
mkdir -p "$WORK/codes"
end=$(( $(date +%s) + DURATION ))
writer() { # id kind
    local body="$WORK/body-$1.json" n=0
    while [ "$(date +%s)" -lt "$end" ]; do
        n=$((n + 1))
        sed "s/\"NAME\"/\"w$1-$n\"/" "$WORK/$2.json" >"$body"
        # HTTP/1.1: a 429 answered before a big body is read ends an HTTP/2
        # stream with RST_STREAM(NO_ERROR), which curl 7.x counts as a failure.
        acurl --http1.1 -o /dev/null -w '%{http_code}\n' --max-time 120 -H "Content-Type: application/json" \
            --data-binary "@$body" "$base/hostile/configmaps" >>"$WORK/codes/w$1" 2>/dev/null || echo 000 >>"$WORK/codes/w$1"
    done
}
reader() { # id query
    while [ "$(date +%s)" -lt "$end" ]; do
        acurl -o /dev/null -w '%{http_code}\n' --max-time 120 \
            "$base/$NSNAME/configmaps$2" >>"$WORK/codes/r$1" 2>/dev/null || echo 000 >>"$WORK/codes/r$1"
    done
}
pids=()
for i in $(seq 1 "$WRITERS"); do
    if [ $((i % 2)) = 0 ]; then writer "$i" data & else writer "$i" labels & fi
    pids+=("$!")
done
for i in $(seq 1 "$READERS"); do
    if [ $((i % 2)) = 0 ]; then reader "$i" "?limit=500" & else reader "$i" "" & fi
    pids+=("$!")
done
peak=0
while [ "$(date +%s)" -lt "$end" ]; do
    r="$(kib VmRSS)"; [ "$r" -gt "$peak" ] && peak="$r"
    sleep 0.2
done
for p in "${pids[@]}"; do wait "$p" || true; done
report "after ${DURATION}s of $WRITERS writers and $READERS readers (sampled peak rss_kib=$peak)"
summary() { cat "$WORK"/codes/$1* 2>/dev/null | sort | uniq -c | awk '{printf "%s%s=%s", (NR > 1 ? " " : ""), $2, $1}'; }
echo "writes: $(summary w)"
echo "lists: $(summary r)"
sleep 10
report "10 s later"
stop_skiff
