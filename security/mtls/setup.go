package mtls

import "fmt"

// Config is the mtls policy's configuration.
type Config struct {
	// Identity says which part of the client certificate names the caller:
	// "subject_cn" (default), "subject" (the whole distinguished name),
	// "san_dns", "san_uri" or "san_email" (the first such SAN).
	Identity string `yaml:"identity"`
}

// New returns the policy cfg describes.
func New(cfg Config) (*Certs, error) {
	switch cfg.Identity {
	case "":
		cfg.Identity = "subject_cn"
	case "subject_cn", "subject", "san_dns", "san_uri", "san_email":
	default:
		return nil, fmt.Errorf("identity %q: want subject_cn, subject, san_dns, san_uri or san_email", cfg.Identity)
	}
	return &Certs{from: cfg.Identity}, nil
}
