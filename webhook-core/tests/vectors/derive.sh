#!/usr/bin/env bash
# Test vectors for the vendors that publish none, each computed with the vendor's documented
# algorithm by OpenSSL (3.0) or Python's standard library, never by the code under test. Run
# from anywhere: `webhook-core/tests/vectors/derive.sh`; it prints one `name = value` line per
# vector, which the tests in webhook-core/src/signature/ quote. The key pairs of the public-key
# schemes are in keys/ (made once by the commands at the end, kept so the vectors stay the
# same); they are test keys, published here, and sign nothing real.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

hmac_hex() { # algorithm key message -> hex
  printf '%s' "$3" | openssl dgst "-$1" -hmac "$2" | sed 's/^.*= //'
}
hmac_b64() { # algorithm key message -> base64
  printf '%s' "$3" | openssl dgst "-$1" -hmac "$2" -binary | base64 -w0
}
hmac_hexkey_b64() { # algorithm hexkey message -> base64
  printf '%s' "$3" | openssl dgst "-$1" -mac HMAC -macopt "hexkey:$2" -binary | base64 -w0
}

body='{"id":"evt_1","type":"push"}'
secret=vendor-secret

# Body HMACs (Bitbucket, Jira, Razorpay: hex SHA-256; Intercom: hex SHA-1; Typeform,
# WooCommerce, Xero, DocuSign: base64 SHA-256), each vendor's docs: "the HMAC of the raw body
# with the webhook's secret".
echo "body_sha256_hex = $(hmac_hex sha256 "$secret" "$body")"
echo "body_sha1_hex = $(hmac_hex sha1 "$secret" "$body")"
echo "body_sha256_base64 = $(hmac_b64 sha256 "$secret" "$body")"

# Zoom: "v0=" + hex HMAC-SHA256 of "v0:{x-zm-request-timestamp}:{body}"; the url_validation
# answer's encryptedToken is the hex HMAC-SHA256 of plainToken.
zoom_body='{"event":"meeting.started","event_ts":1700000000000,"payload":{"account_id":"a1"}}'
echo "zoom_signature = v0=$(hmac_hex sha256 zoom-secret "v0:1700000000:$zoom_body")"
echo "zoom_encrypted_token = $(hmac_hex sha256 zoom-secret qgg8vlvZRS6UYooatFL8Aw)"

# Twitch: "sha256=" + hex HMAC-SHA256 of message id ‖ timestamp (as sent) ‖ body.
twitch_body='{"subscription":{"type":"channel.follow"},"event":{"user_id":"1"}}'
echo "twitch_signature = sha256=$(hmac_hex sha256 twitch-secret-123 "e76c6bd4-55c9-4987-8304-da1588d8988b2023-11-14T22:13:20.123456789Z$twitch_body")"

# Calendly: "t=…,v1=" + hex HMAC-SHA256 of "{t}.{body}".
calendly_body='{"event":"invitee.created","payload":{"uri":"https://api.calendly.com/x"}}'
echo "calendly_signature = t=1700000000,v1=$(hmac_hex sha256 calendly-key "1700000000.$calendly_body")"

# Linear: hex HMAC-SHA256 of the body, which carries webhookTimestamp (ms).
linear_body='{"action":"create","type":"Issue","webhookTimestamp":1700000000000}'
echo "linear_signature = $(hmac_hex sha256 lin_wh_secret "$linear_body")"

# Mailgun: hex HMAC-SHA256 of timestamp ‖ token with the webhook signing key.
echo "mailgun_signature = $(hmac_hex sha256 mailgun-signing-key "1700000000b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7")"

# HubSpot v3: base64 HMAC-SHA256 of method ‖ URI ‖ body ‖ timestamp (ms).
hubspot_body='[{"eventId":1,"subscriptionType":"contact.creation"}]'
echo "hubspot_v3 = $(hmac_b64 sha256 hubspot-secret "POSThttps://example.com/webhooks/hubspot?a=1$hubspot_body""1700000000000")"

# GitLab's signing token: Standard Webhooks (whsec_ + base64 key), as its docs say.
gitlab_key=$(printf '%s' 'gitlab-signing-key-of-32-bytes!!' | base64 -w0)
gitlab_body='{"object_kind":"push"}'
echo "gitlab_key = whsec_$gitlab_key"
echo "gitlab_signature = v1,$(hmac_hexkey_b64 sha256 "$(printf '%s' 'gitlab-signing-key-of-32-bytes!!' | xxd -p -c 64)" "d6ef1a4e-3c2e-4c4c-9e43-8b1c8f1f2a11.1700000000.$gitlab_body")"

