# shellcheck shell=bash
# Sourced by the project's scripts (provision.sh and what it sources, the
# images' build.sh, the cluster's cluster.sh).

# step WHAT: says what the script does now. fail WHY: says, in one line,
# why it stops and what to do, and exits 1.
step() { printf '==> %s\n' "$*"; }
fail() {
	printf 'whoami: %s\n' "$*" >&2
	exit 1
}

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
# shellcheck disable=SC2034 # used by the scripts that source this file
registry_credentials=/etc/whoami-registry

# in_registry HOST/REPOSITORY:TAG: the registry at HOST holds the image.
# Asked by the project's registry client (cmd/registry), with the
# credentials of docker login; it prints why on anything but "not there".
in_registry() {
	registry_client has "$1"
}

# registry_client ARGS...: runs the project's registry client, built first
# (go run would add "exit status 1" to its own answer), and returns its
# exit status.
registry_client() {
	local tmp status=0
	tmp=$(mktemp -d)
	if ! (cd "$(dirname "${BASH_SOURCE[0]}")/.." && go build -o "$tmp/registry" ./cmd/registry); then
		rm -rf "$tmp"
		return 2
	fi
	"$tmp/registry" "$@" || status=$?
	rm -rf "$tmp"
	return "$status"
}
