# shellcheck shell=bash
# Sourced by the project's scripts (provision.sh, the cluster's cluster.sh).

# load_facts ROOT: sets the facts of ROOT/.env (names, addresses, versions),
# as Compose and the Makefile read them, except those the environment
# already sets.
load_facts() {
	local line key
	while IFS= read -r line || [ -n "$line" ]; do
		case $line in '' | '#'*) continue ;; esac
		key=${line%%=*}
		[ -n "${!key+set}" ] || eval "$line"
	done <"$1/.env"
}

# in_registry HOST/REPOSITORY:TAG: the image is in the registry at HOST,
# which speaks plain HTTP (the project's own, on 127.0.0.1).
in_registry() {
	local host=${1%%/*} rest=${1#*/}
	curl -fsS -o /dev/null \
		-H "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json" \
		"http://$host/v2/${rest%:*}/manifests/${rest##*:}" 2>/dev/null
}
