#!/usr/bin/env bash
# blk-crash: blk-reconnect with the back-end killed by SIGKILL instead of
# stopped with SIGTERM (issue 9, crash-safe reconnect).  Nothing is drained:
# requests the dead back-end had popped are known only from the in-flight
# region (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) that QEMU asked for with
# GET_INFLIGHT_FD and hands back to the next back-end with SET_INFLIGHT_FD;
# that one resumes its rings after them and starts them again.  The guest's
# passes must verify with no I/O error, and the image must match.  Then
# fio verify at iodepth 64 on both queues, and the back-end kills itself
# once a ring holds 32 requests in flight (VHOSTD_TEST_CRASH=inflight:32);
# the next one must start at least those again and fio must verify.  Split
# and packed (packed positions come from the region: blk-reconnect's run.sh).
export CRASH=1
exec "$(dirname "$0")/../blk-reconnect/run.sh" "$@"
