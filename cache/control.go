package cache

import (
	"strconv"
	"strings"
	"time"
)

// control is what a Cache-Control field says to this cache (RFC 9111
// section 5.2), from a request or from a response.
type control struct {
	noStore, noCache, private bool
	// maxAge is max-age (or, in a response, s-maxage, which a shared
	// cache prefers); hasMaxAge says whether one was given.
	maxAge    time.Duration
	hasMaxAge bool
}

// parseControl reads the directives of every Cache-Control value;
// unknown directives are ignored, as RFC 9111 requires, and a malformed
// max-age counts as 0 (stale at once), as it recommends.
func parseControl(values []string) control {
	var c control
	sMaxAge := false
	for _, v := range values {
		for d := range strings.SplitSeq(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store":
				c.noStore = true
			case "no-cache":
				c.noCache = true
			case "private":
				c.private = true
			case "max-age":
				if !sMaxAge {
					c.maxAge, c.hasMaxAge = seconds(arg), true
				}
			case "s-maxage":
				c.maxAge, c.hasMaxAge, sMaxAge = seconds(arg), true, true
			}
		}
	}
	return c
}

// seconds parses a delta-seconds argument, possibly quoted.
func seconds(arg string) time.Duration {
	n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(arg), `"`), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(min(n, int64(365*24*3600))) * time.Second
}
