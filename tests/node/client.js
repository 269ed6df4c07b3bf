'use strict';
/*
 * A thin @grpc/grpc-js client for tests/e2e/test_node.py: it makes the calls
 * a plan lists and writes down what came back. It knows nothing of the
 * expected answers: the Python driver compares them with the fixtures'
 * reference, so nothing on the Node side decides whether the daemon is
 * right.
 *
 *   node client.js PLAN.json RESULTS.json
 *
 * PLAN: {target, include_dirs, proto_files, channels: {name: grpc-js channel
 * options}, phases: [{name, channel, sequential, calls: [{id, path, types,
 * request, deadline_ms, cancel_after_ms, stall}]}]}. Phases run one after
 * the other; the calls of a phase all start in the same tick unless it is
 * sequential (the events phase: a RecordEvents call, then the calls that
 * must see it). `request`: the message as an object with the .proto's
 * field names, enums by name ({"type": "PURCHASE"}), 64-bit integers as
 * numbers or decimal strings. `types`: the method whose message types to use (default
 * `path`), so a call can name a method the proto does not have. `stall`:
 * open the call but never send its request (a client-streaming call on the
 * unary path), so the daemon's gRPC core holds a call that only a
 * cancellation or the deadline ends. `cancel_after_ms`: cancel that long after the start,
 * 0 meaning at once in the same tick.
 *
 * RESULTS: {calls: {id: {code, details, response}}, phases: {name:
 * {max_in_flight}}, channels: {name: what the wire showed}}.
 *
 * Each channel reaches the daemon through its own byte-for-byte TCP relay
 * that reads the HTTP/2 frames going by, because what grpc-js reports about
 * itself cannot show what the test must prove: how many connections a
 * channel opened, how many streams were open on one at once, whether each
 * request message was sent compressed (the flag byte of its gRPC frame) and
 * how many streams the client reset. The relay never alters a byte.
 */

const fs = require('fs');
const net = require('net');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

/* Long enough for a sanitizer build of the daemon on a loaded 2-core machine
 * to answer 200 queued calls; a call that needs it has failed anyway. */
const DEFAULT_DEADLINE_MS = 60000;

const PREFACE_LEN = 24; /* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */
const FRAME_HEADER_LEN = 9;
const FRAME = {DATA: 0, HEADERS: 1, RST_STREAM: 3};
const FLAG = {END_STREAM: 0x1, PADDED: 0x8};

/* frameReader - a 'data' listener that cuts a byte stream into HTTP/2 frames
 * (after skipping `skip` bytes of preface) and hands each to onFrame. */
function frameReader(skip, onFrame) {
    let buf = Buffer.alloc(0);
    return (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        if (skip > 0) {
            const n = Math.min(skip, buf.length);
            buf = buf.subarray(n);
            skip -= n;
        }
        while (buf.length >= FRAME_HEADER_LEN) {
            const len = buf.readUIntBE(0, 3);
            if (buf.length < FRAME_HEADER_LEN + len)
                break;
            onFrame({
                type: buf[3],
                flags: buf[4],
                stream: buf.readUInt32BE(5) & 0x7fffffff,
                payload: buf.subarray(FRAME_HEADER_LEN, FRAME_HEADER_LEN + len),
            });
            buf = buf.subarray(FRAME_HEADER_LEN + len);
        }
    };
}

/* relay - listen on a free loopback port and pass every connection through
 * to target, recording in `wire` what the frames show. Resolves to the
 * address to give grpc-js. */
