package openapi

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// comment is the leading comment of d in its .proto source, or its
// trailing comment, without comment markers; "" when the schema carries
// no source information (descriptor sets built without
// --include_source_info, server reflection).
func comment(d protoreflect.Descriptor) string {
	f := d.ParentFile()
	if f == nil {
		return ""
	}
	loc := f.SourceLocations().ByDescriptor(d)
	text := loc.LeadingComments
	if strings.TrimSpace(text) == "" {
		text = loc.TrailingComments
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(strings.TrimRight(l, " \t"), " ")
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// summary is the first sentence of a comment, for an operation's summary.
func summary(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if i := strings.Index(text, ". "); i >= 0 {
		return text[:i+1]
	}
	return text
}

// joinText joins the non-empty texts with blank lines.
func joinText(texts ...string) string {
	var out []string
	for _, t := range texts {
		if t != "" {
			out = append(out, t)
		}
	}
	return strings.Join(out, "\n\n")
}
