package promtext

import (
	"maps"
	"strings"
	"testing"
)

func TestParseKeepsUnlabelledSamples(t *testing.T) {
	const exposition = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
# HELP rosetta_calls_total Calls.
# TYPE rosetta_calls_total counter
rosetta_calls_total{protocol="rest"} 7
rosetta_calls_total 3
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0.5"} 0.001
go_gc_duration_seconds_sum 0.25
go_gc_duration_seconds_count 12
# TYPE rosetta_call_seconds histogram
rosetta_call_seconds_bucket{le="+Inf"} 5
rosetta_call_seconds_sum 1.5
rosetta_call_seconds_count 5
process_open_fds 1.5e+01
`
	got, err := Parse(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"go_goroutines":                42,
		"rosetta_calls_total":          3,
		"go_gc_duration_seconds_sum":   0.25,
		"go_gc_duration_seconds_count": 12,
		"rosetta_call_seconds_sum":     1.5,
		"rosetta_call_seconds_count":   5,
		"process_open_fds":             15,
	}
	if !maps.Equal(got, want) {
		t.Fatalf("Parse = %v, want %v", got, want)
	}
}

func TestParseRejectsMalformedValue(t *testing.T) {
	if _, err := Parse(strings.NewReader("go_goroutines many\n")); err == nil {
		t.Fatal("Parse accepted a value that is not a number")
	}
}
