#!/usr/bin/env python3
"""Regenerates src/api/strategic/upstream_patch_facts.tsv: what k8s.io/api
and k8s.io/apimachinery state in their Go struct tags and markers about how
each field of the kinds skiff serves is patched and owned (the source the
OpenAPI extensions x-kubernetes-patch-strategy, -patch-merge-key,
-list-type, -list-map-keys, -map-type and -structType are generated from),
and which struct type each field holds, so a patch can walk an object.
build/patch_facts.rs turns the TSV into the tables of `api::strategic::schema`.

Usage: scripts/gen-patch-facts.py <git dir of github.com/kubernetes/api>
                                  <git dir of github.com/kubernetes/apimachinery> <tag>
e.g.   scripts/gen-patch-facts.py api/.git apimachinery/.git v0.32.13
(k8s.io/api v0.32.x is Kubernetes 1.32.x.) No network; reads the tag with git.

Rows (tab-separated):
  kind   <API group> <Kind> <Go type>         the Go type of a served kind
  field  <Go type> <json field> <value type> <patchStrategy> <patchMergeKey>
         <listType> <listMapKeys> <atomic> <default>
Go types are "<package>.<Name>" (core, apps, batch, coordination, discovery,
events, admissionregistration, meta). <value type> is the struct type of the field's value or list
elements when it is one of the types listed, else empty. <atomic> is
"atomic" when a map- or struct-valued field is owned whole (+mapType=atomic,
+structType=atomic on the field or on its type). <default> is a quoted
+default= marker's value. Fields embedded with json ",inline" are listed
under the type that embeds them. Only types reachable from the kinds are
listed, and only fields with something to say.
"""
import re
import subprocess
import sys

# package id, import path, file, API group (None: no kinds of its own)
PACKAGES = [
    ("core", "k8s.io/api/core/v1", "core/v1/types.go", ""),
    ("apps", "k8s.io/api/apps/v1", "apps/v1/types.go", "apps"),
    ("batch", "k8s.io/api/batch/v1", "batch/v1/types.go", "batch"),
    ("coordination", "k8s.io/api/coordination/v1", "coordination/v1/types.go", "coordination.k8s.io"),
    ("discovery", "k8s.io/api/discovery/v1", "discovery/v1/types.go", "discovery.k8s.io"),
    ("events", "k8s.io/api/events/v1", "events/v1/types.go", "events.k8s.io"),
    ("admissionregistration", "k8s.io/api/admissionregistration/v1",
     "admissionregistration/v1/types.go", "admissionregistration.k8s.io"),
    ("meta", "k8s.io/apimachinery/pkg/apis/meta/v1", "pkg/apis/meta/v1/types.go", None),
]

# The kinds skiff serves (src/server/apiserver/builtin.rs), plus the core
# kinds whose patch behaviour it already describes.
KINDS = {
    "core": ["Pod", "PodTemplate", "ReplicationController", "Service", "Endpoints", "Namespace",
             "Node", "ConfigMap", "Secret", "ServiceAccount", "Event", "PersistentVolume",
             "PersistentVolumeClaim"],
    "apps": ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"],
    "batch": ["Job", "CronJob"],
    "coordination": ["Lease"],
    "discovery": ["EndpointSlice"],
    "events": ["Event"],
    "admissionregistration": ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"],
}

FIELD = re.compile(r'^\s+(?:(\w+)\s+)?(\S+)\s+`([^`]*)`')
IMPORT = re.compile(r'^\s*(?:(\w+)\s+)?"([^"]+)"')


