/// A file of the guest's root filesystem, written into the initramfs tree.
struct GuestFile: Sendable {
    let path: String
    let mode: Int
    let contents: String
}

/// The guest's own files, kept as Swift strings so the module needs no resource bundle.
///
/// The guest is busybox only: no cloud-init, no udev, no systemd. Its boot script does the few
/// things the tests and the cloud need from a guest (config drive, hostname, DHCP, a marker on the
/// console, ACPI power-off) in about a second of TCG time.
enum GuestFiles {
    static let all: [GuestFile] = [
        GuestFile(path: "init", mode: 0o755, contents: initScript),
        GuestFile(path: "etc/init.d/rcS", mode: 0o755, contents: bootScript),
        GuestFile(path: "etc/udhcpc/default.script", mode: 0o755, contents: udhcpcScript),
        GuestFile(path: "etc/nimbus/metadata.awk", mode: 0o644, contents: metadataAwk),
        GuestFile(path: "etc/acpi/PWRF/00000080", mode: 0o755, contents: powerButtonScript),
        GuestFile(path: "etc/inittab", mode: 0o644, contents: inittab),
        GuestFile(path: "etc/passwd", mode: 0o644, contents: "root:x:0:0:root:/root:/bin/sh\n"),
        GuestFile(path: "etc/group", mode: 0o644, contents: "root:x:0:\n"),
        GuestFile(path: "etc/hosts", mode: 0o644, contents: "127.0.0.1 localhost\n"),
    ]

    /// `/init`, run by the kernel as PID 1: mounts the basics and hands PID 1 to busybox init at
    /// once, which runs `bootScript` as its sysinit.
    ///
    /// Why not do the work here and exec init afterwards: until busybox init runs, PID 1 is a shell,
    /// and the kernel drops signals PID 1 has no handler for, so a `poweroff` sent in that window
    /// (the host may send system_powerdown as soon as it sees the marker) would be lost.
    static let initScript = #"""
    #!/bin/sh
    export PATH=/bin:/sbin:/usr/bin:/usr/sbin
    mount -t devtmpfs devtmpfs /dev
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    exec /sbin/init
    """#

    /// `/etc/init.d/rcS`: what cloud-init would do, then the marker lines the host waits for.
    ///
    /// Marker lines (parsed by the host, keep the format):
    ///   `NIMBUS-GUEST hostname=<name> uuid=<uuid|none> ip=<IPv4|none>`
    ///   `NIMBUS-USERDATA <first line of user_data>`
    /// Everything the host may use once it sees them (DHCP, acpid) is running before they print.
    static let bootScript = #"""
    #!/bin/sh
    # Nimbus test guest boot, run by busybox init (sysinit) with the serial console as stdout.
    export PATH=/bin:/sbin:/usr/bin:/usr/sbin
    mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
    # Kernel messages printed from now on could land inside a marker line; dmesg still has them.
    dmesg -n 1

    # busybox insmod has no dependency resolution: the lists are in modprobe --show-depends
    # order, computed when the image was built.
    load_modules() {
        while read -r module; do
            insmod "/lib/modules/$module" 2>>/var/log/modules.log || echo "insmod $module failed" >>/var/log/modules.log
        done <"$1"
    }
    load_modules /lib/modules/boot.list

    # The config drive is a virtio disk or a cdrom; findfs finds the label on either. The ATA
    # drivers for a cdrom load only when no virtio disk has the label, as probing costs boot time.
    # ATA ports report their drives asynchronously: poll up to 3 s, and only if a port exists.
    device=$(findfs LABEL=config-2 2>/dev/null)
    if [ -z "$device" ]; then
        load_modules /lib/modules/cdrom.list
        tries=30
        while [ -z "$device" ] && [ "$tries" -gt 0 ] && [ -n "$(ls /sys/class/ata_port 2>/dev/null)" ]; do
            usleep 100000
            device=$(findfs LABEL=config-2 2>/dev/null)
            tries=$((tries - 1))
        done
    fi

