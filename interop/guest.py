"""What runs inside the VM: /init and the command protocol on the second serial port.

ttyS0 is the kernel console (a log file on the host). ttyS1 carries commands: the host
writes one line ``<id> <base64 of a shell script>``; the guest answers
``@@B <id>``, the script's output (stdout and stderr), then ``@@E <id> <exit status>``.
Base64 keeps quoting and newlines out of the way; each script runs in its own shell with
stdin from /dev/null, so nothing it starts can swallow the next command.
"""

BEGIN = "@@B"
END = "@@E"
READY = "@@READY"

INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /usr/bin /usr/sbin
/bin/busybox --install -s /bin
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug
for m in $(cat /etc/modules.order); do insmod /lib/modules/$m || echo "insmod $m failed"; done
# No duplicate address detection: the only neighbour is the test's namespace, and
# addresses must be usable at once.
for f in /proc/sys/net/ipv6/conf/*/accept_dad; do echo 0 > $f; done
ip link set lo up
ip link set eth0 up
echo @@READY
# Open the command port once and keep it open: input arriving while it is closed is lost.
exec </dev/ttyS1 >/dev/ttyS1 2>&1
stty raw -echo -icrnl
echo @@READY
while read -r id b64; do
  [ -n "$id" ] || continue
  # busybox sh runs its own applets before PATH; functions make ip and tc iproute2's.
  { echo 'ip() { /sbin/ip "$@"; }; tc() { /sbin/tc "$@"; }'
    echo "$b64" | base64 -d; } > /tmp/cmd.sh
  echo "@@B $id"
  sh /tmp/cmd.sh </dev/null
  echo "@@E $id $?"
done
poweroff -f
"""
