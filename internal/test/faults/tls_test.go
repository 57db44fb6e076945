//go:build faults

package faults_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"prune-tokens/internal/test/appliertest"
	"prune-tokens/internal/test/clitest"
	"prune-tokens/internal/test/mariadbtest"
)

// writeCerts makes a private CA and a server certificate for 127.0.0.1.
func writeCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "prune-tokens test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server-key.pem", "EC PRIVATE KEY", keyDER)
}

// TestRequireTLS: against a server that requires secure transport, the DSN's
// tls= parameter decides: none is refused by the server, skip-verify
// encrypts without checking the certificate, tls=true verifies it against
// the system roots, which SSL_CERT_FILE can point at a private CA, as the
// README documents.
func TestRequireTLS(t *testing.T) {
	certs := t.TempDir()
	ca, cert, key := writeCerts(t, certs)
	srv := mariadbtest.StartWith(t, "--ssl-ca="+ca, "--ssl-cert="+cert, "--ssl-key="+key)
	db := privateDB(t, srv, "fxa")
	f := appliertest.New(t, db, 61, appliertest.Small)
	mustExec(t, db.SQL, "SET GLOBAL require_secure_transport = ON")
	dir := t.TempDir()
	plan := func(name, tls string, env ...string) *clitest.Proc {
		dsn := db.DSN
		if tls != "" {
			dsn += "&tls=" + tls
		}
		return clitest.Run(t, env, append([]string{"plan", "--dsn", dsn}, planFlags(filepath.Join(dir, name))...)...)
	}

	p := plan("plain.parquet", "")
	// MariaDB answers a plaintext login under require_secure_transport with
	// "Access denied"; the same user gets in over TLS below.
	if line := p.LastLine(t); p.Code != 2 || !strings.Contains(line, "Access denied") && !strings.Contains(line, "insecure transport") {
		t.Errorf("no tls=: exit %d, %q; want the server's refusal", p.Code, line)
	}
	p = plan("unverified.parquet", "true")
	if line := p.LastLine(t); p.Code != 2 || !strings.Contains(line, "certificate") {
		t.Errorf("tls=true with an unknown CA: exit %d, %q; want exit 2 naming the certificate", p.Code, line)
	}
	if p = plan("skip.parquet", "skip-verify"); p.Code != 0 {
		t.Errorf("tls=skip-verify: %s", p)
	}
	p = plan("verified.parquet", "true", "SSL_CERT_FILE="+ca)
	if p.Code != 0 {
		t.Fatalf("tls=true with SSL_CERT_FILE: %s", p)
	}
	p = clitest.Run(t, []string{"SSL_CERT_FILE=" + ca}, applyArgs(db.DSN+"&tls=true", filepath.Join(dir, "verified.parquet"), filepath.Join(dir, "v.cp"))...)
	if p.Code != 0 {
		t.Fatalf("apply with tls=true: %s", p)
	}
	mustExec(t, db.SQL, "SET GLOBAL require_secure_transport = OFF")
	f.Check(t)
}

// TestTLSRequiredButNotOffered: a DSN that requires TLS (tls=true or
// tls=skip-verify) against a server without TLS fails before anything is
// read: exit 2, naming TLS for tls=true. The server is private and started
// with --skip-ssl, so the check always runs.
func TestTLSRequiredButNotOffered(t *testing.T) {
	srv := mariadbtest.StartWith(t, "--skip-ssl")
	db := privateDB(t, srv, "fxa")
	appliertest.New(t, db, 59, appliertest.Small)
	var ssl string
	if err := db.SQL.QueryRow("SELECT @@have_ssl").Scan(&ssl); err != nil || ssl == "YES" {
		t.Fatalf("server started with --skip-ssl: have_ssl = %q, %v; want no TLS", ssl, err)
	}
	dir := t.TempDir()
	p := clitest.Run(t, nil, append([]string{"plan", "--dsn", db.DSN + "&tls=true"}, planFlags(filepath.Join(dir, "a.parquet"))...)...)
	if line := p.LastLine(t); p.Code != 2 || !strings.Contains(strings.ToLower(line), "tls") {
		t.Errorf("tls=true against a server without TLS: exit %d, %q; want exit 2 naming TLS", p.Code, line)
	}
	p = clitest.Run(t, nil, append([]string{"plan", "--dsn", db.DSN + "&tls=skip-verify"}, planFlags(filepath.Join(dir, "b.parquet"))...)...)
	if p.Code != 2 {
		t.Errorf("tls=skip-verify against a server without TLS: exit %d, want 2", p.Code)
	}
	for _, name := range []string{"a.parquet", "b.parquet"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("plan refused for TLS left %s", name)
		}
	}
}
