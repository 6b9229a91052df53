#!/usr/bin/env bash
# What RBAC costs per request (issue 16): the same loads — ConfigMap GETs
# (the cheapest request, where authorization shows most) and durable
# ConfigMap creates — at 1, 16 and 64 clients, as the admin (system:masters,
# decided before RBAC is consulted) and as a user whose rights come from a
# ClusterRoleBinding, in one run on one server, alternating. Both present a
# static bearer token, so authentication costs the same. The policy holds
# upstream's bootstrap roles plus POLICY_NAMESPACES namespaces with a Role
# and a RoleBinding each (other users'), so lookups are not in an empty
# policy.
# Usage: bench/authz.sh [REQUESTS_PER_LEVEL] [POLICY_NAMESPACES]  (12800, 200)
source "$(dirname "$0")/lib.sh"
REQ="${1:-12800}"
POLICY_NS="${2:-200}"
build_release
netns_up
d="$WORK/skiff"; mkdir -p "$d"
start_skiff "$d"
stop_skiff
# A second static token, for a user outside system:masters.
echo "bench-user-token-0123456789abcdef,bench-user,1001,\"bench-users\"" >>"$d/server/cred/tokens.csv"
start_skiff "$d"
ca="$(skiff_ca "$d")"; admin="$(skiff_token "$d")"
user="bench-user-token-0123456789abcdef"
k() { in_ns kubectl --kubeconfig "$d/kubeconfig.yaml" "$@"; }
{
    cat <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: bench-configmaps}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bench-configmaps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: bench-configmaps}
subjects: [{kind: Group, name: bench-users}]
YAML
    for i in $(seq 1 "$POLICY_NS"); do
        cat <<YAML
---
apiVersion: v1
kind: Namespace
metadata: {name: team-$i}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: team-$i}
rules: [{apiGroups: [""], resources: [pods, configmaps], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: team-$i}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: User, name: user-$i}, {kind: Group, name: team-$i}]
YAML
    done
} >"$WORK/policy.yaml"
k apply -f "$WORK/policy.yaml" >/dev/null
# The user may not make namespaces: its own are made for it.
k create namespace get-user >/dev/null
for c in 1 16 64; do k create namespace "create-user-$c" >/dev/null; done
for who in admin user; do
    in_ns "$APIBENCH" get --url "https://127.0.0.1:$PORT" --ca "$ca" --token "$admin" --clients 1 --requests 100 --namespace "warm-$who" >/dev/null
done
for c in 1 16 64; do
    n="$REQ"; [ "$c" = 1 ] && n=$((REQ / 4))
    for round in 1 2; do
        for who in admin user; do
            tok="$admin"; [ "$who" = user ] && tok="$user"
            echo "skiff $who round=$round $(in_ns "$APIBENCH" get --url "https://127.0.0.1:$PORT" --ca "$ca" --token "$tok" --clients "$c" --requests "$n" --namespace "get-$who")"
        done
    done
done
for c in 1 16 64; do
    n="$REQ"; [ "$c" = 1 ] && n=$((REQ / 4))
    for who in admin user; do
        tok="$admin"; [ "$who" = user ] && tok="$user"
        echo "skiff $who $(in_ns "$APIBENCH" create --url "https://127.0.0.1:$PORT" --ca "$ca" --token "$tok" --clients "$c" --requests "$n" --namespace "create-$who-$c")"
    done
done
stop_skiff
