package mqtt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPasswords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	// Written by `mosquitto_passwd -b -c passwd dev-1 s3cret` (Mosquitto 2.0).
	os.WriteFile(path, []byte("# devices\n\ndev-1:$7$101$8re0/SWm9F1oS7O4$2U+lHgjzRMYO9QXz69VivwTcXUz7GLVyTUbxkiVsvW0/38yx55pY5Ui9hUwk03MhUUgM4+NJ2HVf+gFlg0A0lw==\n"), 0o600)
	p, err := LoadPasswords(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, password string
		want           bool
	}{
		{"dev-1", "s3cret", true},
		{"dev-1", "s3cret ", false},
		{"dev-1", "", false},
		{"dev-2", "s3cret", false},
	} {
		if got := p.Check(c.user, []byte(c.password)); got != c.want {
			t.Errorf("Check(%q, %q) = %v", c.user, c.password, got)
		}
	}
	for _, bad := range []string{"nocolon", ":$7$1$YQ==$YQ==", "u:$6$salt$hash", "u:$7$x$YQ==$YQ==", "u:$7$1$!!$YQ=="} {
		os.WriteFile(path, []byte(bad+"\n"), 0o600)
		if _, err := LoadPasswords(path); err == nil || !strings.Contains(err.Error(), ":1:") {
			t.Errorf("%q: error %v, want one naming line 1", bad, err)
		}
	}
}
