package servertls

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Config is a listener's TLS configuration.
type Config struct {
	// CertFile and KeyFile hold the server certificate chain and key (PEM).
	// They are read again when they change, without a restart.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile holds the CAs client certificates are verified against.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is "none" (default), "optional" (a certificate, when sent,
	// must verify) or "require".
	ClientAuth string `yaml:"client_auth"`
}

// New returns the tls.Config of a listener; the certificate is reloaded
// when its files change (checked at most once a second, on handshakes).
// HTTP/2 and HTTP/1.1 are offered by ALPN.
func New(cfg Config, logger *slog.Logger) (*tls.Config, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, fmt.Errorf("tls needs cert_file and key_file")
	}
	if logger == nil {
		logger = slog.Default()
	}
	r := &reloader{certFile: cfg.CertFile, keyFile: cfg.KeyFile, log: logger, now: time.Now}
	if err := r.load(); err != nil {
		return nil, err
	}
	out := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate, NextProtos: []string{"h2", "http/1.1"}}
	switch cfg.ClientAuth {
	case "", "none":
		if cfg.ClientCAFile != "" {
			return nil, fmt.Errorf("client_ca_file is set but client_auth is none")
		}
		return out, nil
	case "optional":
		out.ClientAuth = tls.VerifyClientCertIfGiven
	case "require":
		out.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("client_auth %q: want none, optional or require", cfg.ClientAuth)
	}
	if cfg.ClientCAFile == "" {
		return nil, fmt.Errorf("client_auth %s needs client_ca_file", cfg.ClientAuth)
	}
	pem, err := os.ReadFile(cfg.ClientCAFile)
	if err != nil {
		return nil, err
	}
	out.ClientCAs = x509.NewCertPool()
	if !out.ClientCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificates found", cfg.ClientCAFile)
	}
	return out, nil
}
