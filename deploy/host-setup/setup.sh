#!/bin/sh
# Runs in the privileged host-setup pod: point core_pattern at systemd-coredump, install a coredump.conf
# drop-in with the limits below, wait, and on SIGTERM put back what was there before.
set -eu

# HOST_ROOT and CORE_PATTERN_FILE point elsewhere only in tests.
HOST=${HOST_ROOT:-/host}
CORE_PATTERN=${CORE_PATTERN_FILE:-/proc/sys/kernel/core_pattern}
STATE="$HOST/var/lib/coredump-agent-host-setup"
DROPIN_DIR="$HOST/etc/systemd/coredump.conf.d"
DROPIN="$DROPIN_DIR/50-coredump-agent.conf"
HANDLER=/usr/lib/systemd/systemd-coredump
DEFAULT_PATTERN="|$HANDLER %P %u %g %s %t %c %h"

log() { echo "host-setup on ${NODE_NAME:-this node}: $*"; }

if [ ! -x "$HOST$HANDLER" ]; then
  log "$HANDLER is missing on the host; install systemd-coredump (Debian/Ubuntu: apt-get install systemd-coredump) and delete this pod to retry"
  trap 'exit 0' TERM INT
  while :; do sleep 3600 & wait $! || true; done
fi

# The pattern systemd ships for this host's version, else the classic one.
pattern=$(sed -n 's/^[[:space:]]*kernel\.core_pattern[[:space:]]*=[[:space:]]*//p' \
  "$HOST/usr/lib/sysctl.d/50-coredump.conf" 2>/dev/null | tail -n 1)
[ -n "$pattern" ] || pattern=$DEFAULT_PATTERN

mkdir -p "$STATE"
# Save the originals once: a restarted pod must not save its own settings as "the old values".
if [ ! -f "$STATE/core_pattern" ]; then
  cat "$CORE_PATTERN" > "$STATE/core_pattern"
  if [ -f "$DROPIN" ]; then cp "$DROPIN" "$STATE/dropin.conf"; fi
fi

restore() {
  log "restoring core_pattern to $(cat "$STATE/core_pattern")"
  cat "$STATE/core_pattern" > "$CORE_PATTERN"
  if [ -f "$STATE/dropin.conf" ]; then cp "$STATE/dropin.conf" "$DROPIN"; else rm -f "$DROPIN"; fi
  rm -rf "$STATE"
  exit 0
}
trap restore TERM INT

mkdir -p "$DROPIN_DIR"
cat > "$DROPIN.tmp" <<CONF
# Written by the milvus-coredump-agent host-setup DaemonSet; removed when it is deleted.
[Coredump]
Storage=external
Compress=yes
ProcessSizeMax=${PROCESS_SIZE_MAX:-32G}
ExternalSizeMax=${EXTERNAL_SIZE_MAX:-32G}
MaxUse=${MAX_USE:-50G}
KeepFree=${KEEP_FREE:-10G}
CONF
mv "$DROPIN.tmp" "$DROPIN"
printf '%s\n' "$pattern" > "$CORE_PATTERN"
log "core_pattern is now $(cat "$CORE_PATTERN"); limits in /etc/systemd/coredump.conf.d/50-coredump-agent.conf"

while :; do
  sleep 3600 &
  wait $! || true
done
