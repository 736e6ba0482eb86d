#!/bin/bash
# t_shadow_crash: t_crash.sh's SIGKILL rounds on a memory namespace with a
# shadow file (SPEC 6.2, 6.4): acknowledged writes, fsync'd or older than
# flush-max-ms, survive; nothing torn, nothing deleted comes back; the
# shadow passes recfs-check.
ITEST_ENGINE=memory
export ITEST_ENGINE
exec bash "$(dirname "$0")/t_crash.sh" "$@"
