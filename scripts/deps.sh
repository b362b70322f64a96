#!/usr/bin/env bash
# Installs what is missing of the Debian packages in scripts/packages.txt, then
# the Node test dependencies in tests/ (npm ci) when they are missing or stale.
#
#   scripts/deps.sh                  install everything that is missing
#   scripts/deps.sh --list SECTION…  print the packages of those sections
#                                    (docker/Dockerfile uses this, so the image
#                                    and the machines read the same list)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
list_file="$root/scripts/packages.txt"

# Packages of the named sections (all sections when none is named), in file order.
packages() {
    awk -v want=" $* " '
        /^[[:space:]]*(#|$)/ { next }
        /^\[[a-z0-9_-]+\][[:space:]]*$/ { section = substr($1, 2, length($1) - 2); next }
        want == "  " || index(want, " " section " ") { print $1 }
    ' "$list_file"
}

# Names that count as installed: real packages and what they provide. The
# machines' nodejs (NodeSource build) provides and conflicts with "npm", so a
# plain ${Status} look-up of npm would make apt swap Node 20 for Debian's 18.
installed_names() {
    dpkg-query -W -f='${Status}\t${Package}\t${Provides}\n' 2>/dev/null | awk -F'\t' '
        $1 ~ / ok installed$/ {
            print $2
            n = split($3, provides, /, */)
            for (i = 1; i <= n; i++) { sub(/ .*/, "", provides[i]); if (provides[i] != "") print provides[i] }
        }' | sort -u
}

missing_packages() {
    comm -23 <(packages | sort -u) <(installed_names)
}

install_debian_packages() {
    local -a missing
    mapfile -t missing < <(missing_packages)
    [ "${#missing[@]}" -eq 0 ] && return 0

    if [ "$(id -u)" -ne 0 ]; then
        echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
        echo "deps.sh: install them with:" >&2
        echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    echo "deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# npm ci only when needed: it deletes and refills node_modules every time.
install_node_modules() {
    local tests="$root/tests"
    [ -f "$tests/package.json" ] || return 0
    if [ -f "$tests/package-lock.json" ]; then
        if [ ! -d "$tests/node_modules" ] || [ "$tests/package-lock.json" -nt "$tests/node_modules" ]; then
            echo "deps.sh: npm ci --prefix tests"
            npm ci --prefix "$tests" --no-audit --no-fund --loglevel=error
            touch "$tests/node_modules"
        fi
    elif [ ! -d "$tests/node_modules" ]; then
        # No lock file committed yet: install once (this writes the lock).
        echo "deps.sh: npm install --prefix tests (no package-lock.json yet)"
        npm install --prefix "$tests" --no-audit --no-fund --loglevel=error
    fi
}

main() {
    [ -r "$list_file" ] || { echo "deps.sh: cannot read $list_file" >&2; exit 1; }
    if [ "${1:-}" = "--list" ]; then
        shift
        packages "$@"
        return 0
    fi
    [ "$#" -eq 0 ] || { echo "usage: $0 [--list SECTION...]" >&2; exit 2; }
    install_debian_packages
    install_node_modules
}

main "$@"