# Twilio with a JSON body: the URL carries bodySHA256 (hex SHA-256 of the body) and only the
# URL is signed: base64 HMAC-SHA1 of the URL.
twilio_body='{"data":{"status":"delivered"}}'
twilio_hash=$(printf '%s' "$twilio_body" | openssl dgst -sha256 | sed 's/^.*= //')
twilio_url="https://example.com/webhooks/twilio?bodySHA256=$twilio_hash"
echo "twilio_json_url = $twilio_url"
echo "twilio_json_signature = $(hmac_b64 sha1 12345 "$twilio_url")"

# Postmark: Basic credentials, user:pass in base64.
echo "postmark_authorization = Basic $(printf '%s' 'postmark:hook-password' | base64 -w0)"

# Ed25519 (Discord: hex signature of timestamp ‖ body; Standard Webhooks v1a: base64 of
# "{id}.{timestamp}.{body}"), with the key whose seed is in keys/ed25519.seed.
seed=$(cat keys/ed25519.seed)
ed25519_pem=$(mktemp)
trap 'rm -f "$ed25519_pem"' EXIT
{ echo '-----BEGIN PRIVATE KEY-----'; printf '302e020100300506032b657004220420%s' "$seed" | xxd -r -p | base64 -w0; echo; echo '-----END PRIVATE KEY-----'; } >"$ed25519_pem"
echo "ed25519_public_hex = $(openssl pkey -in "$ed25519_pem" -pubout -outform DER | tail -c 32 | xxd -p -c 64)"
echo "ed25519_public_whpk = whpk_$(openssl pkey -in "$ed25519_pem" -pubout -outform DER | tail -c 32 | base64 -w0)"
discord_body='{"id":"1180000000000000000","type":1}'
ed_sign() { printf '%s' "$1" >"$ed25519_pem.msg"; openssl pkeyutl -sign -inkey "$ed25519_pem" -rawin -in "$ed25519_pem.msg"; rm -f "$ed25519_pem.msg"; }
echo "discord_signature = $(ed_sign "1700000000$discord_body" | xxd -p -c 128)"
standard_body='{"type":"user.created","data":{"id":"user_1"}}'
echo "v1a_signature = v1a,$(ed_sign "msg_2.1700000000.$standard_body" | base64 -w0)"

# SendGrid: base64 DER ECDSA P-256 SHA-256 of timestamp ‖ body; the public key is base64 DER
# SubjectPublicKeyInfo. ECDSA signatures are randomized: each run prints another valid one.
sendgrid_body='[{"email":"a@example.com","event":"delivered","sg_event_id":"e1"}]'
echo "p256_public = $(openssl pkey -in keys/p256.pem -pubout -outform DER | base64 -w0)"
printf '%s' "1700000000$sendgrid_body" | openssl dgst -sha256 -sign keys/p256.pem -binary | base64 -w0 | sed 's/^/sendgrid_signature = /'; echo

# PayPal: base64 RSA-SHA256 (PKCS#1 v1.5) of "{transmission id}|{time}|{webhook id}|{crc32}",
# the CRC32 of the body in decimal (Python's zlib.crc32), with the key of keys/paypal-cert.pem.
paypal_body='{"id":"WH-1","event_type":"PAYMENT.CAPTURE.COMPLETED"}'
crc=$(python3 -c 'import sys, zlib; print(zlib.crc32(sys.argv[1].encode()))' "$paypal_body")
paypal_message="69cd13f0-d67a-11e5-baa3-778b53f4ae55|2023-11-14T22:13:20Z|WH-ID-1|$crc"
echo "paypal_crc32 = $crc"
printf '%s' "$paypal_message" | openssl dgst -sha256 -sign keys/rsa.pem -binary | base64 -w0 | sed 's/^/paypal_signature = /'; echo

# The keys, made once:
#   head -c 32 /dev/urandom | xxd -p -c 64 > keys/ed25519.seed
#   openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out keys/p256.pem
#   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out keys/rsa.pem
#   openssl req -new -x509 -key keys/rsa.pem -sha256 -days 36500 -subj /CN=paypal-test -out keys/paypal-cert.pem
