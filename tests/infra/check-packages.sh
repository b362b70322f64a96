#!/usr/bin/env bash
# Keeps docker/Dockerfile and scripts/packages.txt from drifting apart, since
# no Docker engine runs here to build the image:
#   1. packages.txt has [build], [runtime] and [test] sections, no duplicates;
#   2. every apt-get install in the Dockerfile installs exactly
#      $(bash …/deps.sh --list SECTION) and nothing typed in by hand: [build]
#      in the build stage, [runtime] in the final stage, both stages copy
#      scripts/packages.txt and scripts/deps.sh, and that list has the same
#      packages as an independent reading of packages.txt;
#   3. the build stage copies every top-level directory CMakeLists.txt builds
#      from (outside the unit tests, which the image does not build);
#   4. every shared library the built fhirsched binary loads belongs to a
#      [runtime] package or to a package every debian:bookworm image has.
# Registered in CMakeLists.txt as the ctest `infra_packages` (label unit).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dockerfile=$root/docker/Dockerfile
packages=$root/scripts/packages.txt
deps=$root/scripts/deps.sh

# In every debian:bookworm image (apt and dpkg need them), so never listed.
BASE_IMAGE_PACKAGES="libc6 libgcc-s1 libstdc++6 zlib1g"

failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
ok() {
    echo "ok: $*"
}

