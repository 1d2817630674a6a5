#!/bin/bash
# isolated.sh SCRATCH NETWORK COMMAND...: run COMMAND as one shard of the suite (tests/suite.py),
# inside the mount and pid namespaces that suite.py made for it (unshare), with a private /etc,
# /home and /root (overlays whose changes go to SCRATCH), /tmp, /run/screen and /run/netns, so
# that the users, keys, screen sessions and test networks of one shard never meet another's.
# NETWORK is "own" when the shard has a network namespace of its own (its 127.0.2.N are its
# own: loopback is brought up, and one documentation address is added, 192.0.2.1 on a veth
# pair that leads nowhere, as slurmd's getaddrinfo(AI_ADDRCONFIG) needs an address that is not
# loopback), or "shared" for the one shard that keeps this machine's network (PyPI, apt).
# The shell stays process 1 of the pid namespace, so that it reaps what is orphaned there;
# when it exits, the kernel ends every process that is left in the namespace.
set -eu
scratch=$1 network=$2
shift 2

if [ "$network" = own ]; then
  ip link set lo up
  ip link add ipp-suite0 type veth peer name ipp-suite1
  ip addr add 192.0.2.1/32 dev ipp-suite0
  ip link set ipp-suite0 up
  ip link set ipp-suite1 up
fi
for folder in etc home root; do
  mkdir -p "$scratch/$folder.upper" "$scratch/$folder.work"
  mount -t overlay overlay \
    -o "lowerdir=/$folder,upperdir=$scratch/$folder.upper,workdir=$scratch/$folder.work" "/$folder"
done
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /run/screen /run/netns
mount -t tmpfs -o mode=1777 tmpfs /run/screen
chgrp utmp /run/screen
mount -t tmpfs tmpfs /run/netns
"$@"