def parse(pkg, src, paths):
    """{Name: {"markers": [...], "fields": [field dicts]}} of one package."""
    aliases = {}
    in_import = False
    for line in src.splitlines():
        if line.startswith('import ('):
            in_import = True
            continue
        if in_import:
            if line.startswith(')'):
                break
            m = IMPORT.match(line)
            if m and m.group(2) in paths:
                aliases[m.group(1) or m.group(2).rsplit('/', 1)[1]] = paths[m.group(2)]
    types = {}
    ty = None
    markers = []
    for line in src.splitlines():
        s = line.strip()
        m = re.match(r'^type (\w+) struct \{', line)
        if m:
            ty = {"markers": markers, "fields": []}
            types[m.group(1)] = ty
            markers = []
            continue
        if s.startswith('//'):
            markers.append(s[2:].strip())
            continue
        if ty is None:
            if s:
                markers = []
            continue
        if line.startswith('}'):
            ty, markers = None, []
            continue
        m = FIELD.match(line)
        if not m:
            markers = []
            continue
        name, gotype, tags = m.groups()
        js = re.search(r'json:"([^"]*)"', tags)
        if not js:
            markers = []
            continue
        json_name = js.group(1).split(',')[0]
        inline = 'inline' in js.group(1).split(',')[1:] or json_name == ''
        if json_name == '-':
            markers = []
            continue
        base = gotype
        is_list = False
        while True:
            if base.startswith('*'):
                base = base[1:]
            elif base.startswith('[]'):
                base, is_list = base[2:], True
            else:
                break
        target = None
        if not base.startswith('map['):
            if '.' in base:
                alias, tname = base.split('.', 1)
                if alias in aliases:
                    target = f'{aliases[alias]}.{tname}'
            else:
                target = f'{pkg}.{base}'
        strat = re.search(r'patchStrategy:"([^"]*)"', tags)
        key = re.search(r'patchMergeKey:"([^"]*)"', tags)
        default = next((x.split('=', 1)[1] for x in markers if x.startswith('+default=')), '')
        ty["fields"].append({
            "json": json_name,
            "inline": inline,
            "target": target,
            "is_list": is_list,
            "strategy": strat.group(1) if strat else '',
            "key": key.group(1) if key else '',
            "list_type": next((x.split('=', 1)[1] for x in markers if x.startswith('+listType=')), ''),
            "map_keys": ','.join(x.split('=', 1)[1] for x in markers if x.startswith('+listMapKey=')),
            "atomic_marker": any(x in ('+mapType=atomic', '+structType=atomic') for x in markers),
            "default": default[1:-1] if len(default) >= 2 and default[0] == default[-1] == '"' else '',
        })
        markers = []
    return types


def main():
    api_git, machinery_git, tag = sys.argv[1], sys.argv[2], sys.argv[3]
    paths = {p[1]: p[0] for p in PACKAGES}
    structs = {}
    sources = {}
    for pkg, _, f, _ in PACKAGES:
        git = machinery_git if pkg == 'meta' else api_git
        src = subprocess.check_output(['git', '--git-dir', git, 'show', f'{tag}:{f}'], text=True)
        for name, t in parse(pkg, src, paths).items():
            structs[f'{pkg}.{name}'] = t
        sources.setdefault(git, []).append(f)

    def fields(qname):
        """Fields of a struct with ",inline" embeddings flattened."""
        out = []
        for f in structs[qname]["fields"]:
            if f["inline"]:
                if f["target"] in structs:
                    out += fields(f["target"])
            else:
                out.append(f)
        return out

    def struct_atomic(qname):
        return '+structType=atomic' in structs.get(qname, {"markers": []})["markers"]

    def facts_of(f, target):
        atomic = f["atomic_marker"] or (bool(target) and not f["is_list"] and struct_atomic(target))
        return (f["strategy"], f["key"], f["list_type"], f["map_keys"],
                'atomic' if atomic else '', f["default"])

    said = {}

    def has_something_to_say(q, path=()):
        """Whether a type or one below it has a fact: walking into the
        others is the same as walking into no type at all."""
        if q in said:
            return said[q]
        if q in path:
            return False
        out = False
        for f in fields(q):
            target = f["target"] if f["target"] in structs else ''
            if any(facts_of(f, target)) or (target and has_something_to_say(target, path + (q,))):
                out = True
        said[q] = out
        return out

    rows, seen, todo = [], set(), []
    kinds = []
    for pkg, _, _, group in PACKAGES:
        for kind in KINDS.get(pkg, []):
            q = f'{pkg}.{kind}'
            assert q in structs, q
            kinds.append(('kind', group, kind, q))
            todo.append(q)
    while todo:
        q = todo.pop()
        if q in seen:
            continue
        seen.add(q)
        for f in fields(q):
            target = f["target"] if f["target"] in structs else ''
            facts = facts_of(f, target)
            if target and not has_something_to_say(target):
                target = ''
            if target:
                todo.append(target)
            if target or any(facts):
                rows.append(('field', q, f["json"], target) + facts)

    prov = []
    for git, files in sources.items():
        repo = 'apimachinery' if git == machinery_git else 'api'
        commit = subprocess.check_output(['git', '--git-dir', git, 'rev-list', '-n1', tag], text=True).strip()
        prov.append(f'github.com/kubernetes/{repo} tag {tag} (commit {commit}), files {" ".join(files)}')
    print(f'# PROVENANCE: {"; ".join(prov)};')
    print('# generated by scripts/gen-patch-facts.py; do not edit by hand (columns: see the script).')
    for r in kinds:
        print('\t'.join(r))
    for r in sorted(set(rows)):
        print('\t'.join(r))


main()
