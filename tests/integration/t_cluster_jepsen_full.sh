#!/bin/bash
# t_cluster_jepsen_full: the fault-injection test's full schedule as make
# check (and so CI) runs it: 4 nodes in network namespaces (root, iproute2,
# nftables: scripts/install-deps.sh; skipped without them), seed 10, the
# clients running 45 s.  Seed 10 draws, in this order: kill and restart,
# removal for good, a node added, a pause past the heartbeat timeout, an
# isolation, another pause, another node added (each kind in its first
# 30 s).  About 60 s.  Longer or other runs: t_cluster_jepsen.sh with
# JEPSEN_SCHEDULE=full and JEPSEN_SEED / JEPSEN_DURATION_S (docs/cluster.md,
# "Fault-injection test").
JEPSEN_SCHEDULE=full
JEPSEN_SEED=10
JEPSEN_DURATION_S=45
export JEPSEN_SCHEDULE JEPSEN_SEED JEPSEN_DURATION_S
exec "$(dirname "$0")/t_cluster_jepsen.sh"
