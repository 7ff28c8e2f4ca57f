package main

import (
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rosettagw/rosetta/bench/fixtures"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{7}, 7},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}

func TestScenarioChecks(t *testing.T) {
	scs, err := scenarios()
	if err != nil {
		t.Fatal(err)
	}
	list, _ := protojson.Marshal(fixtures.ListResponse())
	if err := scs[0].check(list); err != nil {
		t.Errorf("GET small rejects the expected answer: %v", err)
	}
	if err := scs[0].check([]byte(`{"books":[],"nextPageToken":"2","totalSize":42}`)); err == nil {
		t.Error("GET small accepts a page without its book")
	}
	if err := scs[0].check([]byte(`{"books":[],"surprise":1}`)); err == nil {
		t.Error("GET small accepts an unknown field")
	}

	var stream []byte
	for _, b := range fixtures.StreamBooks() {
		msg, _ := protojson.Marshal(b)
		stream = append(append(append(stream, `{"result":`...), msg...), "}\n"...)
	}
	if err := scs[3].check(stream); err != nil {
		t.Errorf("stream rejects the expected answer: %v", err)
	}
	if err := scs[3].check(stream[:len(stream)/2]); err == nil {
		t.Error("stream accepts a truncated answer")
	}
}

func TestBodySizes(t *testing.T) {
	scs, err := scenarios()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		i        int
		min, max int
	}{{1, 1800, 2300}, {2, 60000, 68000}} {
		if n := len(scs[c.i].body); n < c.min || n > c.max {
			t.Errorf("%s: body of %d B, want %d–%d", scs[c.i].name, n, c.min, c.max)
		}
	}
}
