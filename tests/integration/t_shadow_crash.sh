#!/bin/bash
# t_shadow_crash: t_crash.sh's SIGKILL rounds on a memory namespace with a
# shadow file (docs/operations.md, Durability): acknowledged writes, fsync'd or older than
# flush-max-ms, survive; nothing torn, nothing deleted comes back; the
# shadow passes recfs-check.
ITEST_ENGINE=memory
export ITEST_ENGINE
exec bash "$(dirname "$0")/t_crash.sh" "$@"
