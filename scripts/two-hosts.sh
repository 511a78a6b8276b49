#!/usr/bin/env bash
# Two "hosts" on this machine, in network namespaces joined by a veth pair, and data-parallel
# training across them with mpirun over TCP: the path two real machines take (only the
# launcher's remote shell differs: `ip netns exec` instead of ssh). Needs root (ip netns),
# Open MPI and the MPI addon. Writes runs/two-hosts/allreduce.json (all-reduce seconds by size
# over the link, read by `npm run bench -- --only distributed`) and trains a tiny GPT.
#
#   sudo scripts/two-hosts.sh [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:-30}"
A=plinth-h1 B=plinth-h2 IPA=10.77.0.1 IPB=10.77.0.2
OUT=runs/two-hosts
mkdir -p "$OUT"
TMP=$(mktemp -d)
drop_hosts() {
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap 'drop_hosts; rm -rf "$TMP"' EXIT
drop_hosts
ip netns add "$A"
ip netns add "$B"
ip link add veth-h1 netns "$A" type veth peer name veth-h2 netns "$B"
ip -n "$A" addr add "$IPA/24" dev veth-h1
ip -n "$B" addr add "$IPB/24" dev veth-h2
for ns in "$A" "$B"; do
  ip -n "$ns" link set lo up
done
ip -n "$A" link set veth-h1 up
ip -n "$B" link set veth-h2 up
ip -n "$A" neigh flush all && ip -n "$A" route get "$IPB" >/dev/null
echo "two hosts: $A ($IPA) and $B ($IPB), linked by a veth pair"

# mpirun's remote shell: run the command in the namespace that holds the host's address.
cat >"$TMP/netns-rsh" <<RSH
#!/bin/sh
host="\$1"; shift
case "\$host" in
  $IPA) ns=$A ;;
  $IPB) ns=$B ;;
  *) echo "netns-rsh: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" sh -c "\$*"
RSH
chmod +x "$TMP/netns-rsh"
printf '%s slots=1\n%s slots=1\n' "$IPA" "$IPB" >"$TMP/hosts"

mpi() {
  ip netns exec "$A" mpirun --allow-run-as-root -np 2 --hostfile "$TMP/hosts" --map-by node --bind-to none \
    --mca plm_rsh_agent "$TMP/netns-rsh" --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 \
    --mca oob_tcp_if_include 10.77.0.0/24 -x PLINTH_THREADS=1 -x PATH -x OMPI_MCA_mpi_yield_when_idle=1 "$@"
}

echo "all-reduce over TCP between the hosts (bench/distributed_child.js):"
mpi node dist/bench/distributed_child.js '{"mode":"allreduce","sizes":[4096,65536,1048576,4194304,16777216]}' | tee "$OUT/allreduce.json"

echo "training a tiny GPT across the two hosts ($STEPS steps):"
rm -rf "$OUT/run"
mpi node dist/src/cli/main.js pretrain --data moby-dick --size tiny --steps "$STEPS" --vocab 512 --batch 8 --ctx 32 --lr 5e-3 --warmup 5 --out "$OUT/run"
