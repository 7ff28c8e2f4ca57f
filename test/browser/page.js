// The page of Rosetta's real-browser test (test/browser_test.go). It loads
// the library schema at run time (no generated code), calls the gateway
// named by the "gateway" query parameter with @connectrpc/connect-web's
// Connect and gRPC-Web transports, the latter in binary and in JSON
// (application/grpc-web+json), a unary and a server-streaming call each,
// and opens a bidirectional stream with the browser's own WebSocket, then
// POSTs what it saw to /results.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

const gateway = new URL(location.href).searchParams.get("gateway");

async function rpcs(results) {
  const bytes = new Uint8Array(await (await fetch("/library.binpb")).arrayBuffer());
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
  const service = registry.getService("example.library.v1.LibraryService");
  const transports = {
    connect: createConnectTransport({ baseUrl: gateway }),
    grpcWeb: createGrpcWebTransport({ baseUrl: gateway }),
    grpcWebJson: createGrpcWebTransport({ baseUrl: gateway, useBinaryFormat: false }),
  };
  for (const [name, transport] of Object.entries(transports)) {
    const client = createClient(service, transport);
    const book = await client.getBook({ name: "shelves/1/books/dune" });
    results[name + "Unary"] = book.title;
    const names = [];
    for await (const b of client.streamBooks({ parent: "shelves/2" })) {
      names.push(b.name);
    }
    results[name + "Stream"] = names;
    try {
      await client.getBook({ name: "shelves/1/books/missing" });
      results[name + "Error"] = "no error";
    } catch (e) {
      results[name + "Error"] = e.code; // a connect Code: 5 is NotFound
    }
  }
}

// chat runs a bidirectional stream over a WebSocket: two messages and their
// echoes, a half-close, the final status and the close code.
function chat(results) {
  return new Promise((resolve, reject) => {
    const url = gateway.replace(/^http/, "ws") + "/ws/example.library.v1.LibraryService/Chat";
    const ws = new WebSocket(url, ["rosetta.json"]);
    const echoes = [];
    ws.onopen = () => ws.send(JSON.stringify({ message: "hello" }));
    ws.onmessage = (ev) => {
      const frame = JSON.parse(ev.data);
      if (frame.result) {
        echoes.push(frame.result.message);
        if (echoes.length === 1) {
          ws.send(JSON.stringify({ message: "from chromium" }));
        } else {
          ws.send(""); // half-close
        }
      } else if (frame.status) {
        results.wsStatus = frame.status.code ?? 0;
      }
    };
    ws.onclose = (ev) => {
      results.wsEchoes = echoes;
      results.wsClose = ev.code;
      resolve();
    };
    ws.onerror = () => reject(new Error("WebSocket error"));
  });
}

async function main() {
  const results = {};
  try {
    await rpcs(results);
    await chat(results);
  } catch (e) {
    results.error = String(e && e.stack ? e.stack : e);
  }
  await fetch("/results", { method: "POST", body: JSON.stringify(results) });
}

main();
