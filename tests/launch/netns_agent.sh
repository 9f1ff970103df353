#!/bin/sh
# tests/launch/netns_agent.sh: an ssh stand-in that mpirun uses as its launch agent
# (--mca plm_rsh_agent) in tests/launch/multihost_netns.py, where each "host" is a network
# namespace. Called like ssh: `netns_agent.sh [-flags] HOST COMMAND...`; runs COMMAND (the words
# joined by spaces, as ssh does, for sh to parse) inside the namespace that HOST maps to.
# environment: SW_NETNS_HOSTS  "HOST=NAMESPACE HOST=NAMESPACE ..." (required)
#              SW_NETNS_LOG    file to which each launch appends "HOST NAMESPACE-ENTERED PID"
#              SW_NETNS_TMPDIR a directory: the command gets TMPDIR=SW_NETNS_TMPDIR/NAMESPACE, a /tmp
#                              of its own host. The namespaces share one file system and one host
#                              name, and daemons of "different hosts" in one session directory
#                              (TMPDIR/ompi.HOST.UID/...) race creating and removing it.
while [ $# -gt 0 ]; do
  case $1 in
    -*) shift ;;  # ssh-style flags (mpirun passes none to an agent it does not know)
    *) break ;;
  esac
done
if [ $# -lt 2 ]; then
  echo "netns_agent.sh: usage: netns_agent.sh HOST COMMAND..." >&2
  exit 255
fi
host=$1
shift
ns=
for pair in ${SW_NETNS_HOSTS:-}; do
  if [ "${pair%%=*}" = "$host" ]; then ns=${pair#*=}; fi
done
if [ -z "$ns" ]; then
  echo "netns_agent.sh: host '$host' is not in SW_NETNS_HOSTS='${SW_NETNS_HOSTS:-}'" >&2
  exit 255  # what ssh returns when it cannot connect
fi
export SW_NETNS_HOST="$host"
if [ -n "${SW_NETNS_TMPDIR:-}" ]; then
  TMPDIR=$SW_NETNS_TMPDIR/$ns
  mkdir -p "$TMPDIR" || exit 255
  export TMPDIR
fi
# Inside the namespace: record which namespace the command really runs in (ip netns identify
# names the namespace of the calling process), then run the command as ssh's remote shell would.
# shellcheck disable=SC2016  # expanded by the shell inside the namespace
exec ip netns exec "$ns" sh -c '
  if [ -n "${SW_NETNS_LOG:-}" ]; then echo "$SW_NETNS_HOST $(ip netns identify) $$" >>"$SW_NETNS_LOG"; fi
  exec sh -c "$1"' netns_agent "$*"
