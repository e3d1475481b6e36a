#!/bin/sh
# Entrypoint of the Shardline image: prepare the environment, then exec the command (a
# worker by default), so the command is PID 1 and gets SIGTERM itself.
#
# - FLOWER_BASIC_AUTH_FILE: a file of "user:password" lines (a compose or Kubernetes secret)
#   becomes FLOWER_BASIC_AUTH (Flower takes credentials only from its flags or environment;
#   Shardline itself reads /run/secrets/SHARDLINE_API_KEY directly, no help needed).
# - Flower without authentication is refused: it shows every task and can revoke tasks and
#   shut workers down. Set FLOWER_BASIC_AUTH(_FILE), FLOWER_AUTH (OAuth) or pass --basic_auth.
set -eu

if [ -n "${FLOWER_BASIC_AUTH_FILE:-}" ]; then
    if [ ! -r "$FLOWER_BASIC_AUTH_FILE" ]; then
        echo "shardline-entrypoint: cannot read FLOWER_BASIC_AUTH_FILE ($FLOWER_BASIC_AUTH_FILE)" >&2
        exit 2
    fi
    # One credential a line; Flower wants them comma separated. Blank lines and CRs dropped.
    FLOWER_BASIC_AUTH=$(tr -d '\r' <"$FLOWER_BASIC_AUTH_FILE" | sed '/^[[:space:]]*$/d' | paste -sd, -)
    if [ -z "$FLOWER_BASIC_AUTH" ]; then
        echo "shardline-entrypoint: $FLOWER_BASIC_AUTH_FILE holds no credential" >&2
        exit 2
    fi
    export FLOWER_BASIC_AUTH
    unset FLOWER_BASIC_AUTH_FILE
fi

runs_flower=false
has_auth_flag=false
for arg in "$@"; do
    case "$arg" in
        flower) runs_flower=true ;;
        --basic_auth=* | --basic-auth=* | --auth=*) has_auth_flag=true ;;
    esac
done
if [ "$runs_flower" = true ] && [ "$has_auth_flag" = false ] \
    && [ -z "${FLOWER_BASIC_AUTH:-}" ] && [ -z "${FLOWER_AUTH:-}" ]; then
    echo "shardline-entrypoint: refusing to start Flower without authentication;" \
        "set FLOWER_BASIC_AUTH_FILE or FLOWER_BASIC_AUTH (user:password)" >&2
    exit 2
fi

exec "$@"
