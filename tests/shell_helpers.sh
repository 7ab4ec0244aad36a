# Helpers shared by the shell tests (sourced): fail with a message, expect an error message, read
# a JSON file, wait for a file, set up mpirun, and start a test in a temporary folder.
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_error() {  # expect_error "message fragment" command...
  local want="$1"; shift
  if "$@" >o.txt 2>e.txt; then fail "'$*' succeeded, expected an error"; fi
  grep -qF -- "$want" e.txt || { cat e.txt >&2; fail "'$*': message lacks '$want'"; }
}
json() {  # json FILE EXPR: prints EXPR evaluated with d = the file's JSON
  "${TLM_TEST_PYTHON:-/usr/bin/python3}" -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {'d': d}))" "$@"
}
# start_test path/to/tlm: sets tlm (absolute), root (the source tree), py (Python with torch:
# Debian's, or TLM_TEST_PYTHON where the tests run on another machine's image), and
# moves into a temporary folder removed at exit together with any process left behind.
start_test() {
  tlm="$(realpath "$1")"
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  py=${TLM_TEST_PYTHON:-/usr/bin/python3}
  work=$(mktemp -d)
  trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT
  cd "$work"
}
# wait_for_file GLOB SECONDS MESSAGE: waits until a file matches GLOB, or fails with MESSAGE.
wait_for_file() {
  local i
  for ((i = 0; i < $2 * 10; ++i)); do
    compgen -G "$1" >/dev/null && return 0
    sleep 0.1
  done
  fail "$3"
}
# use_mpirun: skips the test (exit 77) without mpirun (package openmpi-bin); lets Open MPI run as
# root (CI does), oversubscribed, without cross-process memory mapping (containers forbid it).
use_mpirun() {
  command -v mpirun >/dev/null || { echo "SKIP: mpirun is not installed (package openmpi-bin)"; exit 77; }
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
}
