package upstream

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
)

// HTTPConfig configures a plain HTTP upstream.
type HTTPConfig struct {
	// URL is the base URL; request paths are appended to its path.
	URL string
	// Targets, when set, are the endpoints ("host:port") the calls go to,
	// with the URL's scheme and path; by default, the URL's host.
	Targets []Endpoint
	// Client sends the requests (default: a client with pooled keep-alive
	// connections and no overall timeout: route deadlines apply).
	Client *http.Client
	// MaxResponseBytes bounds response bodies (default 4 MiB).
	MaxResponseBytes int64
	// Options choose the balancer, health checks, outlier detection and
	// breaker.
	Options
}

// HTTP is a plain HTTP/JSON upstream: its endpoints share one client,
// whose connections are kept per endpoint host:port.
type HTTP struct {
	*cluster
	client  *http.Client
	maxResp int64
}

// NewHTTP validates cfg and returns the upstream.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url %q: want http(s)://host[:port][/path]", cfg.URL)
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true,
		}}
	}
	maxResp := cfg.MaxResponseBytes
	if maxResp <= 0 {
		maxResp = 4 << 20
	}
	c, err := newCluster("http", cfg.Options)
	if err != nil {
		return nil, err
	}
	c.dial = func(addr string) (any, func(), error) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, nil, fmt.Errorf("want host:port")
		}
		base := *u
		base.Host = addr
		return &base, nil, nil
	}
	c.check = func(ctx context.Context, e *endpoint) error {
		probe := *e.conn.(*url.URL)
		probe.Path, probe.RawPath, probe.RawQuery = cfg.Health.path(), "", ""
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, probe.String(), nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("health: HTTP %d", resp.StatusCode)
		}
		return nil
	}
	targets := cfg.Targets
	if len(targets) == 0 {
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
		}
		targets = []Endpoint{{Addr: host}}
	}
	if err := c.SetEndpoints(targets); err != nil {
		c.Close()
		return nil, err
	}
	return &HTTP{cluster: c, client: client, maxResp: maxResp}, nil
}

// Invoke sends body to target, "METHOD /path?query", and returns the
// upstream's status, content type and body. Metadata is sent as headers.
// Only a failure to get an answer is an error (UNAVAILABLE, or the context's
// DEADLINE_EXCEEDED); the upstream's own error statuses pass through.
func (h *HTTP) Invoke(ctx context.Context, target string, body []byte, md metadata.MD) (*router.Reply, error) {
	method, path, ok := strings.Cut(target, " ")
	if !ok {
		return nil, status.Errorf(codes.Internal, "bad HTTP target %q", target)
	}
	a, err := h.begin(ctx)
	if err != nil {
		return nil, err
	}
	reply, err := h.send(ctx, a.e.conn.(*url.URL), method, path, body, md)
	switch {
	case err == nil:
		code := codes.OK
		if reply.HTTPStatus >= 400 {
			code = translate.CodeFromHTTP(reply.HTTPStatus)
		}
		a.end(code, reply.HTTPStatus >= 500, false)
		reply.Endpoint = a.e.addr
	case ctx.Err() != nil:
		a.end(status.Code(err), false, true)
	default:
		a.end(status.Code(err), status.Code(err) == codes.Unavailable, false)
	}
	return reply, err
}

// send makes one request to the endpoint at base.
func (h *HTTP) send(ctx context.Context, base *url.URL, method, path string, body []byte, md metadata.MD) (*router.Reply, error) {
	u := *base
	p, q, _ := strings.Cut(path, "?")
	// p is already escaped (path variables are substituted raw): join it to
	// the base's escaped path and let URL keep both forms consistent.
	joined, err := url.PathUnescape(strings.TrimSuffix(u.EscapedPath(), "/") + p)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "HTTP upstream path %q: %v", p, err)
	}
	u.Path, u.RawPath = joined, strings.TrimSuffix(u.EscapedPath(), "/")+p
	u.RawQuery = q
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "HTTP upstream request: %v", err)
	}
	for k, vs := range md {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if len(body) > 0 && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, status.Error(codes.DeadlineExceeded, "HTTP upstream did not answer in time")
		}
		return nil, status.Errorf(codes.Unavailable, "HTTP upstream unreachable: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, h.maxResp+1))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "HTTP upstream response: %v", err)
	}
	if int64(len(data)) > h.maxResp {
		return nil, status.Errorf(codes.ResourceExhausted, "HTTP upstream response exceeds %d bytes", h.maxResp)
	}
	header := metadata.MD{}
	for k, vs := range resp.Header {
		header[strings.ToLower(k)] = vs
	}
	return &router.Reply{Message: data, HTTPStatus: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Header: header}, nil
}
