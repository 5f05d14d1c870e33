# Shared by the CLI test scripts (sourced): a scratch folder removed on exit, and check(), which
# runs a command and compares its exit code and output; the script ends with `finish`.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

check() {  # check NAME EXPECTED_CODE PATTERN -- command...
  local name=$1 expected=$2 pattern=$3
  shift 4
  local output code
  output=$("$@" 2>&1)
  code=$?
  if [ "$code" -eq "$expected" ] && grep -qE -- "$pattern" <<<"$output"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAILED: $name (exit $code, expected $expected; wanted /$pattern/)"
    echo "$output" | head -5
  fi
}

finish() {  # prints "N passed, M failed" and fails the script when anything failed
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
