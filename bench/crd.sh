#!/usr/bin/env bash
# What a custom resource costs to create beside a built-in kind (issue 16):
# durable creates of ConfigMaps and of CronTabs (a CRD with a structural
# schema: a pattern, bounds, a default, status and scale subresources) at
# 1, 16 and 64 clients, on one server, alternating, two rounds. Both bodies
# carry the same 256-byte payload; a CronTab also goes through schema
# validation, pruning and defaulting.
# Usage: bench/crd.sh [REQUESTS_PER_LEVEL]  (12800; a quarter with one client)
source "$(dirname "$0")/lib.sh"
REQ="${1:-12800}"
build_release
netns_up
d="$WORK/skiff"; mkdir -p "$d"
start_skiff "$d"
ca="$(skiff_ca "$d")"; tok="$(skiff_token "$d")"
k() { in_ns kubectl --kubeconfig "$d/kubeconfig.yaml" "$@"; }
k apply -f - >/dev/null <<'YAML'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            properties:
              cronSpec: {type: string, pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'}
              image: {type: string, maxLength: 256}
              payload: {type: string}
              replicas: {type: integer, minimum: 1, maximum: 10, default: 1}
          status:
            type: object
            properties:
              replicas: {type: integer}
YAML
k wait --for condition=established crd/crontabs.stable.example.com --timeout=30s >/dev/null
for kind in configmap crontab; do
    in_ns "$APIBENCH" create --kind "$kind" --url "https://127.0.0.1:$PORT" --ca "$ca" --token "$tok" --clients 4 --requests 400 --namespace "warm-$kind" >/dev/null
done
for c in 1 16 64; do
    n="$REQ"; [ "$c" = 1 ] && n=$((REQ / 4))
    for round in 1 2; do
        for kind in configmap crontab; do
            echo "skiff $kind round=$round $(in_ns "$APIBENCH" create --kind "$kind" --url "https://127.0.0.1:$PORT" --ca "$ca" --token "$tok" --clients "$c" --requests "$n" --namespace "$kind-$c-$round")"
        done
    done
done
stop_skiff
