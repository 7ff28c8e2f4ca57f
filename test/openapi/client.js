// The independent client of test/openapi_test.go. It fetches the gateway's
// OpenAPI document, validates it against the OpenAPI 3.1 JSON Schema
// (@seriousme/openapi-schema-validator), then calls the example library
// through it with openapi-client-axios, which builds each request (path,
// query, body) from the document's operation alone. It prints one JSON
// object with what it found; the Go test judges it.
//
//   node client.js http://127.0.0.1:8080
import { Validator } from "@seriousme/openapi-schema-validator";
import OpenAPIClientAxios from "openapi-client-axios";

const base = process.argv[2];
const out = { calls: {} };

const doc = await (await fetch(base + "/openapi.json")).json();
const validator = new Validator();
const res = await validator.validate(structuredClone(doc));
out.valid = res.valid;
out.version = validator.version;
if (!res.valid) out.errors = res.errors;

const api = new OpenAPIClientAxios.default({
  definition: doc,
  axiosConfigDefaults: { baseURL: base, validateStatus: () => true },
});
const client = await api.init();

async function call(name, ...args) {
  try {
    const r = await client[name](...args);
    out.calls[name] = { status: r.status, url: r.config.url, data: r.data };
  } catch (e) {
    out.calls[name] = { error: String(e) };
  }
}

await call("LibraryService_GetShelf", { "name_shelves": "1" });
await call("LibraryService_GetBook", { "name_shelves": "1", "name_books": "dune" });
await call("LibraryService_ListBooks", [
  { in: "path", name: "parent_shelves", value: "1" },
  { in: "query", name: "pageSize", value: 1 },
  { in: "query", name: "filter.genre", value: "GENRE_FICTION" },
]);
await call("LibraryService_CreateBook", [
  { in: "path", name: "parent_shelves", value: "1" },
  { in: "query", name: "bookId", value: "openapi" },
], { title: "Made through OpenAPI", priceCents: "1200", tags: ["generated"] });
await call("LibraryService_Ping", null, { message: "hello" });

console.log(JSON.stringify(out));
