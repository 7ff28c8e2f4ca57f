// The client of test/grpcjs_test.go: calls GetShelf on the gateway's native
// gRPC ingress with @grpc/grpc-js, once for a shelf, once for a call the
// upstream fails, each with custom metadata, and once more for the shelf from
// a client that gzip-compresses its messages; prints what came back as one
// JSON line. Messages are hand-encoded, so no .proto is needed.
'use strict';
const grpc = require('@grpc/grpc-js');

const client = new grpc.Client(process.argv[2], grpc.credentials.createInsecure());
// 2 is gzip in grpc-js's compression algorithms.
const gzipClient = new grpc.Client(process.argv[2], grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });

function getShelf(name, c = client) {
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set('x-something', 'value');
    md.add('x-multi', 'a');
    md.add('x-multi', 'b');
    const req = Buffer.concat([Buffer.from([0x0a, name.length]), Buffer.from(name)]); // GetShelfRequest{name}
    const out = {};
    const call = c.makeUnaryRequest('/example.library.v1.LibraryService/GetShelf', (b) => b, (b) => b, req, md,
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
  const gzip = await getShelf('shelves/1', gzipClient);
  console.log(JSON.stringify({ ok, failed, gzip }));
  client.close();
  gzipClient.close();
})();
