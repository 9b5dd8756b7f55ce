# berth job helpers (ci-templates/src/helpers.sh, in every berth component).
# step NAME TITLE COMMAND...: runs COMMAND in a collapsible log section
# and says how long it took. Its own lines go to stderr, so the
# command's stdout (berth's result) can be redirected to a file.
step() {
  step_name=$1 step_title=$2
  shift 2
  step_t0=$(date +%s)
  printf '\033[0Ksection_start:%s:%s\r\033[0K%s\n' "$step_t0" "$step_name" "$step_title" >&2
  if "$@"; then step_rc=0; else step_rc=$?; fi
  step_t1=$(date +%s)
  printf '\033[0Ksection_end:%s:%s\r\033[0K\n' "$step_t1" "$step_name" >&2
  if [ "$step_rc" -eq 0 ]; then
    printf '%s: done in %s s\n' "$step_title" $((step_t1 - step_t0)) >&2
  else
    printf '%s: failed with exit code %s after %s s\n' "$step_title" "$step_rc" $((step_t1 - step_t0)) >&2
  fi
  return "$step_rc"
}
# install_berth URL SHA256: puts a downloaded berth first on PATH, or
# keeps the image's when URL is empty.
install_berth() {
  if [ -z "$1" ]; then return 0; fi
  if [ -z "$2" ]; then echo "berth_url is set but berth_sha256 is not" >&2; return 1; fi
  mkdir -p "$CI_PROJECT_DIR/.berth-bin"
  if command -v curl >/dev/null; then
    curl --fail --silent --show-error --location --output "$CI_PROJECT_DIR/.berth-bin/berth" "$1"
  else
    wget --quiet --output-document "$CI_PROJECT_DIR/.berth-bin/berth" "$1"
  fi
  echo "$2  $CI_PROJECT_DIR/.berth-bin/berth" | sha256sum -c - >/dev/null || { echo "berth from $1 does not have SHA-256 $2" >&2; return 1; }
  chmod +x "$CI_PROJECT_DIR/.berth-bin/berth"
  PATH=$CI_PROJECT_DIR/.berth-bin:$PATH
}