    uuid="" md_hostname="" md_name="" user_line=""
    if [ -n "$device" ] && mount -o ro "$device" /mnt/config 2>>/var/log/config-drive.log; then
        latest=/mnt/config/openstack/latest
        if [ -r "$latest/meta_data.json" ]; then
            awk -v keys="uuid hostname name" -f /etc/nimbus/metadata.awk "$latest/meta_data.json" >/var/run/meta_data
            while read -r key value; do
                case $key in
                    uuid) uuid=$(printf '%s' "$value" | tr -cd '0-9a-fA-F-') ;;
                    hostname) md_hostname=$value ;;
                    name) md_name=$value ;;
                esac
            done </var/run/meta_data
        fi
        # Only the first line, without control characters: user data may be anything (even gzip).
        [ -r "$latest/user_data" ] && user_line=$(head -n 1 "$latest/user_data" | head -c 1024 | tr -d '\000-\037\177')
        # Kept for the directives run after the marker (64 KiB is plenty: one per line).
        [ -r "$latest/user_data" ] && head -c 65536 "$latest/user_data" >/var/run/user_data
        umount /mnt/config
    else
        echo "no config drive (label config-2)" >>/var/log/config-drive.log
    fi
    [ -n "$uuid" ] || uuid=none

    # Hostnames allow lowercase letters, digits, '-' and '.', 63 characters; `name` is a display name.
    host=$(printf '%s' "${md_hostname:-$md_name}" | tr 'A-Z _' 'a-z--' | tr -cd 'a-z0-9.-' | cut -c 1-63)
    [ -n "$host" ] || host=nimbus-guest
    hostname "$host"
    echo "$host" >/etc/hostname
    echo "127.0.1.1 $host" >>/etc/hosts

    ip link set lo up
    address=none
    if [ -d /sys/class/net/eth0 ]; then
        # udhcpc needs the link up first; it returns once bound (or after -t tries) and keeps
        # renewing in the background. Its output goes to a file: in the background it keeps
        # stdout open, so it must never be a pipe.
        ip link set eth0 up
        # 121 (classless static routes) carries the metadata route and, then, the default route.
        udhcpc -i eth0 -b -t 10 -T 1 -O mtu -O staticroutes -x "hostname:$host" -p /var/run/udhcpc.eth0.pid >/var/log/udhcpc.log 2>&1
        [ -s /var/run/udhcpc.eth0.ip ] && address=$(cat /var/run/udhcpc.eth0.ip)
    fi

    # acpid turns the power button (button.ko, read through evdev.ko) into /etc/acpi/PWRF/00000080.
    # It exits silently unless /var/run and /var/log exist (they are in the image). It writes its
    # pid file only once it has the input devices open: wait for that, or a power-off the host
    # sends right after the marker could be missed.
    acpid
    tries=100
    while [ ! -s /var/run/acpid.pid ] && [ "$tries" -gt 0 ]; do
        usleep 20000
        tries=$((tries - 1))
    done

    echo "NIMBUS-GUEST hostname=$host uuid=$uuid ip=$address"
    echo "NIMBUS-USERDATA $user_line"

    # user_data directives, one per line, answered on the console after the marker (in the
    # background: boot is done, and a directive may take seconds):
    #   nimbus-ping ADDR  -> NIMBUS-PING ADDR ok|fail   (tries for 10 s)
    #   nimbus-fetch URL  -> NIMBUS-FETCH URL <first line of the body>|fail
    if [ -s /var/run/user_data ]; then
        (
            tr -d '\r' </var/run/user_data | while read -r directive argument rest; do
                # Addresses and URLs only: nothing from user data reaches a shell unquoted.
                argument=$(printf '%s' "$argument" | tr -cd 'A-Za-z0-9.:/_?=&%~+@-')
                [ -n "$argument" ] || continue
                case $directive in
                    nimbus-ping)
                        result=fail
                        # Ten seconds by the clock, however fast each try fails: an address
                        # without a route yet (IPv6 before the router's advertisement) fails at
                        # once, and counted tries then gave up after five seconds.
                        end=$(( $(cut -d. -f1 /proc/uptime) + 10 ))
                        while :; do
                            if ping -c 1 -W 1 "$argument" >/dev/null 2>&1; then result=ok; break; fi
                            [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ] || break
                            usleep 500000
                        done
                        # A line of its own: busybox init's "press Enter" prompt may end without one.
                        printf '\nNIMBUS-PING %s %s\n' "$argument" "$result"
                        ;;
                    nimbus-fetch)
                        result=fail
                        for try in 1 2 3 4 5; do
                            # This busybox's wget has no -T (it crashes on it): bound it with timeout.
                            if timeout 5 wget -q -O /var/run/fetch.out "$argument" 2>/dev/null; then
                                result=$(head -n 1 /var/run/fetch.out | head -c 4096 | tr -d '\000-\037\177')
                                break
                            fi
                            sleep 1
                        done
                        printf '\nNIMBUS-FETCH %s %s\n' "$argument" "$result"
                        ;;
                esac
            done
        ) </dev/null &
    fi

    # NICs plugged in after boot get DHCP, and each change is reported on a line of its own:
    #   NIMBUS-NIC <ifname> mac=<mac> ip=<IPv4|none>     (a NIC appeared)
    #   NIMBUS-NIC <ifname> gone                          (a NIC was unplugged)
    (
        known=" $(ls /sys/class/net | tr '\n' ' ') "
        while true; do
            sleep 1
            now=" $(ls /sys/class/net | tr '\n' ' ') "
            for nic in $now; do
                case "$known" in *" $nic "*) continue ;; esac
                ip link set "$nic" up
                udhcpc -i "$nic" -b -t 10 -T 1 -O mtu -x "hostname:$host" -p "/var/run/udhcpc.$nic.pid" >>/var/log/udhcpc.log 2>&1
                nic_ip=none
                [ -s "/var/run/udhcpc.$nic.ip" ] && nic_ip=$(cat "/var/run/udhcpc.$nic.ip")
                printf '\nNIMBUS-NIC %s mac=%s ip=%s\n' "$nic" "$(cat "/sys/class/net/$nic/address")" "$nic_ip"
            done
            for nic in $known; do
                case "$now" in *" $nic "*) continue ;; esac
                [ -f "/var/run/udhcpc.$nic.pid" ] && kill "$(cat "/var/run/udhcpc.$nic.pid")" 2>/dev/null
                printf '\nNIMBUS-NIC %s gone\n' "$nic"
            done
            known=$now
        done
    ) </dev/null &
    """#

    /// Run by udhcpc on every DHCP event. Debian's busybox ships none, and without it a lease is
    /// obtained but never applied to eth0.
    static let udhcpcScript = #"""
    #!/bin/sh
    # udhcpc passes the event as $1 and the lease in the environment ($ip, $mask as a prefix
    # length, $router, $dns, $domain, $mtu). The boot script reads the address from $state.
    state=/var/run/udhcpc.$interface.ip
    case "$1" in
        deconfig)
            ip -4 addr flush dev "$interface"
            ip link set dev "$interface" up
            rm -f "$state"
            ;;
        bound|renew)
            # A renewal with the same address must not flush it: that would cut open connections.
            if [ "$(cat "$state" 2>/dev/null)" != "$ip" ]; then
                ip -4 addr flush dev "$interface"
                ip -4 addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
            fi
            [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
            # With classless static routes (option 121), RFC 3442 says to ignore the router option.
            if [ -n "$staticroutes" ]; then
                while ip -4 route del default dev "$interface" 2>/dev/null; do :; done
                set -- $staticroutes
                while [ $# -ge 2 ]; do
                    ip -4 route replace "$1" via "$2" dev "$interface"
                    shift 2
                done
            elif [ -n "$router" ]; then
                while ip -4 route del default dev "$interface" 2>/dev/null; do :; done
                for gateway in $router; do
                    ip -4 route add default via "$gateway" dev "$interface" && break
                done
            fi
            {
                [ -n "$domain" ] && echo "search $domain"
                for server in $dns; do echo "nameserver $server"; done
            } >/etc/resolv.conf.new && mv /etc/resolv.conf.new /etc/resolv.conf
            echo "$ip" >"$state"
            ;;
    esac
    exit 0
    """#

    /// Prints `KEY VALUE` for each top-level string member of a JSON object whose key is in
    /// `-v keys="…"`. A tokenizer rather than sed: meta_data.json nests objects whose members
    /// share the names we want (`keys[].name`, `meta.hostname`), and busybox has no jq.
    static let metadataAwk = #"""
    BEGIN { n = split(keys, list, " "); for (i = 1; i <= n; i++) wanted[list[i]] = 1 }
    { text = text $0 "\n" }
    END {
        depth = 0; expect = ""; key = ""
        len = length(text)
        for (i = 1; i <= len; i++) {
            c = substr(text, i, 1)
            if (c == "\"") {
                s = ""
                for (i++; i <= len; i++) {
                    c = substr(text, i, 1)
                    if (c == "\\") {
                        i++; c = substr(text, i, 1)
                        if (c == "n" || c == "r" || c == "t") c = " "
                    } else if (c == "\"") break
                    s = s c
                }
                if (depth == 1 && expect == "key") key = s
                else if (depth == 1 && expect == "value" && (key in wanted) && !(key in seen)) { seen[key] = 1; print key, s }
            } else if (c == "{" || c == "[") { depth++; if (depth == 1) expect = "key" }
            else if (c == "}" || c == "]") depth--
            else if (depth == 1 && c == ":") expect = "value"
            else if (depth == 1 && c == ",") expect = "key"
        }
    }
    """#

    /// What busybox acpid runs for the ACPI power button, i.e. QEMU's `system_powerdown`.
    static let powerButtonScript = #"""
    #!/bin/sh
    exec poweroff
    """#

    /// busybox init: the boot script, then a root shell on the console (after Enter) for
    /// debugging. Nothing to unmount at power-off: the guest runs from its initramfs.
    static let inittab = #"""
    ::sysinit:/etc/init.d/rcS
    ::askfirst:-/bin/sh
    ::ctrlaltdel:/sbin/reboot
    """#
}
