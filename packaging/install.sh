#!/bin/sh
# skiff installer: curl -sfL https://…/install.sh | sh -
#
# Installs the skiff binary, a service that runs it (systemd, or OpenRC where
# systemd is absent), an environment file with the SKIFF_* settings, and
# skiff-killall.sh / skiff-uninstall.sh. Re-running it is safe: files are
# rewritten only when they change, and the service is restarted only then.
#
#   curl -sfL …/install.sh | sudo sh -                     a server (control plane and node)
#   curl -sfL …/install.sh | sudo SKIFF_URL=https://SERVER:6443 SKIFF_TOKEN=… sh -
#                                                          an agent joining that server
#   curl -sfL …/install.sh | sudo sh -s - server --cluster-cidr 10.50.0.0/16
#                                                          extra flags for skiff
#
# (sudo drops the caller's environment: put the settings after it.)
#
# Settings (environment):
#   SKIFF_URL                  the server an agent joins (https://HOST:6443); makes this an agent
#   SKIFF_TOKEN, SKIFF_TOKEN_FILE
#                              the join token (an agent needs one of them)
#   SKIFF_*                    every SKIFF_ variable is written to the service's environment
#                              file (mode 0600), e.g. SKIFF_DATA_DIR, SKIFF_CONFIG_FILE
#   SKIFF_DATA_DIR             skiff's state (an absolute path) [default: /var/lib/skiff]. One
#                              that existed before is left in place by skiff-uninstall.sh
#   SKIFF_DOWNLOAD_URL         where skiff-ARCH and sha256sum-ARCH.txt are downloaded from, over
#                              https [default: the GitHub release of INSTALL_SKIFF_VERSION, or
#                              the latest]
#   INSTALL_SKIFF_ALLOW_HTTP=true   allow a plain http:// SKIFF_DOWNLOAD_URL (a local mirror)
#   INSTALL_SKIFF_VERSION      the release to download (a tag) [default: the latest]
#   INSTALL_SKIFF_SKIP_DOWNLOAD=true
#                              download nothing: use INSTALL_SKIFF_BINARY, or the skiff already
#                              in INSTALL_SKIFF_BIN_DIR (air-gapped boxes)
#   INSTALL_SKIFF_BINARY       a local skiff binary to install (with SKIP_DOWNLOAD)
#   INSTALL_SKIFF_BIN_DIR      where the binary and scripts go [default: /usr/local/bin, or
#                              /opt/bin when /usr/local/bin is read-only]
#   INSTALL_SKIFF_SYSTEMD_DIR  where the unit goes [default: /etc/systemd/system]
#   INSTALL_SKIFF_EXEC         the command and flags skiff runs with ("server …" or "agent …";
#                              flags alone go to the command SKIFF_URL implies), split at spaces.
#                              Arguments given to this script are added to it as they are (a
#                              flag with spaces in it goes there).
#   INSTALL_SKIFF_INIT         systemd, openrc or none [default: what the box runs]
#   INSTALL_SKIFF_SKIP_ENABLE=true   neither enable nor start the service
#   INSTALL_SKIFF_SKIP_START=true    enable the service but do not start it (a later run
#                                    restarts it for the changes made meanwhile)
#   INSTALL_SKIFF_FORCE_RESTART=true restart the service even if nothing changed
#   INSTALL_SKIFF_ROOT         a directory standing for / : everything is written under it and
#                              every path in the written files points under it (for tests)
set -eu

info() { echo "[INFO]  $*"; }
warn() { echo "[WARN]  $*" >&2; }
fatal() {
    echo "[ERROR] $*" >&2
    exit 1
}

# --- settings ------------------------------------------------------------

