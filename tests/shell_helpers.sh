# Helpers shared by the shell tests (sourced): fail with a message, expect an error message, read
# a JSON file, and start a test in a temporary folder.
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_error() {  # expect_error "message fragment" command...
  local want="$1"; shift
  if "$@" >o.txt 2>e.txt; then fail "'$*' succeeded, expected an error"; fi
  grep -qF -- "$want" e.txt || { cat e.txt >&2; fail "'$*': message lacks '$want'"; }
}
json() {  # json FILE EXPR: prints EXPR evaluated with d = the file's JSON
  /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {'d': d}))" "$@"
}
# start_test path/to/tlm: sets tlm (absolute), root (the source tree), py (Python with torch), and
# moves into a temporary folder removed at exit together with any process left behind.
start_test() {
  tlm="$(realpath "$1")"
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  py=/usr/bin/python3
  work=$(mktemp -d)
  trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT
  cd "$work"
}