function relay(target, wire) {
    const sep = target.lastIndexOf(':');
    const host = target.slice(0, sep);
    const port = Number(target.slice(sep + 1));
    const server = net.createServer((client) => {
        wire.connections++;
        const started = new Set(); /* streams the client opened */
        const sent = new Set();    /* ... and began a message on */
        const open = new Set();    /* ... and neither side has ended */
        const close = (stream) => open.delete(stream);
        const upstream = net.connect(port, host);
        client.on('data', frameReader(PREFACE_LEN, (f) => {
            if (f.type === FRAME.HEADERS && !started.has(f.stream)) {
                started.add(f.stream);
                open.add(f.stream);
                wire.streams++;
                wire.max_open_streams = Math.max(wire.max_open_streams, open.size);
            } else if (f.type === FRAME.DATA && !sent.has(f.stream)) {
                /* The first byte of a gRPC message is its compressed flag. */
                const body = f.flags & FLAG.PADDED
                    ? f.payload.subarray(1, f.payload.length - f.payload[0])
                    : f.payload;
                if (body.length > 0) {
                    sent.add(f.stream);
                    wire[body[0] === 1 ? 'compressed_messages' : 'plain_messages']++;
                }
            } else if (f.type === FRAME.RST_STREAM) {
                wire.client_resets++;
                close(f.stream);
            }
        }));
        upstream.on('data', frameReader(0, (f) => {
            if ((f.type === FRAME.HEADERS && f.flags & FLAG.END_STREAM) ||
                f.type === FRAME.RST_STREAM)
                close(f.stream);
        }));
        client.pipe(upstream);
        upstream.pipe(client);
        client.on('error', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
    });
    return new Promise((resolve, reject) => {
        server.on('error', reject);
        server.listen(0, '127.0.0.1', () => {
            server.unref();
            resolve('127.0.0.1:' + server.address().port);
        });
    });
}

/* methods - wire path ("/recsys.v1.Recommender/Recommend") -> grpc-js
 * method definition, for every service the proto files define. */
function methods(packageDefinition) {
    const out = {};
    for (const service of Object.values(packageDefinition)) {
        for (const m of Object.values(service)) {
            if (m && typeof m.path === 'string')
                out[m.path] = m;
        }
    }
    return out;
}

function startCall(client, defs, call, done) {
    const m = defs[call.types || call.path];
    if (m === undefined)
        throw new Error(`call ${call.id}: no method ${call.types || call.path} in the protos`);
    const options = {deadline: Date.now() + (call.deadline_ms || DEFAULT_DEADLINE_MS)};
    const finish = (err, response) => done(err ? {
        code: grpc.status[err.code],
        details: err.details,
        response: null,
    } : {code: 'OK', details: '', response});
    const metadata = new grpc.Metadata();
    const c = call.stall
        ? client.makeClientStreamRequest(call.path, m.requestSerialize, m.responseDeserialize,
                                         metadata, options, finish)
        : client.makeUnaryRequest(call.path, m.requestSerialize, m.responseDeserialize,
                                  call.request, metadata, options, finish);
    if (call.cancel_after_ms === 0)
        c.cancel();
    else if (call.cancel_after_ms !== undefined)
        setTimeout(() => c.cancel(), call.cancel_after_ms);
}

async function runPhase(client, defs, phase, results) {
    let inFlight = 0;
    let maxInFlight = 0;
    const one = (call) => new Promise((resolve) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        startCall(client, defs, call, (result) => {
            inFlight--;
            results[call.id] = result;
            resolve();
        });
    });
    if (phase.sequential) {
        for (const call of phase.calls)
            await one(call);
    } else {
        await Promise.all(phase.calls.map(one));
    }
    return {max_in_flight: maxInFlight};
}

async function main(planPath, resultsPath) {
    const plan = JSON.parse(fs.readFileSync(planPath, 'utf8'));
    const packageDefinition = protoLoader.loadSync(plan.proto_files, {
        includeDirs: plan.include_dirs,
        keepCase: true,
        longs: String, /* int64 and uint64 exactly, as decimal strings */
        enums: String,
        defaults: true,
        arrays: true,
    });
    const defs = methods(packageDefinition);
    const clients = {};
    const channels = {};
    for (const [name, options] of Object.entries(plan.channels)) {
        const wire = {connections: 0, streams: 0, max_open_streams: 0, compressed_messages: 0,
                      plain_messages: 0, client_resets: 0};
        const address = await relay(plan.target, wire);
        clients[name] = new grpc.Client(address, grpc.credentials.createInsecure(), options);
        channels[name] = wire;
    }
    const results = {calls: {}, phases: {}, channels};
    for (const phase of plan.phases)
        results.phases[phase.name] = await runPhase(clients[phase.channel], defs, phase,
                                                    results.calls);
    for (const client of Object.values(clients))
        client.close();
    fs.writeFileSync(resultsPath, JSON.stringify(results));
}

main(process.argv[2], process.argv[3]).then(() => process.exit(0), (err) => {
    console.error(err);
    process.exit(1);
});
