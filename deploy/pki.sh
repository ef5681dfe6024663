#!/usr/bin/env bash
# Test PKI for migrated / libvirt TLS, in libvirt's file layout.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: pki.sh [options] DIR

Creates a CA, a server certificate and a client certificate under DIR in
libvirt's layout (for tests and demos only; keys are unencrypted):

  DIR/CA/cacert.pem                   CA certificate   (CA key: DIR/CA/cakey.pem)
  DIR/libvirt/servercert.pem          server certificate (SAN DNS:localhost, IP:127.0.0.1, serverAuth)
  DIR/libvirt/private/serverkey.pem   server key
  DIR/libvirt/clientcert.pem          client certificate (clientAuth)
  DIR/libvirt/private/clientkey.pem   client key
  DIR/client/{cacert,clientcert,clientkey}.pem   the same, pkipath-style
  DIR/qemu/{ca-cert,server-cert,server-key,client-cert,client-key}.pem
                                      the same, in QEMU's layout for migration TLS
                                      (migrated's migrate_tls_x509_cert_dir)

Options:
  --server-cn NAME     server certificate CN            (default: localhost)
  --client-cn NAME     client certificate CN            (default: client)
  --san SAN            extra server subjectAltName entry, repeatable (e.g. DNS:host1, IP:10.0.0.1)
  --days N             validity of the certificates     (default: 365)
  --expired-client     also DIR/expired/{cacert,clientcert,clientkey}.pem: a client
                       certificate from the same CA that expired in 2021
  --future-client      also DIR/future/{cacert,clientcert,clientkey}.pem: a client
                       certificate from the same CA that is valid only from 2090
  --bad-usage          also DIR/badusage/: clientcert.pem/clientkey.pem whose
                       extendedKeyUsage is serverAuth only, and servercert.pem/
                       serverkey.pem whose extendedKeyUsage is clientAuth only
  --second-ca          also DIR/other/{cacert,clientcert,clientkey}.pem: an unrelated
                       CA and a client certificate it issued, and DIR/qemu-foreign/:
                       DIR/qemu/ with that client certificate and key instead and
                       both CAs in ca-cert.pem
  -h, --help           this text

Subjects are C=GB,O=Example,CN=<cn>; keys are RSA 2048. Requires openssl.
USAGE
}

server_cn=localhost
client_cn=client
days=365
expired=0
future=0
badusage=0
second=0
sans=("DNS:localhost" "IP:127.0.0.1")
dir=""

while [ $# -gt 0 ]; do
    case "$1" in
        --server-cn) server_cn=${2:?--server-cn needs a value}; shift 2 ;;
        --client-cn) client_cn=${2:?--client-cn needs a value}; shift 2 ;;
        --san) sans+=("${2:?--san needs a value}"); shift 2 ;;
        --days) days=${2:?--days needs a value}; shift 2 ;;
        --expired-client) expired=1; shift ;;
        --future-client) future=1; shift ;;
        --bad-usage) badusage=1; shift ;;
        --second-ca) second=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "pki.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) [ -z "$dir" ] || { echo "pki.sh: only one DIR" >&2; exit 2; }; dir=$1; shift ;;
    esac
done
[ -n "$dir" ] || { usage >&2; exit 2; }
command -v openssl >/dev/null || { echo "pki.sh: openssl not found" >&2; exit 1; }

umask 077
mkdir -p "$dir/CA" "$dir/libvirt/private" "$dir/client" "$dir/qemu"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

newkey() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

# make_ca KEY CERT CN
make_ca() {
    newkey "$1"
    cat > "$work/ca.ext" <<EXT
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EXT
    openssl req -new -x509 -key "$1" -out "$2" -days $((days + 365)) -subj "/C=GB/O=Example/CN=$3" \
        -config "$work/ca.ext" -extensions v3_ca -sha256
}

# leaf_ext FILE PURPOSE [SAN]
leaf_ext() {
    {
        echo "basicConstraints = critical, CA:FALSE"
        echo "keyUsage = critical, digitalSignature, keyEncipherment"
        echo "extendedKeyUsage = $2"
        echo "subjectKeyIdentifier = hash"
        echo "authorityKeyIdentifier = keyid"
        [ -z "${3:-}" ] || echo "subjectAltName = $3"
    } > "$1"
}

# sign CAKEY CACERT KEY CERT CN PURPOSE [SAN]
sign() {
    newkey "$3"
    openssl req -new -key "$3" -out "$work/req.csr" -subj "/C=GB/O=Example/CN=$5"
    leaf_ext "$work/leaf.ext" "$6" "${7:-}"
    openssl x509 -req -in "$work/req.csr" -CA "$2" -CAkey "$1" -CAcreateserial -CAserial "$work/ca.srl" \
        -out "$4" -days "$days" -sha256 -extfile "$work/leaf.ext" 2>/dev/null
}