ROOT=${INSTALL_SKIFF_ROOT:-}
case "$ROOT" in
'' | /*) ;;
*) fatal "INSTALL_SKIFF_ROOT must be an absolute path, not '$ROOT'" ;;
esac
ROOT=${ROOT%/}

setup_paths() {
    if [ -n "${INSTALL_SKIFF_BIN_DIR:-}" ]; then
        BIN_DIR=$INSTALL_SKIFF_BIN_DIR
    else
        BIN_DIR=$ROOT/usr/local/bin
        mkdir -p "$BIN_DIR" 2>/dev/null || true
        # Read-only /usr (Flatcar, Fedora CoreOS, some appliances).
        if ! (touch "$BIN_DIR/.skiff-ro-test" && rm -f "$BIN_DIR/.skiff-ro-test") 2>/dev/null; then
            BIN_DIR=$ROOT/opt/bin
            info "$ROOT/usr/local/bin is read-only: installing to $BIN_DIR"
        fi
    fi
    SYSTEMD_DIR=${INSTALL_SKIFF_SYSTEMD_DIR:-$ROOT/etc/systemd/system}
    # Everything skiff keeps: the server's data, the node's images,
    # containers and pods (skiff's --root and --data-dir are one place).
    DEFAULT_DATA_DIR=$ROOT/var/lib/skiff
    DATA_DIR=${SKIFF_DATA_DIR:-$DEFAULT_DATA_DIR}
    while [ "$DATA_DIR" != / ] && [ "${DATA_DIR%/}" != "$DATA_DIR" ]; do DATA_DIR=${DATA_DIR%/}; done
    case "$DATA_DIR" in
    /) fatal "SKIFF_DATA_DIR may not be /" ;;
    /*) ;;
    *) fatal "SKIFF_DATA_DIR must be an absolute path, not '$DATA_DIR'" ;;
    esac
    RUN_DIR=$ROOT/run/skiff
    ETC_DIR=$ROOT/etc/skiff
    LOG_DIR=$ROOT/var/log/pods
    # Directories that were not there before skiff was installed, which
    # skiff-uninstall.sh may remove whole (kept across runs).
    OWNED=$ETC_DIR/.installed-dirs
    PENDING=$ETC_DIR/.restart-pending
    BIN=$BIN_DIR/skiff
    KILLALL=$BIN_DIR/skiff-killall.sh
    UNINSTALL=$BIN_DIR/skiff-uninstall.sh
    case "$BIN_DIR$SYSTEMD_DIR$DATA_DIR" in
    *[[:space:]\'\"\\]*) fatal "the install paths may not contain spaces or quotes: $BIN_DIR, $SYSTEMD_DIR, $DATA_DIR" ;;
    esac
}

# The command skiff runs and its flags: INSTALL_SKIFF_EXEC, then the script's
# arguments. A first word other than server/agent is a flag of the command
# SKIFF_URL implies.
setup_command() {
    # INSTALL_SKIFF_EXEC is words, split at spaces as k3s does, never
    # expanded as file names.
    set -f
    # shellcheck disable=SC2086
    set -- ${INSTALL_SKIFF_EXEC:-} "$@"
    set +f
    case "${1:-}" in
    server | agent)
        COMMAND=$1
        shift
        ;;
    *)
        if [ -n "${SKIFF_URL:-}" ]; then COMMAND=agent; else COMMAND=server; fi
        ;;
    esac
    EXEC_ARGS=
    for a in "$@"; do
        case "$a" in
        *"
"*) fatal "a flag for skiff may not contain a newline" ;;
        # The unit is world-readable: the token goes in the 0600 env file.
        --token | --token=*) fatal "put the join token in SKIFF_TOKEN (or SKIFF_TOKEN_FILE), not --token: flags are written where every user can read them" ;;
        --server | --server=*) fatal "name the server with SKIFF_URL, not --server" ;;
        --data-dir | --data-dir=* | --root | --root=*) fatal "set SKIFF_DATA_DIR, not $a: skiff-killall.sh and skiff-uninstall.sh need to know it" ;;
        --run-dir | --run-dir=*) fatal "--run-dir is not supported by the installer (skiff-killall.sh uses /run/skiff)" ;;
        esac
        EXEC_ARGS="$EXEC_ARGS$a
"
    done

    if [ "$COMMAND" = agent ]; then
        [ -n "${SKIFF_URL:-}" ] || fatal "an agent joins a server: set SKIFF_URL=https://SERVER:6443"
        case "$SKIFF_URL" in
        https://*) ;;
        *) fatal "SKIFF_URL must be the server's https:// address, not '$SKIFF_URL'" ;;
        esac
        if [ -z "${SKIFF_TOKEN:-}" ] && [ -z "${SKIFF_TOKEN_FILE:-}" ]; then
            fatal "an agent needs the server's join token: set SKIFF_TOKEN (or SKIFF_TOKEN_FILE) after sudo; it is in the server's /var/lib/skiff/server/token, or made there with 'skiff token create'"
        fi
        SERVICE=skiff-agent
    else
        if [ -n "${SKIFF_URL:-}" ]; then
            fatal "SKIFF_URL is set but the command is 'server': a server cannot join another yet; unset SKIFF_URL, or install an agent"
        fi
        SERVICE=skiff
    fi
}

setup_init() {
    INIT=${INSTALL_SKIFF_INIT:-}
    if [ -z "$INIT" ]; then
        if [ -x /sbin/openrc-run ]; then
            INIT=openrc
        elif [ -d /run/systemd/system ]; then
            # systemd is running (sd_booted), not merely installed.
            INIT=systemd
        else
            INIT=none
            warn "neither systemd nor OpenRC runs here: installing skiff without a service (start it with: $BIN $COMMAND)"
        fi
    fi
    case "$INIT" in
    systemd)
        UNIT=$SYSTEMD_DIR/$SERVICE.service
        ENV_FILE=$SYSTEMD_DIR/$SERVICE.service.env
        ;;
    openrc)
        UNIT=$ROOT/etc/init.d/$SERVICE
        ENV_FILE=$ETC_DIR/$SERVICE.env
        ;;
    none)
        UNIT=
        ENV_FILE=$ETC_DIR/$SERVICE.env
        ;;
    *) fatal "INSTALL_SKIFF_INIT must be systemd, openrc or none, not '$INIT'" ;;
    esac
    # A server and an agent on one box would share its data directory.
    if [ "$SERVICE" = skiff ]; then other=skiff-agent; else other=skiff; fi
    if [ -f "$SYSTEMD_DIR/$other.service" ] || [ -f "$ROOT/etc/init.d/$other" ]; then
        if [ "$other" = skiff-agent ]; then
            fatal "this box runs skiff-agent: to update it, give SKIFF_URL and SKIFF_TOKEN again; to make it a server, run $UNINSTALL first"
        else
            fatal "this box runs a skiff server: to update it, run without SKIFF_URL; to make it an agent, run $UNINSTALL first"
        fi
    fi
}

setup_arch() {
    case "$(uname -m)" in
    x86_64 | amd64) ARCH=amd64 ;;
    aarch64 | arm64) ARCH=arm64 ;;
    *) fatal "there is no skiff release for $(uname -m) (amd64 and arm64 only); build it from source" ;;
    esac
}

# --- files ---------------------------------------------------------------

CHANGED=
TMP_DIR=
TMP_FILE=

cleanup() {
    if [ -n "$TMP_DIR" ]; then rm -rf "$TMP_DIR"; fi
    if [ -n "$TMP_FILE" ]; then rm -f "$TMP_FILE"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# install_file SRC DEST MODE: DEST becomes SRC's content with MODE, replaced
# in one rename and only when it differs; records that something changed.
install_file() {
    src=$1
    dest=$2
    mode=$3
    mkdir -p "$(dirname "$dest")"
    if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
        chmod "$mode" "$dest"
        return 0
    fi
    # A new name that nothing can be waiting at (O_EXCL, mode 0600): the
    # environment file holds the token until it has its mode.
    TMP_FILE=$(mktemp "$dest.XXXXXX")
    cat "$src" >"$TMP_FILE"
    chmod "$mode" "$TMP_FILE"
    mv -f "$TMP_FILE" "$dest"
    TMP_FILE=
    CHANGED="$CHANGED $dest"
    info "wrote $dest"
}

# own_dir DIR MODE: make DIR if it is not there, and note that it was
# made here (skiff-uninstall.sh removes such directories whole).
own_dir() {
    if [ ! -e "$1" ]; then
        mkdir -p "$1"
        chmod "$2" "$1"
        echo "$1" >>"$OWNED"
    fi
}

download() {
    # $1 URL, $2 file. Over https only (redirects too), unless a plain
    # http mirror was allowed.
    protos='=https'
    if [ "${INSTALL_SKIFF_ALLOW_HTTP:-}" = true ]; then protos='=https,http'; fi
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --proto "$protos" --proto-redir "$protos" -o "$2" "$1" || fatal "could not download $1"
    elif command -v wget >/dev/null 2>&1; then
        if [ "$protos" = '=https' ] && wget --help 2>&1 | grep -q -- --https-only; then
            wget -q --https-only -O "$2" "$1" || fatal "could not download $1"
        else
            wget -q -O "$2" "$1" || fatal "could not download $1"
        fi
    else
        fatal "neither curl nor wget is installed: install one, or set INSTALL_SKIFF_SKIP_DOWNLOAD=true with INSTALL_SKIFF_BINARY"
    fi
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        fatal "no sha256sum or shasum to check the download with"
    fi
}

get_binary() {
    if [ "${INSTALL_SKIFF_SKIP_DOWNLOAD:-}" = true ]; then
        if [ -n "${INSTALL_SKIFF_BINARY:-}" ]; then
            [ -f "$INSTALL_SKIFF_BINARY" ] || fatal "INSTALL_SKIFF_BINARY: no file $INSTALL_SKIFF_BINARY"
            cp "$INSTALL_SKIFF_BINARY" "$TMP_DIR/skiff"
            NEW_BIN=$TMP_DIR/skiff
        else
            [ -x "$BIN" ] || fatal "INSTALL_SKIFF_SKIP_DOWNLOAD=true, but there is no $BIN: put the binary there, or name it with INSTALL_SKIFF_BINARY"
            NEW_BIN=$BIN
        fi
    else
        if [ -n "${SKIFF_DOWNLOAD_URL:-}" ]; then
            base=${SKIFF_DOWNLOAD_URL%/}
            case "$base" in
            https://*) ;;
            http://*)
                [ "${INSTALL_SKIFF_ALLOW_HTTP:-}" = true ] ||
                    fatal "SKIFF_DOWNLOAD_URL is plain http: its checksum would come over the same unprotected connection; use https, or set INSTALL_SKIFF_ALLOW_HTTP=true for a mirror you trust"
                ;;
            *) fatal "SKIFF_DOWNLOAD_URL must be an https:// address, not '$base'" ;;
            esac
        elif [ -n "${INSTALL_SKIFF_VERSION:-}" ]; then
            base=https://github.com/skiff-dev/skiff/releases/download/$INSTALL_SKIFF_VERSION
        else
            base=https://github.com/skiff-dev/skiff/releases/latest/download
        fi
        info "downloading $base/skiff-$ARCH"
        download "$base/sha256sum-$ARCH.txt" "$TMP_DIR/sha256sum.txt"
        download "$base/skiff-$ARCH" "$TMP_DIR/skiff"
        want=$(awk -v f="skiff-$ARCH" '$2 == f || $2 == "*" f { print $1 }' "$TMP_DIR/sha256sum.txt")
        [ -n "$want" ] || fatal "$base/sha256sum-$ARCH.txt has no line for skiff-$ARCH"
        got=$(sha256_of "$TMP_DIR/skiff")
        if [ "$want" != "$got" ]; then
            fatal "checksum mismatch: skiff-$ARCH is sha256 $got, $base/sha256sum-$ARCH.txt says $want; nothing installed"
        fi
        info "sha256 $got verified"
        NEW_BIN=$TMP_DIR/skiff
    fi
    if [ "$NEW_BIN" != "$BIN" ]; then chmod 755 "$NEW_BIN"; fi
    "$NEW_BIN" --version >/dev/null 2>&1 || fatal "$NEW_BIN does not run on this machine"
}

# A word for an ExecStart line: double-quoted, with systemd's specifiers
# and variables kept literal.
systemd_quote() {
    printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/%/%%/g' -e 's/\$/$$/g')"
}

# A word for a shell: single-quoted.
sh_quote() {
    printf "'%s'" "$(printf '%s' "$1" | sed -e "s/'/'\\\\''/g")"
}

# The command and its flags, each flag quoted by $1.
args_line() {
    printf '%s' "$COMMAND"
    printf '%s' "$EXEC_ARGS" | while IFS= read -r a; do
        printf ' %s' "$($1 "$a")"
    done
}

# The environment file's content, from every SKIFF_ variable, checked
# before anything is written.
prepare_env_file() {
    awk 'BEGIN {
        for (k in ENVIRON) {
            if (k !~ /^SKIFF_[A-Za-z0-9_]+$/ || k == "SKIFF_DOWNLOAD_URL") continue
            v = ENVIRON[k]
            if (index(v, "\047") || index(v, "\n")) { print k > "/dev/stderr"; bad = 1; continue }
            printf "%s=\047%s\047\n", k, v
        }
        exit bad
    }' >"$TMP_DIR/env.unsorted" 2>"$TMP_DIR/env.bad" ||
        fatal "$(tr '\n' ' ' <"$TMP_DIR/env.bad")may not contain a single quote or a newline"
    LC_ALL=C sort "$TMP_DIR/env.unsorted" >"$TMP_DIR/env"
}

write_systemd_unit() {
    if [ "$COMMAND" = agent ]; then
        what="skiff agent: this box as a node of the cluster at SKIFF_URL, joined with
# SKIFF_TOKEN or SKIFF_TOKEN_FILE."
        description="skiff agent (Kubernetes node)"
        type="# Started once it runs: an agent whose server is away keeps trying to join
# (and runs its pods), which must not hold up the boot (as k3s's agent).
Type=exec"
    else
        what="skiff server: the control plane and, unless --disable-agent, this box as a
# node of the cluster."
        description="skiff server (Kubernetes control plane and node)"
        type="# skiff says READY=1 on NOTIFY_SOCKET once the API serves.
Type=notify
NotifyAccess=main"
    fi
    cat >"$TMP_DIR/unit" <<EOF
# $what Written by skiff's install.sh.
[Unit]
Description=$description
Documentation=https://github.com/skiff-dev/skiff
Wants=network-online.target
After=network-online.target

[Service]
$type
EnvironmentFile=-$ROOT/etc/default/%N
EnvironmentFile=-$ROOT/etc/sysconfig/%N
EnvironmentFile=-$ENV_FILE
# skiff manages the cgroups of its pods and containers itself, and
# stopping the service leaves them running (skiff-killall.sh stops them).
Delegate=yes
KillMode=process
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
# Kernel modules skiff uses, where the kernel has them as modules.
ExecStartPre=-/bin/sh -c 'command -v modprobe >/dev/null 2>&1 || exit 0; for m in overlay br_netfilter vxlan nf_conntrack; do modprobe \$m 2>/dev/null; done; exit 0'
ExecStart=$BIN $(args_line systemd_quote)

[Install]
WantedBy=multi-user.target
EOF
    install_file "$TMP_DIR/unit" "$UNIT" 644
}

write_openrc_service() {
    cat >"$TMP_DIR/unit" <<EOF
#!/sbin/openrc-run
# skiff $COMMAND, written by skiff's install.sh.

description="skiff $COMMAND"
supervisor=supervise-daemon
respawn_delay=5
respawn_max=0
output_log=$ROOT/var/log/$SERVICE.log
error_log=$ROOT/var/log/$SERVICE.log
# Stopping the service leaves the pods running (skiff-killall.sh stops them).
command=$(sh_quote "$BIN")
command_args="$(args_line sh_quote | sed -e 's/[\\"$`]/\\&/g')"
# Only skiff's main process is signalled, never its pods' processes.
rc_cgroup_cleanup=no

depend() {
    after network-online
    want cgroups
}

start_pre() {
    for m in overlay br_netfilter vxlan nf_conntrack; do modprobe \$m 2>/dev/null || true; done
    ulimit -n 1048576 2>/dev/null || true
}

set -o allexport
if [ -f $(sh_quote "$ENV_FILE") ]; then . $(sh_quote "$ENV_FILE"); fi
set +o allexport
EOF
    install_file "$TMP_DIR/unit" "$UNIT" 755
}

write_scripts() {
    cat >"$TMP_DIR/killall" <<EOF
#!/bin/sh
# Stops skiff's services and every pod and container of this node, and
# removes what they put on it (mounts, network namespaces, the bridge, the
# nftables table, cgroups). Images, volumes and the cluster's data stay.
# Written by skiff's install.sh.
[ "\$(id -u)" -eq 0 ] || exec sudo "\$0" "\$@"
for s in skiff skiff-agent; do
    if [ -f $(sh_quote "$SYSTEMD_DIR")/\$s.service ]; then
        systemctl stop "\$s" 2>/dev/null || true
    fi
    if [ -f $(sh_quote "$ROOT/etc/init.d")/\$s ]; then
        rc-service "\$s" stop 2>/dev/null || true
    fi
done
if [ -x $(sh_quote "$BIN") ]; then
    $(sh_quote "$BIN") --root $(sh_quote "$DATA_DIR") --run-dir $(sh_quote "$RUN_DIR") killall
fi
EOF
    install_file "$TMP_DIR/killall" "$KILLALL" 755

    # What may be removed whole: skiff's own directories, and those the
    # installer made (a data or log directory that was there before keeps
    # what is in it).
    removed="$RUN_DIR $ETC_DIR"
    if [ "$DATA_DIR" = "$DEFAULT_DATA_DIR" ]; then removed="$removed $DATA_DIR"; fi
    if [ -f "$OWNED" ]; then
        for d in $(LC_ALL=C sort -u "$OWNED"); do
            case " $removed " in *" $d "*) ;; *) removed="$removed $d" ;; esac
        done
    fi
    quoted=
    for d in $removed; do quoted="$quoted $(sh_quote "$d")"; done
    cat >"$TMP_DIR/uninstall" <<EOF
#!/bin/sh
# Removes skiff from this box: its services, pods and containers, its
# network objects, mounts and cgroups (skiff-killall.sh), its data,
# configuration and logs, and the binary. Nothing else.
# Written by skiff's install.sh.
set -e
[ "\$(id -u)" -eq 0 ] || exec sudo "\$0" "\$@"
$(sh_quote "$KILLALL")
# rm -rf would follow a mount that is left into what it shows (a pod's
# hostPath): remove nothing while skiff's directories have any.
still=\$(awk -v dirs=$(sh_quote "$DATA_DIR $removed") '
    BEGIN { n = split(dirs, d, " ") }
    { for (i = 1; i <= n; i++) if (\$5 == d[i] || index(\$5, d[i] "/") == 1) { print \$5; break } }' /proc/self/mountinfo)
if [ -n "\$still" ]; then
    echo "skiff-uninstall.sh: still mounted, so nothing is removed:" \$still >&2
    echo "unmount them (or run skiff-killall.sh again) and run this again" >&2
    exit 1
fi
for s in skiff skiff-agent; do
    if [ -f $(sh_quote "$SYSTEMD_DIR")/\$s.service ]; then
        systemctl disable "\$s" 2>/dev/null || true
        rm -f $(sh_quote "$SYSTEMD_DIR")/\$s.service $(sh_quote "$SYSTEMD_DIR")/\$s.service.env
        systemctl daemon-reload 2>/dev/null || true
    fi
    if [ -f $(sh_quote "$ROOT/etc/init.d")/\$s ]; then
        rc-update delete "\$s" default 2>/dev/null || true
        rm -f $(sh_quote "$ROOT/etc/init.d")/\$s $(sh_quote "$ROOT/var/log")/\$s.log
    fi
done
rm -rf$quoted
EOF
    case " $removed " in
    *" $DATA_DIR "*) ;;
    *)
        cat >>"$TMP_DIR/uninstall" <<EOF
echo "left $DATA_DIR: it was there before skiff was installed; remove what skiff put in it yourself" >&2
EOF
        ;;
    esac
    cat >>"$TMP_DIR/uninstall" <<EOF
rm -f $(sh_quote "$BIN") $(sh_quote "$KILLALL") $(sh_quote "$UNINSTALL")
echo "skiff is uninstalled"
EOF
    install_file "$TMP_DIR/uninstall" "$UNINSTALL" 755
}

# --- the service -----------------------------------------------------------

# Whether what the service runs changed (the scripts beside it do not count).
service_changed() {
    case " $CHANGED " in
    *" $BIN "* | *" $UNIT "* | *" $ENV_FILE "*) return 0 ;;
    esac
    return 1
}

# A restart owed for changes made by this run or by one that did not
# start the service (kept in $PENDING until it is done).
start_service() {
    if [ "$INIT" = none ]; then
        return 0
    fi
    if service_changed || [ "${INSTALL_SKIFF_FORCE_RESTART:-}" = true ]; then
        : >"$PENDING"
    fi
    if [ "${INSTALL_SKIFF_SKIP_ENABLE:-}" = true ]; then
        info "INSTALL_SKIFF_SKIP_ENABLE: $SERVICE is neither enabled nor started"
        return 0
    fi
    if [ "$INIT" = systemd ]; then
        if [ -f "$PENDING" ]; then systemctl daemon-reload; fi
        systemctl enable "$SERVICE" >/dev/null
        info "enabled $SERVICE"
    else
        rc-update add "$SERVICE" default >/dev/null
        info "added $SERVICE to the default runlevel"
    fi
    if [ "${INSTALL_SKIFF_SKIP_START:-}" = true ]; then
        info "INSTALL_SKIFF_SKIP_START: $SERVICE is not started"
        return 0
    fi
    if [ -f "$PENDING" ]; then
        info "starting $SERVICE (restarted if it ran: its files changed)"
        if [ "$INIT" = systemd ]; then systemctl restart "$SERVICE"; else rc-service "$SERVICE" restart; fi
        rm -f "$PENDING"
    else
        info "nothing changed: $SERVICE is started if it was not, and not restarted"
        if [ "$INIT" = systemd ]; then systemctl start "$SERVICE"; else rc-service "$SERVICE" start; fi
    fi
}

usage_hint() {
    if [ "$COMMAND" = server ]; then
        kc=$ETC_DIR/skiff.yaml
        info "skiff server is installed. Once it runs, as root, with kubectl (not part of skiff):"
        info "  export KUBECONFIG=$kc; kubectl get nodes"
        info "or copy it for a user: (umask 077; sudo $BIN kubeconfig > ~/.kube/config)"
        info "agents join with the token in $DATA_DIR/server/token:"
        info "  curl -sfL …/install.sh | sudo SKIFF_URL=https://THIS-HOST:6443 SKIFF_TOKEN=<token> sh -"
    else
        info "skiff agent is installed: it joins $SKIFF_URL; 'kubectl get nodes' on the server shows it"
    fi
    info "stop everything: $KILLALL; remove skiff: $UNINSTALL"
}

main() {
    [ "$(id -u)" -eq 0 ] || fatal "run as root (it installs a service): curl -sfL …/install.sh | sudo SKIFF_…=… sh - (settings after sudo, which drops the environment)"
    setup_paths
    setup_command "$@"
    setup_init
    setup_arch
    umask 022
    TMP_DIR=$(mktemp -d)
    prepare_env_file
    get_binary
    install_file "$NEW_BIN" "$BIN" 755
    mkdir -p "$ETC_DIR"
    chmod 700 "$ETC_DIR"
    own_dir "$DATA_DIR" 700
    own_dir "$LOG_DIR" 755
    case "$INIT" in
    systemd) write_systemd_unit ;;
    openrc) write_openrc_service ;;
    esac
    install_file "$TMP_DIR/env" "$ENV_FILE" 600
    write_scripts
    start_service
    usage_hint
}

main "$@"
