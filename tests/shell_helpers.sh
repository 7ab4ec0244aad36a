# Helpers shared by the shell tests (sourced): fail with a message, expect an error message.
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_error() {  # expect_error "message fragment" command...
  local want="$1"; shift
  if "$@" >o.txt 2>e.txt; then fail "'$*' succeeded, expected an error"; fi
  grep -qF -- "$want" e.txt || { cat e.txt >&2; fail "'$*': message lacks '$want'"; }
}
