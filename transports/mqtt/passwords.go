package mqtt

import (
	"bufio"
	"crypto/pbkdf2"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Passwords are device credentials from a file of hashed secrets in
// Mosquitto's format, one "username:$7$iterations$salt$hash" line each
// (PBKDF2-HMAC-SHA512, salt and hash in base64), as `mosquitto_passwd`
// writes them. Blank lines and lines starting with # are ignored.
type Passwords struct {
	users map[string]passwordHash
}

type passwordHash struct {
	iterations int
	salt, hash []byte
}

// LoadPasswords reads a password file; an entry it cannot read is an error
// naming its line.
func LoadPasswords(path string) (*Passwords, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p := &Passwords{users: map[string]passwordHash{}}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%s:%d: want username:hash", path, n)
		}
		h, err := parseHash(hash)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: user %q: %v", path, n, user, err)
		}
		p.users[user] = h
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return p, nil
}

// parseHash reads "$7$iterations$salt$hash".
func parseHash(s string) (passwordHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "7" {
		return passwordHash{}, fmt.Errorf("not a $7$ (PBKDF2-SHA512) hash; create it with mosquitto_passwd")
	}
	it, err := strconv.Atoi(parts[2])
	if err != nil || it < 1 {
		return passwordHash{}, fmt.Errorf("bad iteration count %q", parts[2])
	}
	salt, err1 := base64.StdEncoding.DecodeString(parts[3])
	hash, err2 := base64.StdEncoding.DecodeString(parts[4])
	if err1 != nil || err2 != nil || len(hash) == 0 {
		return passwordHash{}, fmt.Errorf("salt or hash is not base64")
	}
	return passwordHash{iterations: it, salt: salt, hash: hash}, nil
}

// Check reports whether password is user's.
func (p *Passwords) Check(user string, password []byte) bool {
	h, ok := p.users[user]
	if !ok {
		return false
	}
	got, err := pbkdf2.Key(sha512.New, string(password), h.salt, h.iterations, len(h.hash))
	return err == nil && subtle.ConstantTimeCompare(got, h.hash) == 1
}
