#!/usr/bin/env bash
# Brings up the services the tests talk to: `scripts/services.sh [up|down|status]`.
# Each one is used where it already answers at its FOLDLINE_* address, else started (and
# installed if needed) by its own script: postgres.sh, redis.sh, kafka.sh.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
services=(postgres redis kafka)

case "${1:-up}" in
    up)
        # Each script says what it installs and starts; the times show what a fresh machine costs.
        for s in "${services[@]}"; do
            started=$SECONDS
            "$here/$s.sh" start
            printf '[foldline] %s ready after %ds\n' "$s" "$((SECONDS - started))" >&2
        done
        ;;
    down) for s in "${services[@]}"; do "$here/$s.sh" stop || true; done ;;
    status) rc=0; for s in "${services[@]}"; do "$here/$s.sh" status || rc=1; done; exit $rc ;;
    *) echo "usage: $0 [up|down|status]" >&2; exit 2 ;;
esac