# sign_dated CAKEY CACERT KEY CERT CN START END: a clientAuth certificate with
# explicit validity dates (YYYYMMDDHHMMSSZ), via `openssl ca`
sign_dated() {
    newkey "$3"
    openssl req -new -key "$3" -out "$work/exp.csr" -subj "/C=GB/O=Example/CN=$5"
    if [ ! -d "$work/ca" ]; then
        mkdir -p "$work/ca/new"
        : > "$work/ca/index.txt"
        echo 1000 > "$work/ca/serial"
    fi
    cat > "$work/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
dir = $work/ca
database = \$dir/index.txt
new_certs_dir = \$dir/new
serial = \$dir/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
x509_extensions = leaf
[any]
countryName = optional
organizationName = optional
commonName = supplied
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
CNF
    openssl ca -batch -config "$work/ca.cnf" -cert "$2" -keyfile "$1" -in "$work/exp.csr" -out "$4" \
        -startdate "$6" -enddate "$7" -notext 2>/dev/null
}

san=$(IFS=,; echo "${sans[*]}")
make_ca "$dir/CA/cakey.pem" "$dir/CA/cacert.pem" "Example CA"
sign "$dir/CA/cakey.pem" "$dir/CA/cacert.pem" "$dir/libvirt/private/serverkey.pem" \
    "$dir/libvirt/servercert.pem" "$server_cn" serverAuth "$san"
sign "$dir/CA/cakey.pem" "$dir/CA/cacert.pem" "$dir/libvirt/private/clientkey.pem" \
    "$dir/libvirt/clientcert.pem" "$client_cn" clientAuth
cp "$dir/CA/cacert.pem" "$dir/client/cacert.pem"
cp "$dir/libvirt/clientcert.pem" "$dir/client/clientcert.pem"
cp "$dir/libvirt/private/clientkey.pem" "$dir/client/clientkey.pem"
cp "$dir/CA/cacert.pem" "$dir/qemu/ca-cert.pem"
cp "$dir/libvirt/servercert.pem" "$dir/qemu/server-cert.pem"
cp "$dir/libvirt/private/serverkey.pem" "$dir/qemu/server-key.pem"
cp "$dir/libvirt/clientcert.pem" "$dir/qemu/client-cert.pem"
cp "$dir/libvirt/private/clientkey.pem" "$dir/qemu/client-key.pem"

if [ "$expired" = 1 ]; then
    mkdir -p "$dir/expired"
    cp "$dir/CA/cacert.pem" "$dir/expired/cacert.pem"
    sign_dated "$dir/CA/cakey.pem" "$dir/CA/cacert.pem" "$dir/expired/clientkey.pem" \
        "$dir/expired/clientcert.pem" "$client_cn" 20200101000000Z 20210101000000Z
fi

if [ "$future" = 1 ]; then
    mkdir -p "$dir/future"
    cp "$dir/CA/cacert.pem" "$dir/future/cacert.pem"
    sign_dated "$dir/CA/cakey.pem" "$dir/CA/cacert.pem" "$dir/future/clientkey.pem" \
        "$dir/future/clientcert.pem" "$client_cn" 20900101000000Z 20910101000000Z
fi

if [ "$badusage" = 1 ]; then
    mkdir -p "$dir/badusage"
    cp "$dir/CA/cacert.pem" "$dir/badusage/cacert.pem"
    sign "$dir/CA/cakey.pem" "$dir/CA/cacert.pem" "$dir/badusage/clientkey.pem" \
        "$dir/badusage/clientcert.pem" "$client_cn" serverAuth
    sign "$dir/CA/cakey.pem" "$dir/CA/cacert.pem" "$dir/badusage/serverkey.pem" \
        "$dir/badusage/servercert.pem" "$server_cn" clientAuth "$san"
fi

if [ "$second" = 1 ]; then
    mkdir -p "$dir/other"
    make_ca "$dir/other/cakey.pem" "$dir/other/cacert.pem" "Other CA"
    sign "$dir/other/cakey.pem" "$dir/other/cacert.pem" "$dir/other/clientkey.pem" \
        "$dir/other/clientcert.pem" "$client_cn" clientAuth
    mkdir -p "$dir/qemu-foreign"
    cp "$dir/qemu/server-cert.pem" "$dir/qemu/server-key.pem" "$dir/qemu-foreign/"
    # Both CAs: the foreign client certificate passes its own QEMU's checks
    # and the peer's server certificate is still trusted.
    cat "$dir/CA/cacert.pem" "$dir/other/cacert.pem" > "$dir/qemu-foreign/ca-cert.pem"
    cp "$dir/other/clientcert.pem" "$dir/qemu-foreign/client-cert.pem"
    cp "$dir/other/clientkey.pem" "$dir/qemu-foreign/client-key.pem"
fi

chmod 0644 "$dir/CA/cacert.pem" "$dir/libvirt/servercert.pem" "$dir/libvirt/clientcert.pem" \
    "$dir/client/cacert.pem" "$dir/client/clientcert.pem" \
    "$dir/qemu/ca-cert.pem" "$dir/qemu/server-cert.pem" "$dir/qemu/client-cert.pem"
echo "pki.sh: wrote $dir"
