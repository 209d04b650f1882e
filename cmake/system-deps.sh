#!/usr/bin/env bash
# The system packages the C++ runtime's build needs (Debian names), defined once for make test, .ci/run and
# tests/test_cpp_runtime.py.
#   cmake/system-deps.sh list      the required packages, one a line
#   cmake/system-deps.sh missing   the required packages not installed here, one a line (nothing when complete)
#   cmake/system-deps.sh ensure    install what is missing (as root, or through passwordless sudo), plus
#                                  libonnxruntime-dev where apt has it (Debian 13: the ONNX Runtime backend);
#                                  where it cannot install, one line says what is missing and how to install it
#                                  (the C++ tests then skip with the same line); exits 0 either way
set -euo pipefail

REQUIRED=(cmake make g++ gcc libc6-dev pkg-config libopencv-dev nlohmann-json3-dev libssl-dev)
OPTIONAL=(libonnxruntime-dev)  # installed where the distribution has it; the build uses it when found

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing() {
  command -v dpkg-query >/dev/null 2>&1 || return 0  # not Debian: nothing to check against, CMake will say
  local p
  for p in "${REQUIRED[@]}"; do installed "$p" || echo "$p"; done
}

sudo_prefix() {
  if [ "$(id -u)" -eq 0 ]; then echo ""; return 0; fi
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then echo "sudo"; return 0; fi
  return 1
}

ensure() {
  local todo=() p sudo
  mapfile -t todo < <(missing)
  if ! command -v apt-get >/dev/null 2>&1; then
    [ ${#todo[@]} -eq 0 ] || echo "C++ build dependencies missing (${todo[*]}) and no apt-get here: install them, or the C++ tests skip" >&2
    return 0
  fi
  if ! sudo="$(sudo_prefix)"; then
    [ ${#todo[@]} -eq 0 ] || echo "C++ build dependencies missing: ${todo[*]}; install them with: sudo apt-get install -y ${todo[*]} (the C++ tests skip until then)" >&2
    return 0
  fi
  available_optional() { local q; for q in "${OPTIONAL[@]}"; do installed "$q" || ! apt-cache show "$q" >/dev/null 2>&1 || echo "$q"; done; }
  local optional=()
  mapfile -t optional < <(available_optional)  # from the package lists already here: no update just for these
  [ ${#todo[@]} -gt 0 ] || [ ${#optional[@]} -gt 0 ] || return 0
  local required=("${todo[@]}")
  if [ ${#required[@]} -gt 0 ]; then
    $sudo apt-get update -qq || echo "apt-get update failed; trying the package lists already here" >&2
    mapfile -t optional < <(available_optional)
  fi
  todo+=("${optional[@]}")
  echo "installing the C++ build dependencies: ${todo[*]}" >&2
  if ! $sudo env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq --no-install-recommends "${todo[@]}" >/dev/null; then
    [ ${#required[@]} -eq 0 ] || echo "could not install ${required[*]}; install them with: sudo apt-get install -y ${required[*]} (the C++ tests skip until then)" >&2
  fi
}

case "${1:-}" in
  list) printf '%s\n' "${REQUIRED[@]}" ;;
  missing) missing ;;
  ensure) ensure ;;
  *) echo "usage: $0 list|missing|ensure" >&2; exit 2 ;;
esac
