# Sourced by every script: repository paths and a Java >= 25 in JAVA_HOME.
# shellcheck shell=bash
DS4J_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DS4J_BUILD="$DS4J_ROOT/build"
DS4J_NATIVE_BUILD="$DS4J_BUILD/native"
DS4J_TOOL="$DS4J_NATIVE_BUILD/ds4j-tool"
DS4J_SHARED="${DS4J_SHARED:-$(cd "$DS4J_ROOT/.." && pwd)/shared}"
export DS4J_ROOT DS4J_BUILD DS4J_NATIVE_BUILD DS4J_TOOL DS4J_SHARED

ds4j_log() { printf '\033[1m[ds4j]\033[0m %s\n' "$*" >&2; }
ds4j_die() { printf '\033[1;31m[ds4j] error:\033[0m %s\n' "$*" >&2; exit 1; }

# Major version of the java binary given as $1 (0 if it does not run).
ds4j_java_major() {
  local v
  v=$("$1" -version 2>&1 | awk -F\" '/version/ {print $2; exit}') || return 1
  v=${v#1.}
  echo "${v%%[.+-]*}"
}

# Finds a JDK >= 25: $JAVA_HOME if good, else the newest under /usr/lib/jvm
# (a Temurin 25 sits beside the default Java 17 on our machines).
ds4j_find_java() {
  local cand major
  for cand in "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25* /usr/lib/jvm/*25* /usr/lib/jvm/*; do
    [ -n "$cand" ] && [ -x "$cand/bin/java" ] && [ -x "$cand/bin/javac" ] || continue
    major=$(ds4j_java_major "$cand/bin/java") || continue
    if [ -n "$major" ] && [ "$major" -ge 25 ] 2>/dev/null; then
      export JAVA_HOME="$cand"
      export PATH="$JAVA_HOME/bin:$PATH"
      # Maven 3.8 on Java 25 warns about sun.misc.Unsafe on every run.
      case " ${MAVEN_OPTS:-} " in *unsafe-memory-access*) ;; *) export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow" ;; esac
      return 0
    fi
  done
  ds4j_die "no Java >= 25 found (checked JAVA_HOME and /usr/lib/jvm). Install a JDK 25 (e.g. Temurin 25) and set JAVA_HOME."
}
