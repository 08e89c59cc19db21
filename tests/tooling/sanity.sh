#!/usr/bin/env bash
# Run `ansible-test sanity` offline: ansible-test needs the collection under a path ending in
# ansible_collections/canarykeys/aws and a pip bootstrap script it would otherwise download.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
venv=${VENV:-$repo/.venv}
work=$repo/.tmp/sanity/ansible_collections/canarykeys/aws

pip_version=$("$venv/bin/python" -c 'from ansible_test._internal.python_requirements import get_venv_packages
class P: version = "3.11"
print(get_venv_packages(P())["pip"])')
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
cp "$repo/tests/tooling/ansible_test_get_pip.py" "$cache/get_pip_${pip_version//./_}.py"

# Only what git knows about (tracked or new and not ignored), as a clean copy.
rm -rf "$work" && mkdir -p "$work"
(cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 -I{} cp --parents -P {} "$work"/ 2>/dev/null || true)
# validate-modules resolves doc fragments and module_utils of the collections we depend on from
# next to ours; the ansible bundle carries them in site-packages.
bundle=$("$venv/bin/python" -c 'import ansible_collections, os; print(os.path.dirname(ansible_collections.__file__))' 2>/dev/null \
         || "$venv/bin/python" -c 'import ansible_collections; print(list(ansible_collections.__path__)[0])')
for dep in amazon/aws community/aws community/general; do
  mkdir -p "$(dirname "$work/../../$dep")"
  [ -e "$work/../../$dep" ] || ln -s "$bundle/$dep" "$work/../../$dep"
done
cd "$work"
git init -q . && git add -A >/dev/null
"$venv/bin/ansible-test" sanity --venv --python 3.11 "$@"
