#!/usr/bin/env bash
# Large real corpora for corpus preparation, outside the test suite: installs Debian's Go standard
# library source (golang-1.19-src: ~80 MB of Go in 7,800 files) and the Linux kernel source
# (linux-source-6.1: a 140 MB .tar.xz, 1.3 GB of C and more in 78,000 files when unpacked), then
# measures preparing them (peak RSS, MB/s on 1 and 2 threads beside @huggingface/tokenizers):
# `npm run bench -- --only data` with PLINTH_PREP_CORPORA naming the kernel (all of it, and its
# drivers/gpu + drivers/net, ~570 MB).
#
#   bash scripts/prepare-large-corpus.sh                 # install, unpack into $PLINTH_CORPORA, bench
#   PLINTH_CORPORA=/data/corpora bash scripts/prepare-large-corpus.sh
#   bash scripts/prepare-large-corpus.sh --pretrain      # then: plinth pretrain on the kernel (tiny model, 20 steps)
#
# Needs root (apt-get), ~1.5 GB of disk for the unpacked kernel, and 10-20 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPORA=${PLINTH_CORPORA:-/tmp/plinth-corpora}
LINUX=$CORPORA/linux-source-6.1

if ! [ -d /usr/share/go-1.19/src ] || ! ls /usr/src/linux-source-6.1.tar.xz >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-1.19-src linux-source-6.1
fi
if ! [ -d "$LINUX" ]; then
  mkdir -p "$CORPORA"
  echo "unpacking /usr/src/linux-source-6.1.tar.xz into $CORPORA ..."
  tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$CORPORA"
fi
[ -f dist/src/data/prepare.js ] || node node_modules/typescript/bin/tsc -p .

if [ "${1:-}" = "--pretrain" ]; then
  node dist/src/cli/main.js pretrain --data "$LINUX" --size tiny --steps 20 --vocab 4096 --out "$CORPORA/run-linux"
  exit
fi
PLINTH_PREP_CORPORA="linux-drivers-gpu+net=$LINUX/drivers/gpu+$LINUX/drivers/net,linux-source-6.1=$LINUX" \
  node dist/bench/run.js --only data
