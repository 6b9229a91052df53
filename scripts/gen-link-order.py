#!/usr/bin/env python3
"""Regenerates link/server-start.order: the functions a server runs while
it starts (fresh data dir and restart, which covers bootstrap's creates,
lists, gets and the namespace controller's watch) and while it answers a few
kubectl requests. build/link_order.rs places these together at the front of the
release binary's code (see its module docs): the kernel maps code in
64 KiB windows around each page fault, so code that runs together should
sit together.

Usage: scripts/gen-link-order.py [<release skiff binary>]
       (default target/x86_64-unknown-linux-gnu/release/skiff)
Needs valgrind (callgrind records every instruction address run), nm, and
kubectl for the requests (skipped without it). Run as root, like the server.

The file lists one pattern per line: a symbol name with what changes from
build to build replaced by `*` (the legacy mangling's trailing hash, the v0
mangling's crate disambiguators, ThinLTO's `.llvm.<n>` suffixes). Generic
functions thus match all their instantiations. A pattern that no longer
matches anything costs nothing; regenerate when start-up code has moved
(bench/memory.sh shows it as idle RSS growing).
"""
import bisect
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "link", "server-start.order")
PORT = "16499"


def addresses(path):
    addrs = set()
    with open(path) as f:
        for line in f:
            if line.startswith("0x"):
                addrs.add(int(line.split()[0], 16))
    return addrs


def profile(binary, data_dir, out_file, requests):
    """Run the server under callgrind until it is ready, make `requests`,
    stop it. Returns the instruction addresses run until ready, and those
    run after (the requests, shutting down)."""
    log_path = out_file + ".log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--dump-instr=yes", "--compress-pos=no",
             "--compress-strings=no", f"--callgrind-out-file={out_file}",
             binary, "server", "--data-dir", data_dir, "--https-listen-port", PORT,
             "--bind-address", "127.0.0.1",
             "--write-kubeconfig", os.path.join(data_dir, "kubeconfig.yaml")],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while "skiff server is ready" not in open(log_path).read():
            if server.poll() is not None or time.time() > deadline:
                sys.exit(f"the server did not start; see {log_path}")
            time.sleep(0.2)
        time.sleep(1)
        # What ran so far goes to <out_file>.1; what runs after, to <out_file>.
        subprocess.run(["callgrind_control", "--dump", str(server.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        requests(os.path.join(data_dir, "kubeconfig.yaml"))
        time.sleep(1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
    return addresses(out_file + ".1"), addresses(out_file)


def kubectl_requests(kubeconfig):
    if not os.path.exists("/usr/bin/kubectl"):
        print("no /usr/bin/kubectl: profiling start-up alone", file=sys.stderr)
        return
    manifest = (b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: order\n"
                b"data:\n  a: b\n")
    for args, stdin in [
        (["get", "namespaces"], None),
        (["get", "pods", "-A"], None),
        (["apply", "-f", "-"], manifest),
        (["get", "configmap", "order", "-o", "yaml"], None),
        (["delete", "configmap", "order"], None),
    ]:
        subprocess.run(["/usr/bin/kubectl", "--kubeconfig", kubeconfig,
                        "--request-timeout", "60s", *args],
                       input=stdin, stdout=subprocess.DEVNULL, check=True)


def normalise(name):
    # The hash first: ThinLTO's suffix comes after it.
    name = re.sub(r"17h[0-9a-f]{16}E(\.llvm\.\d+)?$", "*", name)
    name = re.sub(r"\.llvm\.\d+$", "*", name)
    return re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", name)


# Start-up code of the C library and the linker's own: not in sections a
# pattern can move.
SKIP = {"_start", "_dl_relocate_static_pie", "deregister_tm_clones",
        "register_tm_clones", "__do_global_dtors_aux", "frame_dummy"}


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "target/x86_64-unknown-linux-gnu/release/skiff")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        fresh, requests = profile(binary, data, os.path.join(tmp, "fresh.out"), kubectl_requests)
        restart, stop = profile(binary, data, os.path.join(tmp, "restart.out"), lambda _: None)
    # Phase by phase, so that a start touches the fewest windows: a fresh
    # start, what a restart adds, then the requests and shutting down.
    phases = [fresh, restart, requests | stop]
    nm = subprocess.run(["nm", "--defined-only", "-n", binary],
                        capture_output=True, text=True, check=True).stdout
    syms = []
    for line in nm.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    starts = [a for a, _ in syms]
    patterns, seen = [], set()
    for phase in phases:
        # In address order: what sat together stays together.
        for addr in sorted(phase):
            i = bisect.bisect_right(starts, addr) - 1
            if i < 0 or syms[i][1] in SKIP:
                continue
            p = normalise(syms[i][1])
            if p not in seen:
                seen.add(p)
                patterns.append(p)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("# Generated by scripts/gen-link-order.py; see there and build/link_order.rs.\n")
        f.write("# Functions run by a fresh server start, then those a restart adds, then those\n")
        f.write("# a few kubectl requests and shutting down add.\n")
        for p in patterns:
            f.write(p + "\n")
    print(f"{len(patterns)} patterns written to {OUT}")


if __name__ == "__main__":
    main()
