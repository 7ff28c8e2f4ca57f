//go:build race

package test

// Under the race detector (go test -race) the binaries the tests start are
// built with it too, so a data race in the gateway fails the test whose
// traffic found it: the race-enabled process exits with status 66 (and the
// report on its stderr) instead of 0.
func init() { raceBuild = true }
