#!/usr/bin/env python3
"""Regenerate src/server/apiserver/openapi/upstream.bin, the upstream OpenAPI
documents skiff serves at /openapi/v2 and /openapi/v3.

Usage: gen-openapi.py V3_DIR SWAGGER_JSON SOURCE_NOTE... > upstream.bin

V3_DIR holds kube-apiserver's OpenAPI v3 documents, one per group/version, as
kubernetes/kubernetes commits them under api/openapi-spec/v3/
(`api__v1_openapi.json`, `apis__apps__v1_openapi.json`, …) or laid out as
`api/v1.json`, `apis/apps/v1.json`. SWAGGER_JSON is the same release's
api/openapi-spec/swagger.json (OpenAPI v2). Each SOURCE_NOTE becomes one
`source:` line of the header: say where each input came from (repository,
commit, date), as the committed file does. Needs the `zstd` command.

The committed file was made from kubectl-validate's copy of the v3
documents and the Python client's copy of swagger.json (both of
kubernetes/kubernetes release-1.32; see the file's `source:` lines):

    git --git-dir=kubectl-validate.git archive 231e3efa pkg/openapiclient/builtins/1.32 | tar -x
    git --git-dir=python.git show 5342870c:kubernetes/swagger.json.unprocessed > swagger.json
    gen-openapi.py pkg/openapiclient/builtins/1.32 swagger.json "<note>" "<note>" > upstream.bin

What is kept, and why:
  * every path of every v3 document, verbatim (minified). The server keeps
    those of the resources, subresources and verbs its registry serves, so a
    kind added to the registry is described with no change to the server;
  * every v3 schema once (they are identical in every document that holds
    them; checked here);
  * every v2 definition, verbatim from swagger.json (v2 is not derived at run
    time: it differs from v3 in more than the `$ref` form, e.g. Quantity and
    IntOrString are plain strings there; the differences are printed to
    stderr);
  * swagger.json's paths of each group/version (kept by the same rule as
    v3's) and the shared parameters they refer to;
  * the security schemes of both.

Format (read by src/server/apiserver/openapi/artifact.rs): a text header,
lines up to the first empty line:

    skiff-openapi 1
    source: <note>                  (one or more)
    frame <name> <offset> <length> <raw length>

then the frames, each one zstd frame at <offset> bytes after the header's
empty line. A frame decompresses to lines `<key>\\t<minified JSON>\\n`
(minified JSON holds no raw tab or newline). Frames: `paths:<gv path>` (key:
`v3 <URL path>` or `v2 <URL path>`, value: its path item), `schemas` (key: `v3 <name>` or `v2 <name>`, each v2
definition beside its v3 schema so that their shared descriptions compress
once), `extra` (v3.securitySchemes, v2.securityDefinitions, v2.security,
v2.parameters).
"""
import json
import os
import subprocess
import sys


