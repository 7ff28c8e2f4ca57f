package descriptors_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/rosettagw/rosetta/descriptors"
)

func ExampleLoad() {
	dir, err := os.MkdirTemp("", "protos")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// google/api/annotations.proto is linked into the binary: no copy needed.
	src := `syntax = "proto3";
package demo.v1;
import "google/api/annotations.proto";
message Ping { string text = 1; }
service Echo {
  rpc Say(Ping) returns (Ping) { option (google.api.http) = { post: "/v1/say" body: "*" }; }
}
`
	if err := os.WriteFile(filepath.Join(dir, "echo.proto"), []byte(src), 0o644); err != nil {
		log.Fatal(err)
	}

	schema, err := descriptors.Load(context.Background(), []descriptors.Source{
		{Proto: &descriptors.ProtoSource{ImportPaths: []string{dir}, Files: []string{"echo.proto"}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, sd := range schema.Services() {
		for i := range sd.Methods().Len() {
			m := sd.Methods().Get(i)
			rule, ok, err := descriptors.HTTPRule(m)
			if err != nil {
				log.Fatal(err)
			}
			if ok {
				fmt.Println(m.FullName(), "POST", rule.GetPost(), "body", rule.GetBody())
			}
		}
	}
	// Output: demo.v1.Echo.Say POST /v1/say body *
}
