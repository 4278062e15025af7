#!/usr/bin/env bash
# Run the fast test suite under ImageMagick 7 (Q16, then Q16-HDRI) in a Debian trixie chroot, since no
# machine we run on ships IM7 itself. The root is built once into a cache directory outside the repo and
# reused; the repo is copied in on every run, so the host's tree and venv are never touched.
#
#   bash scripts/im7.sh                 # both builds, fast suite
#   bash scripts/im7.sh q16hdri -m slow # one build, any pytest arguments after the build name
#
# Exits 77 (and says why) where this machine cannot do it: not root, no debootstrap to be had, or the root, its
# packages or its venv cannot be installed (no mirror or PyPI reachable).
# MAGICKTUNE_IM7_ROOT moves the root (default /var/cache/magicktune-im7, or $XDG_CACHE_HOME/magicktune-im7
# for a non-root user, who is then told it needs root); MAGICKTUNE_IM7_MIRROR picks the Debian mirror;
# MAGICKTUNE_IM7_TEST_TIMEOUT is the per-test limit (seconds) and MAGICKTUNE_IM7_RUN_TIMEOUT the whole-suite one;
# MAGICKTUNE_IM7_POLICY=FILE puts that policy.xml first on MAGICK_CONFIGURE_PATH in the root (trixie's own policy
# already holds the slow tests' 700 frames, so they skip: `MAGICKTUNE_IM7_POLICY=/etc/ImageMagick-6/policy.xml
# bash scripts/im7.sh q16hdri -m slow` runs them under Debian 12's).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -eq 0 ]; then
    default_root=/var/cache/magicktune-im7
else
    default_root=${XDG_CACHE_HOME:-$HOME/.cache}/magicktune-im7
