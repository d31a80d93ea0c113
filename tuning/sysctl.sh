#!/usr/bin/env bash
# Prints the kernel settings recommended for serverless-wasm under heavy
# load, with the current value of each; applies them only with --apply
# (as root). Nothing is made persistent: copy the printed lines into
# /etc/sysctl.d/90-serverless-wasm.conf to keep them across reboots.
set -euo pipefail

recommended=(
    # Accept queue: the server asks for listen_backlog (default 1024) per
    # shard; the kernel caps it at somaxconn.
    "net.core.somaxconn=65535"
    # SYN queue for bursts of new connections.
    "net.ipv4.tcp_max_syn_backlog=65535"
    # Reuse TIME_WAIT sockets for outgoing connections (guests' backend
    # connections, load generators on the same host).
    "net.ipv4.tcp_tw_reuse=1"
    # More ephemeral ports for backend connections.
    "net.ipv4.ip_local_port_range=1024 65535"
    # Open files system-wide: every connection and backend socket is one.
    "fs.file-max=2097152"
    # Packets queued per CPU before the stack processes them.
    "net.core.netdev_max_backlog=65535"
    # Busy polling trades CPU for latency on real NICs (no effect on loopback).
    "net.core.busy_poll=0"
    "net.core.busy_read=0"
)

apply=false
[ "${1:-}" = "--apply" ] && apply=true

printf '%-36s %-20s %s\n' "setting" "current" "recommended"
for entry in "${recommended[@]}"; do
    key=${entry%%=*}
    value=${entry#*=}
    current=$(sysctl -n "$key" 2>/dev/null | tr '\t' ' ' || echo "n/a")
    # Limits are only ever raised: a larger current value is kept.
    if [[ "$current" =~ ^[0-9]+$ && "$value" =~ ^[0-9]+$ && "$current" -ge "$value" && "$key" != *busy* && "$key" != *tw_reuse* ]]; then
        printf '%-36s %-20s %s\n' "$key" "$current" "(already at least $value)"
        continue
    fi
    printf '%-36s %-20s %s\n' "$key" "$current" "$value"
    if $apply; then
        sysctl -q -w "$key=$value" || echo "  could not set $key (not permitted here?)" >&2
    fi
done
if ! $apply; then
    echo
    echo "Nothing changed. Run with --apply (as root) to set these until the next reboot."
fi
echo
echo "CPU frequency governor (performance is steadier for benchmarks):"
for g in /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor; do
    [ -e "$g" ] && echo "  $g: $(cat "$g")"
done
[ -e /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor ] || echo "  (no cpufreq here: a VM, or a fixed-frequency CPU)"