# An independent reading of packages.txt, to hold deps.sh --list to account.
section_of_file() {
    awk -v want="[$1]" '
        /^[[:space:]]*(#|$)/ { next }
        /^\[/ { in_section = ($1 == want); next }
        in_section { print $1 }
    ' "$packages"
}

check_package_file() {
    local section listed
    for section in build runtime test; do
        listed=$(section_of_file "$section")
        if [ -z "$listed" ]; then
            fail "scripts/packages.txt has no [$section] section (or it is empty)"
            continue
        fi
        if [ "$(bash "$deps" --list "$section")" != "$listed" ]; then
            fail "scripts/deps.sh --list $section disagrees with scripts/packages.txt"
        fi
    done
    local dups bad
    dups=$(grep -Ev '^[[:space:]]*(#|$|\[)' "$packages" | awk '{ print $1 }' | sort | uniq -d)
    [ -z "$dups" ] || fail "packages listed twice in scripts/packages.txt: $dups"
    bad=$(grep -Ev '^[[:space:]]*(#|$)' "$packages" | grep -Ev '^\[[a-z0-9_-]+\]$|^[a-z0-9][a-z0-9+.-]+$' || true)
    [ -z "$bad" ] || fail "lines in scripts/packages.txt that are neither a section nor one package: $bad"
    ok "scripts/packages.txt sections build, runtime, test"
}

# The Dockerfile as logical lines (continuations joined), each prefixed with
# the number of the stage it belongs to.
dockerfile_lines() {
    awk '
        { line = line $0 }
        /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, " ", line); next }
        {
            if (line ~ /^[[:space:]]*FROM[[:space:]]/) stage++
            if (line !~ /^[[:space:]]*(#|$)/) print stage "\t" line
            line = ""
        }
    ' "$dockerfile"
}

check_dockerfile() {
    local lines stages last_stage first_from
    lines=$(dockerfile_lines)
    stages=$(grep -c $'^[0-9]*\tFROM ' <<<"$lines" || true)
    [ "$stages" -ge 2 ] || fail "docker/Dockerfile is not multi-stage ($stages FROM lines)"
    last_stage=$stages

    while IFS=$'\t' read -r stage line; do
        case "$line" in
            FROM*) [[ "$line" =~ ^FROM\ debian:bookworm([[:space:]]|$) ]] || fail "stage $stage is not debian:bookworm: $line" ;;
        esac
    done <<<"$lines"
    first_from=$(grep -m1 $'^1\tFROM ' <<<"$lines" | cut -f2)
    [[ "$first_from" =~ [[:space:]]AS[[:space:]]+build$ ]] || fail "the first stage must be 'FROM debian:bookworm AS build'"

    # Every install: the apt-get install command up to the next && or ;.
    local installs n=0 stage cmd args
    installs=$(grep -o $'^[0-9]*\t.*apt-get install[^;&]*' <<<"$lines" | sed -E $'s/^([0-9]+)\t.*(apt-get install)/\\1\t\\2/' || true)
    while IFS=$'\t' read -r stage cmd; do
        [ -n "$stage" ] || continue
        n=$((n + 1))
        # Options, then the list from deps.sh, then nothing else.
        args=$(sed -E 's/^apt-get install[[:space:]]*//; s/[[:space:]]+/ /g; s/ $//' <<<"$cmd")
        if [[ "$args" =~ ^(-[-a-zA-Z]+\ )*\$\(bash\ [^[:space:]]*/scripts/deps\.sh\ --list\ ([a-z]+)\)$ ]]; then
            local section=${BASH_REMATCH[2]}
            if [ "$stage" = 1 ] && [ "$section" != build ]; then
                fail "the build stage installs [$section], expected [build]"
            elif [ "$stage" = "$last_stage" ] && [ "$section" != runtime ]; then
                fail "the runtime stage installs [$section], expected [runtime]"
            fi
            if ! grep -q $'^'"$stage"$'\tCOPY .*scripts/deps.sh' <<<"$lines" ||
                ! grep -q $'^'"$stage"$'\tCOPY .*scripts/packages.txt' <<<"$lines"; then
                fail "stage $stage runs deps.sh --list but does not COPY scripts/deps.sh and scripts/packages.txt"
            fi
        else
            fail "stage $stage installs packages not taken from scripts/packages.txt: apt-get install $args"
        fi
    done <<<"$installs"
    grep -q $'^1\t.*deps\\.sh --list build' <<<"$lines" || fail "the build stage does not install [build]"
    grep -q $'^'"$last_stage"$'\t.*deps\\.sh --list runtime' <<<"$lines" || fail "the runtime stage does not install [runtime]"
    ok "docker/Dockerfile installs [build] and [runtime] from scripts/packages.txt ($n apt-get install lines)"

    # Directories the non-test part of CMakeLists.txt names, e.g. src/…, cmake/…
    local dir dirs
    dirs=$(awk '/^if\(FHIRSCHED_(TESTS|FUZZ)\)/ { skip = 1 } !skip { print } /^endif\(\)/ { skip = 0 }' "$root/CMakeLists.txt" |
        sed 's/#.*//' | grep -oE '(^|[[:space:]"/}])[a-z_]+/[A-Za-z0-9_.-]' | sed -E 's/^[[:space:]"/}]//; s:/.*::' | sort -u)
    for dir in $dirs; do
        [ -d "$root/$dir" ] || continue
        grep -qE $'^1\tCOPY ('"$dir"'|\\.)[/ ]' <<<"$lines" || fail "the build stage does not COPY $dir/, which CMakeLists.txt uses"
    done
    ok "the build stage copies what CMakeLists.txt builds from: $(tr '\n' ' ' <<<"$dirs")"
}

package_of_file() {
    local path=$1 real candidate
    real=$(readlink -f "$path")
    for candidate in "$path" "$real" "${real#/usr}" "/usr$path"; do
        dpkg-query -S "$candidate" 2>/dev/null | head -n1 | cut -d: -f1 && return 0
    done
    return 1
}

check_runtime_libraries() {
    local bin=
    for bin in "$root/build/fhirsched" "$root/build-asan/fhirsched"; do
        [ -x "$bin" ] && break
        bin=
    done
    if [ -z "$bin" ]; then
        ok "no built fhirsched yet: runtime library check skipped"
        return 0
    fi
    local runtime needed lib path pkg checked=0
    runtime=" $(section_of_file runtime | tr '\n' ' ') $BASE_IMAGE_PACKAGES "
    needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    for lib in $needed; do
        case "$lib" in
            libasan.so.* | libubsan.so.* | ld-linux*) continue ;; # sanitizer runtimes of build-asan
        esac
        path=$(ldd "$bin" | awk -v lib="$lib" '$1 == lib && $3 ~ /^\// { print $3; exit }')
        if [ -z "$path" ]; then
            fail "$lib, needed by $bin, is not found on this machine"
            continue
        fi
        if ! pkg=$(package_of_file "$path"); then
            fail "$path ($lib) belongs to no Debian package"
            continue
        fi
        case "$runtime" in
            *" $pkg "*) checked=$((checked + 1)) ;;
            *) fail "$lib comes from package $pkg, which is not in the [runtime] section of scripts/packages.txt" ;;
        esac
    done
    ok "$checked shared libraries of ${bin#"$root"/} come from [runtime] or the base image"
}

check_package_file
check_dockerfile
check_runtime_libraries

if [ "$failures" -gt 0 ]; then
    echo "check-packages: $failures failure(s)"
    exit 1
fi
echo "check-packages: all checks passed"