fi
root=${MAGICKTUNE_IM7_ROOT:-$default_root}
mirror=${MAGICKTUNE_IM7_MIRROR:-http://deb.debian.org/debian}
test_timeout=${MAGICKTUNE_IM7_TEST_TIMEOUT:-600}
run_timeout=${MAGICKTUNE_IM7_RUN_TIMEOUT:-2400}
builds=(q16 q16hdri)
packages=(python3 python3-venv gcc ca-certificates time
          imagemagick-7.q16 libmagickwand-7.q16-dev imagemagick-7.q16hdri libmagickwand-7.q16hdri-dev)

skip() { echo "im7: SKIPPED, $*" >&2; exit 77; }

if [ $# -gt 0 ] && [[ "$1" == q16* ]]; then
    builds=("$1")
    shift
fi
pytest_args=("$@")
[ ${#pytest_args[@]} -gt 0 ] || pytest_args=(-m "not slow")

[ "$(id -u)" -eq 0 ] || skip "chroot needs root (run as root to test under ImageMagick 7)"
if ! command -v debootstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || skip "no debootstrap and no apt-get to install it"
    echo "im7: installing debootstrap" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; } \
        || skip "debootstrap could not be installed"
fi
[ -e /usr/share/debootstrap/scripts/trixie ] || skip "this debootstrap does not know Debian trixie"

mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9

mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null || true
    done
    mounted=()
    # debootstrap mounts /proc and /sys in a root it is building; an interrupted build must not keep them.
    if [ -d "$root.partial" ]; then
        findmnt -rno TARGET | grep -F "$root.partial/" | sort -r | while read -r m; do umount -l "$m" || true; done || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bind() {
    mkdir -p "$root$1"
    mount --bind "$1" "$root$1"
    mounted+=("$root$1")
}

if [ ! -e "$root/.debootstrap-done" ]; then
    echo "im7: building the trixie root in $root (once; a few minutes)" >&2
    start=$SECONDS
    rm -rf "$root.partial"
    debootstrap --variant=minbase trixie "$root.partial" "$mirror" >"$root.partial.log" 2>&1 \
        || { tail -20 "$root.partial.log" >&2; skip "debootstrap could not build the root (log: $root.partial.log)"; }
    cleanup
    touch "$root.partial/.debootstrap-done"
    rm -rf "$root"
    mv "$root.partial" "$root"
    rm -f "$root.partial.log"
    echo "im7: root built in $((SECONDS - start)) s" >&2
fi

# Copy the host's network and package-index settings in on every run: they may have changed since the build.
for f in /etc/resolv.conf /etc/pip.conf; do
    [ -e "$f" ] && cp -L "$f" "$root$f"
done
if [ -d /etc/xdg/pip ]; then
    mkdir -p "$root/etc/xdg"
    rm -rf "$root/etc/xdg/pip"
    cp -rL /etc/xdg/pip "$root/etc/xdg/pip"
fi
mkdir -p "$root/usr/local/share/ca-certificates"
for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -e "$crt" ] && cp -L "$crt" "$root/usr/local/share/ca-certificates/"
done

# The root bound onto itself is a mount point, so `unshare -m --propagation private` works inside it (the tests
# use it to stand a policy in for the system's).
mount --bind "$root" "$root"
mounted+=("$root")
bind /proc
bind /dev
bind /dev/pts

in_root() {
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

if [ ! -e "$root/.magicktune-ready" ]; then
    start=$SECONDS
    in_root sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        ${packages[*]} >/dev/null" || skip "the root's packages could not be installed (${packages[*]})"
    touch "$root/.magicktune-ready"
    echo "im7: packages installed in $((SECONDS - start)) s" >&2
fi
if command -v update-ca-certificates >/dev/null 2>&1 || [ -x "$root/usr/sbin/update-ca-certificates" ]; then
    in_root update-ca-certificates >/dev/null 2>&1 || true
fi

# Each build gets a bin directory whose magick/convert/identify are that build's, so PATH picks the binary
# and WAND_MAGICK_LIBRARY_SUFFIX the library, never whatever update-alternatives chose last.
for b in "${builds[@]}"; do
    mkdir -p "$root/opt/im7-$b/bin"
    for tool in "$root"/usr/bin/*-im7."$b"; do
        name=$(basename "$tool" "-im7.$b")
        ln -sfn "/usr/bin/$(basename "$tool")" "$root/opt/im7-$b/bin/$name"
    done
done

echo "im7: copying $repo into the root" >&2
rm -rf "$root/src.new"
mkdir -p "$root/src.new"
(cd "$repo" && tar -cf - --exclude=./.venv --exclude=./.git --exclude='*.egg-info' --exclude=__pycache__ \
    --exclude=./build --exclude=./benchmarks/out .) | tar -xf - -C "$root/src.new"
rm -rf "$root/src"
mv "$root/src.new" "$root/src"

stamp=$(cat "$repo/pyproject.toml" | sha256sum | cut -c1-16)
if [ "$(cat "$root/opt/venv/.magicktune-stamp" 2>/dev/null)" != "$stamp" ]; then
    start=$SECONDS
    in_root sh -c 'rm -rf /opt/venv && python3 -m venv /opt/venv && /opt/venv/bin/pip install -q --upgrade pip \
        && cd /src && /opt/venv/bin/pip install -q -e ".[test]" pytest-timeout' \
        || skip "the project could not be installed into the root's venv (PyPI unreachable?)"
    echo "$stamp" >"$root/opt/venv/.magicktune-stamp"
    echo "im7: venv installed in $((SECONDS - start)) s" >&2
fi

first_policy=()
rm -rf "$root/opt/im7-policy"
if [ -n "${MAGICKTUNE_IM7_POLICY:-}" ]; then
    mkdir -p "$root/opt/im7-policy"
    cp "$MAGICKTUNE_IM7_POLICY" "$root/opt/im7-policy/policy.xml"
    first_policy=(MAGICK_CONFIGURE_PATH=/opt/im7-policy)
    echo "im7: $MAGICKTUNE_IM7_POLICY first on MAGICK_CONFIGURE_PATH" >&2
fi

status=0
for b in "${builds[@]}"; do
    case $b in
        q16) suffix=-7.Q16 ;;
        q16hdri) suffix=-7.Q16HDRI ;;
    esac
    echo "im7: === ImageMagick 7 $b: $(in_root "/opt/im7-$b/bin/magick" -version | head -1)" >&2
    start=$SECONDS
    set +e
    # -p no:cacheprovider: the tree is a fresh copy each run, a cache would only be noise.
    in_root env PATH="/opt/im7-$b/bin:/usr/local/bin:/usr/bin:/bin" WAND_MAGICK_LIBRARY_SUFFIX="$suffix" "${first_policy[@]}" \
        timeout -k 30 "$run_timeout" sh -c 'cd /src && exec /opt/venv/bin/python -m pytest -q -p no:cacheprovider \
            --timeout='"$test_timeout"' "$@"' pytest "${pytest_args[@]}"
    rc=$?
    set -e
    echo "im7: $b finished with exit $rc in $((SECONDS - start)) s" >&2
    [ $rc -eq 0 ] || status=$rc
done
exit $status
