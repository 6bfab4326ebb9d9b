#!/bin/sh
# A docker-stacks style start: as root, chown the home if asked (CHOWN_HOME), then
# drop to NB_UID:NB_GID for good and run the command (tini reaps the server's children).
set -eu
if [ "$(id -u)" = 0 ]; then
  NB_USER=${NB_USER:-jovyan} NB_UID=${NB_UID:-1000} NB_GID=${NB_GID:-100}
  if [ -n "${CHOWN_HOME:-}" ]; then
    chown "$NB_UID:$NB_GID" "/home/$NB_USER"
  fi
  export HOME="/home/$NB_USER" USER="$NB_USER"
  exec setpriv --reuid="$NB_UID" --regid="$NB_GID" --clear-groups -- tini -g -- "$@"
fi
exec tini -g -- "$@"
