#!/usr/bin/env python3
"""Regenerate src/api/protobuf/schema.txt, skiff's wire schema for Kubernetes protobuf bodies.

Usage: gen_schema.py API_DIR APIMACHINERY_DIR [SOURCE_NOTE] > schema.txt

API_DIR is a checkout of k8s.io/api and APIMACHINERY_DIR one of k8s.io/apimachinery (read
only). The script reads each package's generated.proto (field numbers and wire types) and
types.go (Go JSON tags: omitempty, pointer or not, inline embedding) and writes the facts in
skiff's own compact format, which `schema.rs` parses:

    <package>.<Message> [=items]
      <json>=<number>:<type><flags> ...

type: string | bool | int32 | int64 | uint32 | uint64 | double | float | bytes | a message
name (unqualified = same package); a `[]` prefix means repeated, `{}` a map with string keys.
flags: `?` drop the zero value (a non-pointer Go field tagged omitempty), `^` inline (an
embedded Go struct whose fields appear in the parent's JSON object).
`=items` marks a message that wraps a Go slice type (`type ExtraValue []string`): its JSON form
is the bare array of its `items` field.
"""
import os
import re
import sys

# (directory under the checkout, proto package, skiff's short package name)
API_PACKAGES = [
    "core/v1", "apps/v1", "batch/v1", "coordination/v1", "discovery/v1", "events/v1",
    "autoscaling/v1", "autoscaling/v2", "rbac/v1", "policy/v1", "scheduling/v1",
    "networking/v1", "storage/v1", "node/v1", "authorization/v1", "authentication/v1", "certificates/v1",
]
MACHINERY_PACKAGES = [
    ("pkg/apis/meta/v1", "k8s.io.apimachinery.pkg.apis.meta.v1", "meta.v1"),
    ("pkg/api/resource", "k8s.io.apimachinery.pkg.api.resource", "resource"),
    ("pkg/util/intstr", "k8s.io.apimachinery.pkg.util.intstr", "intstr"),
    ("pkg/runtime", "k8s.io.apimachinery.pkg.runtime", "runtime"),
    ("pkg/runtime/schema", "k8s.io.apimachinery.pkg.runtime.schema", "schema"),
]
SCALARS = {"string", "bool", "int32", "int64", "uint32", "uint64", "double", "float", "bytes"}

MSG_RE = re.compile(r"^message (\w+) \{")
FIELD_RE = re.compile(r"^\s+(optional|repeated) ([\w.]+) (\w+) = (\d+);")
MAP_RE = re.compile(r"^\s+map<string, ([\w.]+)> (\w+) = (\d+);")
STRUCT_RE = re.compile(r"^type (\w+) struct \{")
SLICE_TYPE_RE = re.compile(r"^type (\w+) \[\]string\b")
GO_FIELD_RE = re.compile(r"^\s+(?:(\w+)\s+)?([*\[\]\w.]+)\s+`([^`]*)`")


def short_pkg(proto_pkg, pkgs):
    return pkgs[proto_pkg]


def parse_proto(path, pkg, pkgs):
    messages = {}
    current = None
    with open(path) as f:
        for line in f:
            m = MSG_RE.match(line)
            if m:
                current = []
                messages[m.group(1)] = current
                continue
            if line.startswith("}"):
                current = None
                continue
            if current is None:
                continue
            m = MAP_RE.match(line)
            if m:
                current.append(("map", resolve(m.group(1), pkg, pkgs), m.group(2), int(m.group(3))))
                continue
            m = FIELD_RE.match(line)
            if m:
                label, typ, name, num = m.groups()
                current.append((label, resolve(typ, pkg, pkgs), name, int(num)))
    return messages


def resolve(typ, pkg, pkgs):
    if typ in SCALARS:
        return typ
    if typ.startswith("."):
        proto_pkg, _, name = typ[1:].rpartition(".")
        if proto_pkg not in pkgs:
            # a package outside the list (e.g. an alpha group): pulled in as well
            assert proto_pkg.startswith("k8s.io.api."), proto_pkg
            pkgs[proto_pkg] = proto_pkg[len("k8s.io.api."):]
        short = pkgs[proto_pkg]
        return name if short == pkg else f"{short}.{name}"
    return typ


