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

# The registry's credentials, made by provision.sh and readable by root only
# (provision/registry.yml names the htpasswd file in it).
registry_credentials=/etc/whoami-registry

# in_registry HOST/REPOSITORY:TAG: the image is in the registry at HOST,
# which speaks plain HTTP (the project's own, on 127.0.0.1) and wants the
# credentials of $registry_credentials (given to curl in a file, never on
# its command line).
in_registry() {
	local host=${1%%/*} rest=${1#*/}
	curl -fsS -o /dev/null -K "$registry_credentials/curlrc" \
		-H "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json" \
		"http://$host/v2/${rest%:*}/manifests/${rest##*:}" 2>/dev/null
}
