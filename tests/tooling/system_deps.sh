#!/usr/bin/env bash
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The Debian packages the SSH test fleet (tests/tooling/fleet.py) and the test suite need, on a fresh
# Debian 12 as root. Idempotent: returns at once when everything is installed.
#
#   openssh-server, openssh-sftp-server  one sshd per fleet host; sftp for Ansible file transfers
#   openssh-client                       ssh and ssh-keygen (controller key, host key, Ansible's transport)
#   sudo                                 Ansible become on the webservers
#   passwd                               useradd for the fleet's OS users
#   util-linux, mount                    unshare, nsenter, runuser, mount --bind
#   python3, python3-venv                the hosts' interpreter (/usr/bin/python3) and the host-tools venv
#   ca-certificates                      pip's HTTPS to PyPI (host-tools venv, project venv)
#   make, git                            the README's commands, the sanity run (git ls-files)
set -euo pipefail

packages=(
  openssh-server openssh-sftp-server openssh-client sudo passwd util-linux mount
  python3 python3-venv ca-certificates make git
)

if [ "$(id -u)" != 0 ]; then
  echo "system_deps: not root, nothing installed (the SSH fleet tests will skip)" >&2
  exit 0
fi

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "system_deps: all present (${packages[*]})"
  exit 0
fi

echo "system_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Installing openssh-server would start the system sshd on port 22; the fleet runs its own sshds and
# needs no service listening on all interfaces. A policy-rc.d that answers 101 forbids service
# starts during the install (the Debian convention), and goes away afterwards.
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  own_policy=1
fi
trap '[ -z "$own_policy" ] || rm -f "$policy"' EXIT

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system_deps: installed ${missing[*]}"
