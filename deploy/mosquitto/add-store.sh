#!/bin/sh
# Gives a store its login on the chain's broker: username "<org>/<store>" with a fresh random
# password, added to the broker's password file (hashed by mosquitto_passwd), and the password
# written to a 0600 file to install on the store's gateway as its sync.password_file.
# The password never appears on a command line or in the output: it goes to mosquitto_passwd
# on its standard input (not with -b, which would show it in the process table).
#
#   add-store.sh [--rotate] <org> <store>
#
# Environment: PASSWD_FILE (default /etc/mosquitto/storefront/passwd), OUT_DIR (default
# ./stores): the password is written to $OUT_DIR/<org>/<store>.password.
# Then reload the broker so it reads the new entry: systemctl reload mosquitto.
set -eu

usage() {
	echo "usage: $0 [--rotate] <org> <store>" >&2
	echo "  adds the broker login <org>/<store>; --rotate replaces an existing one's password" >&2
	exit 2
}

rotate=false
if [ "${1:-}" = "--rotate" ]; then
	rotate=true
	shift
fi
[ $# -eq 2 ] || usage
org=$1
store=$2
passwd_file=${PASSWD_FILE:-/etc/mosquitto/storefront/passwd}
out_dir=${OUT_DIR:-stores}

# The same ids the agent's config has (store.org, store.id), as topic levels: letters,
# digits, '-', '_', '.', at most 64 bytes (protocol/src/topic.rs refuses '/', '+', '#').
check_id() {
	case $2 in
	'' | *[!A-Za-z0-9_.-]*)
		echo "error: $1 \"$2\" must be letters, digits, '-', '_' or '.' (it becomes a topic level and half of the username); fix: use the store's store.org / store.id as written in its config" >&2
		exit 2
		;;
	esac
	if [ ${#2} -gt 64 ]; then
		echo "error: $1 \"$2\" is longer than 64 characters; fix: use a shorter id in the store's config and here" >&2
		exit 2
	fi
}
check_id org "$org"
check_id store "$store"
user="$org/$store"

if [ ! -e "$passwd_file" ]; then
	(umask 077 && : >"$passwd_file")
	# mosquitto drops root for its own user before it reads the file.
	if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
		chown mosquitto: "$passwd_file"
	fi
fi
exists=$(awk -F: -v u="$user" '$1 == u { found = 1 } END { print found ? "yes" : "no" }' "$passwd_file")
if [ "$exists" = yes ] && [ "$rotate" = false ]; then
	echo "error: $user already has a login in $passwd_file; fix: add --rotate to give it a new password" >&2
	exit 1
fi

password_out="$out_dir/$org/$store.password"
if [ -e "$password_out" ] && [ "$rotate" = false ]; then
	echo "error: $password_out already exists; fix: install it on the store and remove it, or add --rotate" >&2
	exit 1
fi

# 24 random bytes: 32 characters of URL-safe base64.
trap 'rm -f "$password_out.tmp"' EXIT
password=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
(umask 077 && mkdir -p "$out_dir/$org")
(umask 077 && printf '%s\n' "$password" >"$password_out.tmp")
printf '%s\n%s\n' "$password" "$password" | mosquitto_passwd "$passwd_file" "$user" >/dev/null
mv "$password_out.tmp" "$password_out"

echo "added broker login $user to $passwd_file"
echo "its password is in $password_out (mode 0600): install it on the store as sync.password_file"
echo "with sync.username = \"$user\"; then reload the broker: systemctl reload mosquitto"
