package library

import (
	"bytes"
	"context"
	"io/fs"
	"path"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/protobuf/types/known/timestamppb"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// textContentType is the content type of a book's text.
const textContentType = "text/plain; charset=utf-8"

// maxTextSize bounds the text of one book, in bytes.
const maxTextSize = 1 << 20

// assets are the static assets GetAsset serves, by path.
var assets = map[string]string{
	"index.html":                    "<!doctype html>\n<title>Library</title>\n<h1>Library</h1>\n",
	"css/site.css":                  "body { font-family: serif; margin: 2em; }\n",
	"js/app.js":                     "console.log(\"library\");\n",
	"images/covers/dune.png":        "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR",
	"docs/api/v1/openapi.json":      "{\"openapi\": \"3.1.0\"}\n",
	"docs/guide/getting-started.md": "# Getting started\n\nList the shelves, then the books.\n",
}

// contentTypes maps a file extension to the content type GetAsset reports.
// The table is fixed, unlike mime.TypeByExtension, which reads the
// machine's mime.types files.
var contentTypes = map[string]string{
	".css":  "text/css; charset=utf-8",
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".json": "application/json",
	".md":   "text/markdown; charset=utf-8",
	".png":  "image/png",
	".txt":  textContentType,
}

// DownloadBook returns the text of the book named by req.name as a
// "text/plain; charset=utf-8" body; a book without text has an empty body.
func (s *Server) DownloadBook(_ context.Context, req *libraryv1.DownloadBookRequest) (*httpbody.HttpBody, error) {
	s.calls.Add(1)
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, e, err := s.lookup("name", req.GetName())
	if err != nil {
		return nil, err
	}
	return &httpbody.HttpBody{ContentType: textContentType, Data: bytes.Clone(e.text)}, nil
}

// UploadBookText replaces the text of the book named by req.name with
// req.text.data, which must be UTF-8 and at most 1 MiB, and returns the book
// with its new update_time.
func (s *Server) UploadBookText(_ context.Context, req *libraryv1.UploadBookTextRequest) (*libraryv1.Book, error) {
	s.calls.Add(1)
	if _, err := parseBookName("name", req.GetName()); err != nil {
		return nil, err
	}
	data := req.GetText().GetData()
	if len(data) > maxTextSize {
		return nil, invalid("text is %d bytes, more than the %d allowed", len(data), maxTextSize)
	}
	if !utf8.Valid(data) {
		return nil, invalid("text must be UTF-8")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	_, e, err := s.lookup("name", req.GetName())
	if err != nil {
		return nil, err
	}
	b := cloneBook(e.book)
	b.UpdateTime = timestamppb.Now()
	e.book = b
	e.text = bytes.Clone(data)
	return cloneBook(b), nil
}

// GetAsset describes the static asset at req.path, a slash-separated
// relative path such as "css/site.css": its path, its content type, guessed
// from the extension, and its size in bytes. The assets are a fixed set:
// index.html, css/site.css, js/app.js, images/covers/dune.png,
// docs/api/v1/openapi.json and docs/guide/getting-started.md.
func (s *Server) GetAsset(_ context.Context, req *libraryv1.GetAssetRequest) (*libraryv1.Asset, error) {
	s.calls.Add(1)
	p := req.GetPath()
	if p == "" {
		return nil, invalid("path is required")
	}
	if p == "." || !fs.ValidPath(p) {
		return nil, invalid("path %q is not a clean relative path (no leading slash, no empty, \".\" or \"..\" element)", p)
	}
	content, ok := assets[p]
	if !ok {
		return nil, notFound("asset", p)
	}
	ct, ok := contentTypes[path.Ext(p)]
	if !ok {
		ct = "application/octet-stream"
	}
	return &libraryv1.Asset{Path: p, ContentType: ct, Size: int64(len(content))}, nil
}
