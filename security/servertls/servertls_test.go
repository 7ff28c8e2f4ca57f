package servertls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// issue makes a certificate signed by parent (self-signed when parent is
// nil) and returns it with its key.
func issue(t *testing.T, cn string, serial int64, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func writePair(t *testing.T, dir string, cert *x509.Certificate, key *ecdsa.PrivateKey) (string, string) {
	t.Helper()
	kder, _ := x509.MarshalECPrivateKey(key)
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cf, kf
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	first, k1 := issue(t, "first", 1, nil, nil)
	cf, kf := writePair(t, dir, first, k1)
	now := time.Now()
	r := &reloader{certFile: cf, keyFile: kf, log: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
	if err := r.load(); err != nil {
		t.Fatal(err)
	}
	serial := func() int64 {
		c, err := r.getCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.Int64()
	}
	if serial() != 1 {
		t.Fatal("not serving the first certificate")
	}
	second, k2 := issue(t, "second", 2, nil, nil)
	writePair(t, dir, second, k2)
	os.Chtimes(cf, now.Add(time.Minute), now.Add(time.Minute)) // a distinct stamp even on coarse clocks
	if serial() != 1 {
		t.Error("reloaded before the check interval passed")
	}
	now = now.Add(2 * checkEvery)
	if serial() != 2 {
		t.Error("the changed files were not reloaded")
	}
	// A broken file keeps the previous certificate.
	os.WriteFile(kf, []byte("garbage"), 0o600)
	os.Chtimes(kf, now.Add(time.Hour), now.Add(time.Hour))
	now = now.Add(2 * checkEvery)
	if serial() != 2 {
		t.Error("a broken key file replaced the certificate")
	}
}

func TestClientAuth(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := issue(t, "ca", 10, nil, nil)
	srvCert, srvKey := issue(t, "server", 11, ca, caKey)
	cliCert, cliKey := issue(t, "device-7", 12, ca, caKey)
	rogueCA, rogueKey := issue(t, "rogue", 13, nil, nil)
	rogue, rogueCliKey := issue(t, "device-7", 14, rogueCA, rogueKey)
	cf, kf := writePair(t, dir, srvCert, srvKey)
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600)
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	for _, mode := range []string{"optional", "require"} {
		t.Run(mode, func(t *testing.T) {
			cfg, err := New(Config{CertFile: cf, KeyFile: kf, ClientCAFile: caFile, ClientAuth: mode}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			// peers receives each handshake's outcome: nil when it failed,
			// else the client's certificates (maybe none).
			peers := make(chan *[]*x509.Certificate, 1)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					tc := c.(*tls.Conn)
					if tc.Handshake() == nil {
						p := tc.ConnectionState().PeerCertificates
						peers <- &p
					} else {
						peers <- nil
					}
					c.Close()
				}
			}()
			// dial presents cert (or none) whatever CAs the server names.
			dial := func(cert *tls.Certificate) (*[]*x509.Certificate, error) {
				c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1",
					GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
						if cert == nil {
							return &tls.Certificate{}, nil
						}
						return cert, nil
					}})
				if err == nil {
					// TLS 1.3 reports a refused client certificate on the first read.
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					_, err = c.Read(make([]byte, 1))
					c.Close()
				}
				p := <-peers
				if err != nil && err.Error() == "EOF" {
					err = nil
				}
				return p, err
			}
			p, err := dial(&tls.Certificate{Certificate: [][]byte{cliCert.Raw}, PrivateKey: cliKey})
			if err != nil || p == nil || len(*p) == 0 || (*p)[0].Subject.CommonName != "device-7" {
				t.Errorf("valid client certificate: peers %v, %v", p, err)
			}
			if p, _ := dial(&tls.Certificate{Certificate: [][]byte{rogue.Raw}, PrivateKey: rogueCliKey}); p != nil {
				t.Errorf("a certificate of another CA was accepted")
			}
			p, _ = dial(nil)
			if mode == "optional" && (p == nil || len(*p) != 0) {
				t.Errorf("optional: a client without a certificate was refused")
			}
			if mode == "require" && p != nil {
				t.Errorf("require: a client without a certificate was accepted")
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no cert":           {},
		"missing files":     {CertFile: "/nonexistent/c", KeyFile: "/nonexistent/k"},
		"auth without CA":   {CertFile: "x", KeyFile: "y", ClientAuth: "require"},
		"unknown auth mode": {CertFile: "x", KeyFile: "y", ClientAuth: "maybe"},
	} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
