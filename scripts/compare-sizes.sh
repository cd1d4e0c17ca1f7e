#!/usr/bin/env bash
# Prints the size comparison of the two whoami images as a Markdown table.
# Sizes are `docker image inspect -f '{{.Size}}'` (uncompressed bytes), not
# `docker image ls`, whose column means different things on different image
# stores. MB here is 10^6 bytes, as Docker prints it.
# Usage: scripts/compare-sizes.sh GOLANG_IMAGE SINGLE_IMAGE MULTI_IMAGE
set -euo pipefail
golang=${1:?usage: compare-sizes.sh GOLANG_IMAGE SINGLE_IMAGE MULTI_IMAGE}
single=${2:?} multi=${3:?}

size() { docker image inspect -f '{{.Size}}' "$1"; }
row() { awk -v n="$1" -v b="$2" -v note="${3:-}" 'BEGIN { printf "| %-26s | %11d | %8.2f | %s\n", n, b, b / 1e6, note }'; }

# The bare binary, copied out of the multistage image.
container=$(docker create "$multi")
binary=$(docker cp "$container:/whoami" - | tar -tv | awk '{print $3}')
docker rm "$container" >/dev/null

base_note="official image"
case "$(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.description"}}' "$golang")" in
*"rebuilt locally"*) base_note="rebuilt locally (no registry): provision/images/golang" ;;
esac

single_size=$(size "$single")
multi_size=$(size "$multi")
echo "| image                      |       bytes |       MB | note"
echo "|----------------------------|------------:|---------:|-----"
row "$golang" "$(size "$golang")" "$base_note"
row "$single" "$single_size" "Dockerfile.single: one stage on $golang"
row "$multi" "$multi_size" "Dockerfile: multistage, FROM scratch"
row "bare binary (/whoami)" "$binary" "the only file in $multi"
echo
awk -v s="$single_size" -v m="$multi_size" -v a="$single" -v b="$multi" \
	'BEGIN { printf "%s is %.0f times the size of %s (%.1f%% smaller).\n", a, s / m, b, 100 * (1 - m / s) }'
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) CPUs, $(uname -sr), Docker engine $(docker version -f '{{.Server.Version}}'), storage driver $(docker info -f '{{.Driver}}')."
