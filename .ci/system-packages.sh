#!/bin/bash
# Install the real servers the tests talk to, on Debian 12 (bookworm), as root:
#   Dovecot (POP3, IMAP, LMTP), Postfix, Chromium + ChromeDriver, and the 'vmail' user that owns
#   test mail when Dovecot runs as root (Dovecot refuses uid 0 for mail).
# Idempotent: when everything is already there it returns at once without touching apt.
# Not root, or not Debian: says why and exits 0; the tests that need these servers then skip.
# No service is started: the tests run their own instances on their own ports and directories.
set -euo pipefail

PACKAGES=(dovecot-core dovecot-pop3d dovecot-imapd dovecot-lmtpd postfix chromium chromium-driver)
MAIL_USER=vmail

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
  done
fi
have_user=1
id "$MAIL_USER" >/dev/null 2>&1 || have_user=0

if command -v dpkg-query >/dev/null 2>&1 && [ ${#missing[@]} -eq 0 ] && [ "$have_user" = 1 ]; then
  echo "system-packages: all present (${PACKAGES[*]}, user $MAIL_USER)"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  what="${missing[*]}"
  [ "$have_user" = 1 ] || what="${what:+$what, }user $MAIL_USER"
  echo "system-packages: not root, so nothing installed (missing: $what)." \
    "Run 'sudo .ci/system-packages.sh' once; until then the Dovecot/Postfix/Chromium tests skip."
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-packages: no apt-get (not Debian/Ubuntu); install by hand: ${PACKAGES[*]}." \
    "The tests that need them skip until then."
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
  # Postfix would otherwise ask for (or default to) "Internet Site" and write /etc/postfix/main.cf
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "system-packages: installing ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if ! id "$MAIL_USER" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$MAIL_USER"
  echo "system-packages: created system user $MAIL_USER"
fi
echo "system-packages: done"
