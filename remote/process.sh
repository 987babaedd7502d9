# shellcheck shell=sh
# Whether a detached run is still alive, told from what the run records of itself in its run
# directory: `pid` holds "PID BOOT_ID START" (START the process's start time in clock ticks since
# boot). Shared by deploy.sh, deploy-run.sh and follow.sh.

# The host's boot id: a run recorded before a reboot never counts as alive.
boot_id() { cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown; }

# "STATE START" of a process, from /proc/PID/stat after its command's closing parenthesis (the
# command may hold spaces); nothing when there is no such process.
proc_state() {
  # The fields are words: split on purpose.
  # shellcheck disable=SC2046
  set -- $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null)
  [ "$#" -ge 20 ] && echo "$1 ${20}"
}

# Records the calling shell as the run in directory $1.
record_run() {
  printf '%s %s %s\n' "$$" "$(boot_id)" "$(proc_state "$$" | cut -d ' ' -f 2)" > "$1/pid.tmp" && mv -f "$1/pid.tmp" "$1/pid"
}

# Whether the run in directory $1 is gone without a verdict: its process ended (or is a zombie, or
# its PID now belongs to another process) or the host restarted since. A run that has not
# recorded itself yet counts as alive for LOST_AFTER seconds (default 30) from its start.
run_lost() {
  if [ -f "$1/pid" ]; then
    read -r pid boot start < "$1/pid" || return 1
    [ "$boot" = "$(boot_id)" ] || return 0
    if [ -d /proc/self ]; then
      state=$(proc_state "$pid")
      [ -n "$state" ] || return 0
      [ "${state%% *}" != Z ] || return 0
      [ -z "$start" ] || [ "${state#* }" = "$start" ] || return 0
      return 1
    fi
    if kill -0 "$pid" 2>/dev/null; then return 1; fi
    return 0
  fi
  [ "$(( $(date +%s) - $(stat -c %Y "$1/started" 2>/dev/null || date +%s) ))" -gt "${LOST_AFTER:-30}" ]
}
