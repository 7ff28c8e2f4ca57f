package jwt

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// key is one verification key: *rsa.PublicKey, *ecdsa.PublicKey,
// ed25519.PublicKey or an HMAC secret ([]byte).
type key struct {
	// kid is the key id; "" matches a token of any kid.
	kid string
	// alg, when set, is the only algorithm the key may verify.
	alg string
	pub any
}

// fits reports whether k may verify a token signed with alg.
func (k key) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch p := k.pub.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		return alg == "ES256" && p.Curve == elliptic.P256() || alg == "ES384" && p.Curve == elliptic.P384() || alg == "ES512" && p.Curve == elliptic.P521()
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case []byte:
		return strings.HasPrefix(alg, "HS")
	}
	return false
}

// jwk is a JSON Web Key (RFC 7517) of the kinds a JWS may be verified with.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	K   string `json:"k"`
}

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

// minSecretBytes is the shortest HMAC secret accepted (RFC 7518 3.2 asks for
// at least the hash size; 32 bytes is HS256's).
const minSecretBytes = 32

// parseJWKS parses a JWK Set, or a single JWK. Keys of unsupported kinds
// and keys meant for encryption are skipped; secret (oct) keys are refused
// unless allowSecret, since a published JWKS must never hold one.
func parseJWKS(data []byte, allowSecret bool) ([]key, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JWK or JWK Set: %v", err)
	}
	raws := set.Keys
	if raws == nil {
		raws = []json.RawMessage{data}
	}
	var out []key
	for i, raw := range raws {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("key %d: %v", i, err)
		}
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		k, err := j.key(allowSecret)
		if errors.Is(err, errUnsupported) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %v", i, j.Kid, err)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no usable signature keys")
	}
	return out, nil
}

var errUnsupported = errors.New("unsupported key type")

func (j *jwk) key(allowSecret bool) (key, error) {
	k := key{kid: j.Kid, alg: j.Alg}
	switch j.Kty {
	case "RSA":
		n, err1 := b64(j.N)
		e, err2 := b64(j.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return k, fmt.Errorf("invalid RSA n or e")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if err := checkRSA(pub); err != nil {
			return k, err
		}
		k.pub = pub
	case "EC":
		curve, size := curveOf(j.Crv)
		if curve == nil {
			return k, fmt.Errorf("unsupported curve %q", j.Crv)
		}
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return k, fmt.Errorf("invalid EC x or y")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return k, fmt.Errorf("invalid EC point: %v", err)
		}
		k.pub = pub
	case "OKP":
		x, err := b64(j.X)
		if j.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return k, fmt.Errorf("invalid OKP key (only Ed25519 is supported)")
		}
		k.pub = ed25519.PublicKey(x)
	case "oct":
		if !allowSecret {
			return k, fmt.Errorf("a secret (oct) key in a published key set")
		}
		s, err := b64(j.K)
		if err != nil || len(s) < minSecretBytes {
			return k, fmt.Errorf("invalid oct key: want at least %d bytes", minSecretBytes)
		}
		k.pub = s
	default:
		return k, errUnsupported
	}
	return k, nil
}

func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(strings.TrimRight(s, "="))
}

func curveOf(crv string) (elliptic.Curve, int) {
	switch crv {
	case "P-256":
		return elliptic.P256(), 32
	case "P-384":
		return elliptic.P384(), 48
	case "P-521":
		return elliptic.P521(), 66
	}
	return nil, 0
}

func checkRSA(pub *rsa.PublicKey) error {
	if pub.N.BitLen() < minRSABits {
		return fmt.Errorf("RSA key of %d bits; want at least %d", pub.N.BitLen(), minRSABits)
	}
	if pub.E < 3 || pub.E%2 == 0 {
		return fmt.Errorf("invalid RSA exponent")
	}
	return nil
}

// parseKeyFile parses a key file: PEM public keys or certificates, or a JWK
// or JWK Set (which may hold secret keys, since the file is local).
func parseKeyFile(data []byte) ([]key, error) {
	if strings.HasPrefix(strings.TrimSpace(string(data)), "{") {
		return parseJWKS(data, true)
	}
	var out []key
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var pub any
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("PEM block %q is not a public key or certificate", b.Type)
		}
		if err != nil {
			return nil, err
		}
		if r, ok := pub.(*rsa.PublicKey); ok {
			if err := checkRSA(r); err != nil {
				return nil, err
			}
		}
		out = append(out, key{pub: pub})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no PEM public key, certificate or JWK found")
	}
	return out, nil
}
