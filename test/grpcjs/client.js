// The client of test/grpcjs_test.go: calls GetShelf on the gateway's native
// gRPC ingress with @grpc/grpc-js, once for a shelf and once for a call the
// upstream fails, each with custom metadata, and prints what came back as
// one JSON line. Messages are hand-encoded, so no .proto is needed.
'use strict';
const grpc = require('@grpc/grpc-js');

const client = new grpc.Client(process.argv[2], grpc.credentials.createInsecure());

function getShelf(name) {
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set('x-something', 'value');
    md.add('x-multi', 'a');
    md.add('x-multi', 'b');
    const req = Buffer.concat([Buffer.from([0x0a, name.length]), Buffer.from(name)]); // GetShelfRequest{name}
    const out = {};
    const call = client.makeUnaryRequest('/example.library.v1.LibraryService/GetShelf', (b) => b, (b) => b, req, md,
      { deadline: Date.now() + 10000 }, (err, resp) => {
        if (err) {
          out.code = err.code;
          out.message = err.details;
        } else {
          out.code = 0;
          out.response = resp.toString('base64');
        }
      });
    call.on('metadata', (m) => { out.header = m.getMap(); });
    call.on('status', (s) => {
      out.trailer = s.metadata.getMap();
      setImmediate(() => resolve(out));
    });
  });
}

(async () => {
  const ok = await getShelf('shelves/1');
  const failed = await getShelf('shelves/teapot');
  console.log(JSON.stringify({ ok, failed }));
  client.close();
})();
