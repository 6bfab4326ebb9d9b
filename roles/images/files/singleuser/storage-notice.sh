# Sourced by every interactive bash (/etc/bash.bashrc), so each new terminal of a user over
# the storage limit shows the notice the spawner set (HUBFLEET_STORAGE_NOTICE).
if [ -n "${HUBFLEET_STORAGE_NOTICE:-}" ]; then
  printf '\n\033[1;33m%s\033[0m\n\n' "$HUBFLEET_STORAGE_NOTICE"
fi
