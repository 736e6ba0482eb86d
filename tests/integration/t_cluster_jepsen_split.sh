#!/bin/bash
# t_cluster_jepsen_split: the fault-injection test's split schedule as make
# check (and so CI) runs it: 5 nodes in network namespaces (root, iproute2,
# nftables: scripts/install-deps.sh; skipped without them) split into
# n1 n2 n3 | n4 n5 from 5 s to 21 s with writes on both sides, then
# healed; seed 1, the clients running 25 s.  About 35 s.  Longer or other
# runs: t_cluster_jepsen.sh with JEPSEN_SCHEDULE=split and JEPSEN_SEED /
# JEPSEN_DURATION_S (docs/cluster.md, "Fault-injection test").
JEPSEN_SCHEDULE=split
JEPSEN_SEED=1
JEPSEN_DURATION_S=25
export JEPSEN_SCHEDULE JEPSEN_SEED JEPSEN_DURATION_S
exec "$(dirname "$0")/t_cluster_jepsen.sh"
