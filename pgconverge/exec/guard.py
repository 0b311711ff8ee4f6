"""The POSIX sh wrapper around psql or pg_dump on a host reached through a shell (pyinfra's SSH or
local connectors), where pgconverge has no process of its own to hold a secret or watch a child.

The wrapper, in one command line:

1. removes stale password files of ours in ``$TMPDIR`` (``pgconverge-<pid>-*.pgpass`` whose
   creating shell is gone: what a kill -9 of everything leaves);
2. with a password: reads the first line of its stdin (a password-file line) into a new 0600
   file named after itself, and hands the rest of stdin to the tool;
3. starts the tool, then a watcher that
   - removes the password file as soon as the tool holds a socket (libpq reads the password
     file before it opens any connection), where ``/proc`` shows it, else when the tool ends;
   - sends the tool SIGINT (psql cancels its statement and stops its script; the server rolls
     back) when any process that started it is gone: pyinfra killed (``@local``), or the SSH
     connection dropped (its sshd session process exits), then SIGTERM 5 s later;
4. removes the file when the tool ends and exits with the tool's status.

Linux hosts get all of it; hosts without ``/proc`` fall back on ``ps`` for the watch and keep
the password file until the tool ends (still removed by step 1 after a kill -9).
"""

from __future__ import annotations

# A fork-free parent lookup where /proc exists (read is a builtin), ps elsewhere.
_PROLOGUE = r"""umask 077
pgc_ppid() { if [ -r "/proc/$1/stat" ]; then IFS= read -r pgc_s < "/proc/$1/stat" || return 1; pgc_s=${pgc_s##*) }; set -- $pgc_s; echo "$2"; else ps -o ppid= -p "$1" 2>/dev/null | tr -d ' '; fi; }
pgc_alive() { if [ -d /proc/1 ]; then [ -r "/proc/$1/stat" ] || return 1; IFS= read -r pgc_s < "/proc/$1/stat" || return 1; pgc_s=${pgc_s##*) }; case $pgc_s in Z*|X*) return 1;; esac; return 0; else ps -p "$1" >/dev/null 2>&1; fi; }
pgc_nap() { sleep 0.05 2>/dev/null || sleep 1; }
pgc_up=$$; pgc_p=$$; pgc_n=0
while [ "$pgc_n" -lt 12 ]; do pgc_p=$(pgc_ppid "$pgc_p"); [ -n "$pgc_p" ] && [ "$pgc_p" -gt 1 ] 2>/dev/null || break; pgc_up="$pgc_up $pgc_p"; pgc_n=$((pgc_n+1)); done
"""

_SWEEP = r"""pgc_d=${TMPDIR:-/tmp}
for pgc_s in "$pgc_d"/pgconverge-*-*.pgpass; do
  [ -f "$pgc_s" ] || continue
  pgc_p=${pgc_s#"$pgc_d"/pgconverge-}; pgc_p=${pgc_p%%-*}
  case $pgc_p in ''|*[!0-9]*) continue;; esac
  [ "$pgc_p" = "$$" ] || pgc_alive "$pgc_p" || rm -f -- "$pgc_s"
done
pgc_f=$(mktemp "$pgc_d/pgconverge-$$-XXXXXXXX.pgpass") || exit 125
IFS= read -r pgc_l || { rm -f -- "$pgc_f"; exit 125; }
printf '%s\n' "$pgc_l" > "$pgc_f"; pgc_l=
export PGPASSFILE="$pgc_f"
"""

_WATCH = r"""exec 3<&0
{core} <&3 3<&- &
pgc_c=$!
exec 3<&-
unset PGPASSFILE
(
  pgc_i=0; pgc_stop=0
  while pgc_alive "$pgc_c"; do
    if [ -n "$pgc_f" ] && [ -e "$pgc_f" ] && ls -l "/proc/$pgc_c/fd" 2>/dev/null | grep -q 'socket:'; then
      rm -f -- "$pgc_f"
    fi
    if [ "$pgc_stop" = 0 ]; then
      for pgc_p in $pgc_up; do pgc_alive "$pgc_p" || { pgc_stop=1; kill -INT "$pgc_c" 2>/dev/null; break; }; done
    else
      pgc_i=$((pgc_i+1)); [ "$pgc_i" = 100 ] && kill -TERM "$pgc_c" 2>/dev/null
    fi
    pgc_nap
  done
  [ -z "$pgc_f" ] || rm -f -- "$pgc_f"
) </dev/null >/dev/null 2>&1 &
wait "$pgc_c"; pgc_r=$?
[ -z "$pgc_f" ] || rm -f -- "$pgc_f"
exit $pgc_r
"""


def guarded(core: str, password: bool) -> str:
    """`core` (one simple command, already shell-quoted, with its redirections) wrapped as above.
    With `password`, the caller prepends ``passfile_line(password)`` to the command's stdin."""
    return _PROLOGUE + (_SWEEP if password else "pgc_f=\n") + _WATCH.replace("{core}", core)
