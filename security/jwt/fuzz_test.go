package jwt_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/rosettagw/rosetta/security/jwt"
)

// fuzzKey is a fixed Ed25519 key, so that the committed seed corpus
// (testdata/fuzz/FuzzVerify) holds tokens that verify.
var fuzzKey = ed25519.NewKeyFromSeed([]byte("rosetta-fuzz-seed-0123456789abcd"))

// FuzzVerify feeds arbitrary bearer tokens to a verifier: it must never
// panic, and must accept nothing but the valid tokens it was seeded with.
func FuzzVerify(f *testing.F) {
	der, _ := x509.MarshalPKIXPublicKey(fuzzKey.Public())
	keyFile := writeFile(f, "ed.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	secretFile := writeFile(f, "hs.jwk", []byte(`{"kty":"oct","kid":"h","k":"`+b64(hmacSecret)+`"}`))
	v, err := jwt.New(jwt.Config{
		IssuerConfig: jwt.IssuerConfig{Issuer: iss, Audience: []string{aud}, Algorithms: []string{"EdDSA"}, KeyFiles: []string{keyFile}},
		Issuers:      []jwt.IssuerConfig{{Issuer: "https://hs.example", Audience: []string{aud}, Algorithms: []string{"HS256"}, KeyFiles: []string{secretFile}}},
	}, jwt.Options{Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	valid := map[string]bool{
		sign(f, gojwt.SigningMethodEdDSA, fuzzKey, "", claims(nil)):                                             true,
		sign(f, gojwt.SigningMethodHS256, hmacSecret, "h", claims(map[string]any{"iss": "https://hs.example"})): true,
	}
	for tok := range valid {
		f.Add(tok)
	}
	f.Add(sign(f, gojwt.SigningMethodEdDSA, fuzzKey, "", claims(map[string]any{"exp": now.Add(-time.Hour).Unix()})))
	f.Add("e30.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := run(v, bearerCall(tok))
		if err == nil && id != nil && !valid[tok] {
			t.Fatalf("accepted a token it was not given: %q", tok)
		}
		if err != nil && id != nil {
			t.Fatalf("refused with an identity")
		}
	})
}
