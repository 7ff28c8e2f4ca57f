// Package explorer is the API explorer page of the gateway: Swagger UI
// (the npm package swagger-ui-dist, its files embedded in the binary, so
// the page needs no CDN) pointed at the gateway's own OpenAPI document.
//
// The files in dist/ are copied from the package that package.json pins by
// scripts/update-explorer.sh; their licence and notice are beside them.
package explorer

import (
	"embed"
	"encoding/json"
	"html"
)

//go:embed dist/swagger-ui-bundle.js dist/swagger-ui.css
var dist embed.FS

// Asset is one file of the page, served at Path.
type Asset struct {
	Path        string
	ContentType string
	Body        []byte
}

// Page returns the files of the explorer served under prefix ("/docs"):
// the HTML page at prefix itself, its script at prefix+"/init.js", and
// Swagger UI's script and style sheet. The page loads the OpenAPI
// document from specURL, lets the reader enter credentials for the
// document's security schemes, and sends "try it" calls to the gateway
// that serves it.
func Page(prefix, specURL string) []Asset {
	bundle, _ := dist.ReadFile("dist/swagger-ui-bundle.js")
	css, _ := dist.ReadFile("dist/swagger-ui.css")
	spec, _ := json.Marshal(specURL)
	page := `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rosetta API explorer</title>
<link rel="stylesheet" href="` + html.EscapeString(prefix) + `/swagger-ui.css">
</head>
<body>
<div id="explorer"></div>
<script src="` + html.EscapeString(prefix) + `/swagger-ui-bundle.js"></script>
<script src="` + html.EscapeString(prefix) + `/init.js"></script>
</body>
</html>
`
	init := `window.ui = SwaggerUIBundle({
  url: ` + string(spec) + `,
  dom_id: "#explorer",
  deepLinking: true,
  tryItOutEnabled: true,
  displayOperationId: true,
  validatorUrl: null
});
`
	return []Asset{
		{Path: prefix, ContentType: "text/html; charset=utf-8", Body: []byte(page)},
		{Path: prefix + "/init.js", ContentType: "text/javascript; charset=utf-8", Body: []byte(init)},
		{Path: prefix + "/swagger-ui-bundle.js", ContentType: "text/javascript; charset=utf-8", Body: bundle},
		{Path: prefix + "/swagger-ui.css", ContentType: "text/css; charset=utf-8", Body: css},
	}
}