def minify(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def gv_of_file(rel):
    """'apis/apps/v1.json' or 'apis__apps__v1_openapi.json' -> 'apis/apps/v1'."""
    rel = rel.replace(os.sep, "/")
    if rel.endswith("_openapi.json"):
        return rel[: -len("_openapi.json")].replace("__", "/")
    return rel[: -len(".json")]


def read_v3(v3_dir):
    docs = {}
    for root, _dirs, files in os.walk(v3_dir):
        for name in files:
            if not name.endswith(".json"):
                continue
            path = os.path.join(root, name)
            gv = gv_of_file(os.path.relpath(path, v3_dir))
            parts = gv.split("/")
            # Only group/version documents: api/v1, apis/<group>/<version>.
            if not ((parts[0] == "api" and len(parts) == 2) or (parts[0] == "apis" and len(parts) == 3)):
                continue
            with open(path) as f:
                docs[gv] = json.load(f)
    return docs


def v2_form(schema):
    """The v2 spelling of a v3 schema, for the comparison printed to stderr."""
    if isinstance(schema, list):
        return [v2_form(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    s = dict(schema)
    all_of = s.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and list(all_of[0]) == ["$ref"]:
        s["$ref"] = s.pop("allOf")[0]["$ref"]
    s.pop("default", None)
    out = {}
    for k, v in s.items():
        if k == "$ref":
            out[k] = v.replace("#/components/schemas/", "#/definitions/")
        elif k == "properties":
            out[k] = {pk: v2_form(pv) for pk, pv in v.items()}
        else:
            out[k] = v2_form(v)
    return out


def compress(raw):
    return subprocess.run(
        ["zstd", "-19", "-q", "-c"], input=raw, stdout=subprocess.PIPE, check=True
    ).stdout


def frame_text(pairs):
    lines = []
    for key, value in pairs:
        text = minify(value)
        assert "\t" not in key and "\n" not in key and "\n" not in text and "\t" not in text
        lines.append(f"{key}\t{text}\n")
    return "".join(lines).encode()


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    v3_dir, swagger_path, notes = sys.argv[1], sys.argv[2], sys.argv[3:]
    docs = read_v3(v3_dir)
    with open(swagger_path) as f:
        swagger = json.load(f)

    schemas = {}
    security_schemes = None
    for gv, doc in sorted(docs.items()):
        for name, schema in doc["components"]["schemas"].items():
            if name in schemas and schemas[name] != schema:
                sys.exit(f"schema {name} differs between documents ({gv})")
            schemas[name] = schema
        sec = doc["components"].get("securitySchemes")
        if security_schemes is None:
            security_schemes = sec
        elif sec != security_schemes:
            sys.exit(f"securitySchemes differ in {gv}")

    definitions = swagger["definitions"]
    differ = [n for n in sorted(schemas) if n in definitions and v2_form(schemas[n]) != definitions[n]]
    only_v2 = sorted(set(definitions) - set(schemas))
    only_v3 = sorted(set(schemas) - set(definitions))
    print(f"{len(docs)} v3 documents, {len(schemas)} v3 schemas, {len(definitions)} v2 definitions", file=sys.stderr)
    print(f"v2 differs from v3 beyond the $ref form in: {', '.join(differ) or '-'}", file=sys.stderr)
    print(f"only in v2: {', '.join(only_v2) or '-'}", file=sys.stderr)
    print(f"only in v3: {', '.join(only_v3) or '-'}", file=sys.stderr)

    v2_paths = {}
    for path, item in swagger["paths"].items():
        parts = path.split("/")
        # /api/v1/... -> api/v1; /apis/<g>/<v>/... -> apis/<g>/<v>; the rest
        # (/version/, /logs/, group documents) belongs to no group/version.
        if parts[1] == "api" and len(parts) > 3:
            gv = "/".join(parts[1:3])
        elif parts[1] == "apis" and len(parts) > 4:
            gv = "/".join(parts[1:4])
        else:
            continue
        v2_paths.setdefault(gv, {})[path] = item
    frames = []
    for gv in sorted(set(docs) | set(v2_paths)):
        # Both forms of a group/version's paths in one frame, each v2 path
        # beside its v3 form: they share their descriptions.
        v3 = docs.get(gv, {}).get("paths", {})
        v2 = v2_paths.get(gv, {})
        pairs = []
        for path in sorted(set(v3) | set(v2)):
            if path in v3:
                pairs.append((f"v3 {path}", v3[path]))
            if path in v2:
                pairs.append((f"v2 {path}", v2[path]))
        frames.append((f"paths:{gv}", frame_text(pairs)))
    # One frame for both forms, each v2 definition beside its v3 schema:
    # their descriptions are the same text, which zstd then stores once.
    both = []
    for name in sorted(set(schemas) | set(definitions)):
        if name in schemas:
            both.append((f"v3 {name}", schemas[name]))
        if name in definitions:
            both.append((f"v2 {name}", definitions[name]))
    frames.append(("schemas", frame_text(both)))
    frames.append(
        (
            "extra",
            frame_text(
                [
                    ("v3.securitySchemes", security_schemes),
                    ("v2.securityDefinitions", swagger.get("securityDefinitions", {})),
                    ("v2.security", swagger.get("security", [])),
                    ("v2.parameters", swagger.get("parameters", {})),
                ]
            ),
        )
    )

    header = ["skiff-openapi 1"]
    header += [f"source: {n}" for n in notes]
    header.append("generated by scripts/gen-openapi.py; do not edit")
    body = b""
    for name, raw in frames:
        packed = compress(raw)
        header.append(f"frame {name} {len(body)} {len(packed)} {len(raw)}")
        body += packed
    out = ("\n".join(header) + "\n\n").encode() + body
    sys.stdout.buffer.write(out)


if __name__ == "__main__":
    main()
