# Sourced by bench/pods.sh and bench/footprint.sh, after start_node: `api`
# (curl with the admin token, inside the namespace) and 30 idle busybox
# pods bound to $NODE. Needs CA, TOKEN, URL and NODE set.
api() { in_ns curl -s --cacert "$CA" -H "Authorization: Bearer $TOKEN" "$@"; }

# The node registers a moment after /readyz.
wait_node_ready() {
    for _ in $(seq 1 100); do api "$URL/api/v1/nodes/$NODE" | grep -q '"Ready"' && break; sleep 0.1; done
}

make_idle_pods() { # 30 pods that sleep, Running; no ServiceAccount token volume
    for i in $(seq 0 29); do
        api -X POST -H 'Content-Type: application/json' "$URL/api/v1/namespaces/default/pods" -d "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"idle-$i\"},\"spec\":{\"nodeName\":\"$NODE\",\"terminationGracePeriodSeconds\":0,\"automountServiceAccountToken\":false,\"containers\":[{\"name\":\"main\",\"image\":\"busybox:latest\",\"imagePullPolicy\":\"Never\",\"command\":[\"sleep\",\"3600\"]}]}}" >/dev/null
    done
    for _ in $(seq 1 600); do
        [ "$(api "$URL/api/v1/namespaces/default/pods" | grep -c '"phase": *"Running"')" -ge 30 ] && break
        sleep 0.2
    done
}

delete_idle_pods() {
    for i in $(seq 0 29); do
        api -X DELETE "$URL/api/v1/namespaces/default/pods/idle-$i" >/dev/null
    done
    for _ in $(seq 1 600); do
        [ "$(api "$URL/api/v1/namespaces/default/pods" | grep -c '"name": *"idle-')" -eq 0 ] && break
        sleep 0.2
    done
}
