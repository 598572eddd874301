#!/bin/sh
# Builds a minimal busybox root filesystem from Debian's busybox-static.
# Usage: scripts/mkrootfs-busybox.sh DIR
# Gives: /bin/busybox and every applet link, /etc/passwd and /etc/group (root and an
# unprivileged user "user" with uid/gid 1000), /tmp (1777), /root, and the empty mount
# points a container needs (/proc, /sys, /dev, /etc/hosts...). Nothing is downloaded.
set -eu
dir=${1:?usage: mkrootfs-busybox.sh DIR}
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "mkrootfs-busybox.sh: $bb not found (apt-get install busybox-static)" >&2; exit 1; }
"$bb" --list-full >/dev/null 2>&1 || { echo "mkrootfs-busybox.sh: $bb is not a busybox with --list-full" >&2; exit 1; }

mkdir -p "$dir"
cd "$dir"
mkdir -p bin sbin usr/bin usr/sbin etc root tmp proc sys dev home/user var/log
chmod 0700 root
chmod 1777 tmp
cp "$bb" bin/busybox
chmod 0755 bin/busybox
for applet in $("$bb" --list-full); do
    case "$applet" in bin/busybox) continue ;; esac
    [ -e "$applet" ] || [ -L "$applet" ] || ln -s /bin/busybox "$applet"
done
cat > etc/passwd <<'P'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > etc/group <<'G'
root:x:0:
user:x:1000:
nogroup:x:65534:
G
chown 1000:1000 home/user
: > etc/hosts
: > etc/resolv.conf
: > etc/hostname
