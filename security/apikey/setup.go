package apikey

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/rosettagw/rosetta/security"
)

// Config is the api_key policy's configuration.
type Config struct {
	// Header carries the key (default "X-Api-Key").
	Header string `yaml:"header"`
	// QueryParam, when set, also accepts the key in this query parameter
	// (on the protocols with a query: REST, WebSocket, gRPC-Web). Off by
	// default: URLs end up in browser histories and proxy logs.
	QueryParam string `yaml:"query_param"`
	// Keys are the accepted keys, stored only as hashes.
	Keys []KeyConfig `yaml:"keys"`
	// Realm is the realm of the WWW-Authenticate challenge (default
	// "rosetta").
	Realm string `yaml:"realm"`
}

// KeyConfig is one accepted key.
type KeyConfig struct {
	// SHA256 is the hex SHA-256 of the key (`printf %s "$KEY" | sha256sum`).
	SHA256 string `yaml:"sha256"`
	// Identity names the key's holder; it becomes the call's subject.
	Identity string `yaml:"identity"`
	// Scopes are the permissions the key grants.
	Scopes []string `yaml:"scopes"`
}

// New returns the policy cfg describes.
func New(cfg Config) (*Keys, error) {
	k := &Keys{header: strings.ToLower(cfg.Header), query: cfg.QueryParam, realm: cfg.Realm, byHash: map[[32]byte]*KeyConfig{}}
	if k.header == "" {
		k.header = "x-api-key"
	}
	if k.realm == "" {
		k.realm = "rosetta"
	}
	if len(cfg.Keys) == 0 {
		return nil, fmt.Errorf("api_key needs keys")
	}
	for i := range cfg.Keys {
		kc := &cfg.Keys[i]
		raw, err := hex.DecodeString(kc.SHA256)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("keys[%d]: sha256 must be 64 hex digits", i)
		}
		if kc.Identity == "" {
			return nil, fmt.Errorf("keys[%d]: identity is required", i)
		}
		h := [32]byte(raw)
		if _, dup := k.byHash[h]; dup {
			return nil, fmt.Errorf("keys[%d]: the same key is listed twice", i)
		}
		k.byHash[h] = kc
	}
	return k, nil
}

func init() {
	security.Register(security.Kind{
		Name:   "api_key",
		Config: func() any { return new(Config) },
		Build: func(c any, _ security.Env) (*security.Policy, error) {
			k, err := New(*c.(*Config))
			if err != nil {
				return nil, err
			}
			return &security.Policy{Phase: security.PhaseAuthenticate, Wrap: k.Wrap, Challenge: k.Challenge(), CredentialParams: k.CredentialParams()}, nil
		},
	})
}
