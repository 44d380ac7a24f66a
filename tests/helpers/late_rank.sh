#!/bin/bash
# torchrun --no-python entry point for tests: rank 1 starts $LATE_RANK_S seconds after rank 0
# (as a slow node or a busy file system makes it), then runs the command given.
[ "${RANK:-0}" = 1 ] && sleep "${LATE_RANK_S:-1.5}"
exec "$@"