def parse_go(path):
    """struct name -> {field number: (json name, omitempty, pointer, inline, skip)}; slice types."""
    structs, slices = {}, set()
    current = None
    if not os.path.exists(path):
        return structs, slices
    with open(path) as f:
        for line in f:
            m = STRUCT_RE.match(line)
            if m:
                current = {}
                structs[m.group(1)] = current
                continue
            m = SLICE_TYPE_RE.match(line)
            if m:
                slices.add(m.group(1))
            if line.startswith("}"):
                current = None
                continue
            if current is None:
                continue
            m = GO_FIELD_RE.match(line)
            if not m:
                continue
            go_name, go_type, tag = m.groups()
            pm = re.search(r'protobuf:"\w+,(\d+),', tag)
            if not pm:
                continue
            jm = re.search(r'json:"([^"]*)"', tag)
            json_parts = jm.group(1).split(",") if jm else [""]
            embedded = go_name is None
            inline = embedded and json_parts[0] == "" or "inline" in json_parts[1:]
            current[int(pm.group(1))] = (
                json_parts[0],
                "omitempty" in json_parts[1:],
                go_type.startswith("*"),
                inline,
                json_parts[0] == "-",
            )
    return structs, slices
    with open(path) as f:
        for line in f:
            m = STRUCT_RE.match(line)
            if m:
                current = {}
                structs[m.group(1)] = current
                continue
            m = SLICE_TYPE_RE.match(line)
            if m:
                slices.add(m.group(1))
            if line.startswith("}"):
                current = None
                continue
            if current is None:
                continue
            m = GO_FIELD_RE.match(line)
            if not m:
                continue
            go_name, go_type, tag = m.groups()
            pm = re.search(r'protobuf:"[^"]*name=(\w+)', tag)
            if not pm:
                continue
            jm = re.search(r'json:"([^"]*)"', tag)
            json_parts = (jm.group(1) if jm else "").split(",")
            embedded = go_name is None
            inline = embedded and json_parts[0] == "" or "inline" in json_parts[1:]
            json_name = json_parts[0] or (go_type if not embedded else "")
            current[pm.group(1)] = (
                json_name,
                "omitempty" in json_parts[1:],
                go_type.startswith("*"),
                inline,
                json_parts[0] == "-",
            )
    return structs, slices


def main():
    api_dir, am_dir = sys.argv[1], sys.argv[2]
    pkgs = {proto: short for _, proto, short in MACHINERY_PACKAGES}
    sources = []
    for d in API_PACKAGES:
        proto = "k8s.io.api." + d.replace("/", ".")
        short = d.replace("/", ".")
        pkgs[proto] = short
        sources.append((os.path.join(api_dir, d), short))
    for d, _, short in MACHINERY_PACKAGES:
        sources.append((os.path.join(am_dir, d), short))

    out = ["# generated by gen_schema.py from k8s.io/api and k8s.io/apimachinery; do not edit"]
    if len(sys.argv) > 3:
        out.append("# " + sys.argv[3])
    done = set()
    while True:
        for proto, short in list(pkgs.items()):
            if short not in {s for _, s in sources}:
                sources.append((os.path.join(api_dir, short.replace(".", "/")), short))
        pending = [s for s in sources if s[1] not in done]
        if not pending:
            break
        directory, pkg = pending[0]
        done.add(pkg)
        messages = parse_proto(os.path.join(directory, "generated.proto"), pkg, pkgs)
        structs, slices = {}, set()
        for fname in sorted(os.listdir(directory)):
            if fname.endswith(".go") and not fname.endswith("_test.go"):
                s, sl = parse_go(os.path.join(directory, fname))
                structs.update(s)
                slices |= sl
        for name in sorted(messages):
            go = structs.get(name)
            if go is None:
                print(f"warning: no Go struct for {pkg}.{name}", file=sys.stderr)
                go = {}
            header = f"{pkg}.{name}" + (" =items" if name in slices else "")
            tokens = []
            for label, typ, pname, num in messages[name]:
                if go and num not in go:
                    print(f"warning: no Go field for {pkg}.{name}.{pname}", file=sys.stderr)
                json_name, omitempty, pointer, inline, skip = go.get(num, ("", True, True, False, False))
                if json_name and json_name != pname and not inline:
                    print(f"note: {pkg}.{name}.{pname} is {json_name} in JSON", file=sys.stderr)
                if skip:
                    continue
                prefix = {"repeated": "[]", "map": "{}"}.get(label, "")
                flags = ""
                if inline:
                    flags += "^"
                    json_name = pname
                elif omitempty and not pointer and label == "optional":
                    flags += "?"
                tokens.append(f"{json_name or pname}={num}:{prefix}{typ}{flags}")
            out.append(header)
            line = " "
            for t in tokens:
                if len(line) + len(t) + 1 > 99 and line.strip():
                    out.append(line)
                    line = " "
                line += " " + t
            if line.strip():
                out.append(line)
    print("\n".join(out))


if __name__ == "__main__":
    main()
