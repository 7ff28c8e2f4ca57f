package ratelimit

// Keys returns the number of keys l's local store holds.
func Keys(l *Limiter) int { return l.local.len() }
