// Package promtext reads the samples of a Prometheus text exposition, as the
// gateway's admin listener serves them on /metrics, for the bench harnesses
// (the driver's idle-memory breakdown, the soak's resource samples).
package promtext

import (
	"context"
	"fmt"
	"io"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape fetches url and returns its unlabelled samples by the name they
// carry on their line: the value of each unlabelled counter, gauge or untyped
// metric, and the _sum and _count of each unlabelled summary or histogram.
// Labelled samples (a summary's quantiles included) are left out. A status
// other than 200 or an exposition that does not parse is an error.
func Scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out, err := Parse(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return out, nil
}

// Parse reads a Prometheus text exposition from r and returns its unlabelled
// samples as Scrape does.
func Parse(r io.Reader) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) > 0 {
				continue
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[name] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[name] = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				out[name] = m.GetUntyped().GetValue()
			case dto.MetricType_SUMMARY:
				out[name+"_sum"] = m.GetSummary().GetSampleSum()
				out[name+"_count"] = float64(m.GetSummary().GetSampleCount())
			case dto.MetricType_HISTOGRAM:
				out[name+"_sum"] = m.GetHistogram().GetSampleSum()
				out[name+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out, nil
}
