// Package servertls builds the TLS configuration of a listener: its
// certificate reloaded from disk when the files change, and client
// certificates required, optional or not asked for.
package servertls

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// checkEvery is how often, at most, the certificate files are checked for
// changes.
const checkEvery = time.Second

// reloader serves a certificate, reloading it when its files change.
type reloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // modification times and sizes of the loaded files
	checkedAt time.Time
}

// stamp identifies the current version of the files.
func (r *reloader) fileStamp() (string, error) {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return s, nil
}

// load reads the files; the caller holds mu or is the constructor.
func (r *reloader) load() error {
	stamp, err := r.fileStamp()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

func (r *reloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checkedAt) >= checkEvery {
		r.checkedAt = now
		if stamp, err := r.fileStamp(); err == nil && stamp != r.stamp {
			if err := r.load(); err != nil {
				r.stamp = stamp // logged once per change of the files
				r.log.Warn("tls certificate reload failed; serving the previous one", "cert_file", r.certFile, "error", err)
			} else {
				r.log.Info("tls certificate reloaded", "cert_file", r.certFile)
			}
		}
	}
	return r.cert, nil
}
