'use strict';
/*
 * Call recsysd from Node: one long-lived channel, a deadline on every
 * call, UNAVAILABLE retried by the channel's service config, keepalive the
 * daemon accepts, TLS or mutual TLS, and the standard health check.
 *
 *   node client.js --addr 127.0.0.1:50051 --user u000001 --items ITEM... \
 *       [--batch USER...] [--tls-ca ca.pem [--tls-cert client.pem --tls-key client.key]]
 *
 * prints the answers as one JSON object (field names as in the .proto).
 * With --load SECONDS it calls Recommend for --user back to back,
 * --concurrency calls at a time, for that long instead, and prints how
 * many calls answered and how many failed, by status.
 *
 * The stubs come from ../../../proto at run time (@grpc/proto-loader).
 */

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = process.env.RECSYS_PROTO_DIR || path.join(__dirname, '..', '..', '..', 'proto');
const HEALTH_PROTO = require.resolve('grpc-health-check/proto/health/v1/health.proto');

/* Reads are safe to try again. UNAVAILABLE means the call did not reach a
 * daemon that took it (connection refused, reset, the daemon draining).
 * CANCELLED, from the daemon, means it was shutting down: the gRPC C core
 * server cancels a call that reaches it in the instant between its shutdown
 * and its GOAWAY reaching the client (a call this client cancels itself is
 * over, never retried). Retry both, with backoff, within the call's
 * deadline. Never retry DEADLINE_EXCEEDED: the caller's time is spent, and
 * a retry would only add load to a daemon that is already late. And wait
 * for a daemon that is not there yet (restarting), within the deadline,
 * rather than fail at once (waitForReady). */
const SERVICE_CONFIG = {
    methodConfig: [{
        name: ['Recommend', 'BatchRecommend', 'CheckEligibility', 'SimilarItems', 'GetModelInfo']
            .map((method) => ({service: 'recsys.v1.Recommender', method}))
            .concat([{service: 'grpc.health.v1.Health'}]),
        waitForReady: true,
        retryPolicy: {
            maxAttempts: 5,
            initialBackoff: '0.1s',
            maxBackoff: '1s',
            backoffMultiplier: 2,
            retryableStatusCodes: ['UNAVAILABLE', 'CANCELLED'],
        },
    }],
};

const CHANNEL_OPTIONS = {
    'grpc.service_config': JSON.stringify(SERVICE_CONFIG),
    /* recsysd accepts a client's pings every 10 s or more, also between
     * calls; it pings an idle connection itself after 60 s. */
    'grpc.keepalive_time_ms': 30000,
    'grpc.keepalive_timeout_ms': 10000,
    'grpc.keepalive_permit_without_calls': 1,
    /* A daemon restarting (a deploy, a node drained) is back within a
     * second or two: try to reconnect that soon, not after gRPC's default
     * 1 s growing to 120 s. */
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1000,
};

function parseArgs(argv) {
    const args = {addr: '127.0.0.1:50051', items: [], batch: [], count: 10, deadlineMs: 2000,
                  concurrency: 4};
    const lists = {'--items': 'items', '--batch': 'batch'};
    const values = {'--addr': 'addr', '--user': 'user', '--tls-ca': 'tlsCa',
                    '--tls-cert': 'tlsCert', '--tls-key': 'tlsKey'};
    const numbers = {'--count': 'count', '--deadline-ms': 'deadlineMs', '--load': 'load',
                     '--concurrency': 'concurrency'};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a in lists) {
            while (i + 1 < argv.length && !argv[i + 1].startsWith('--'))
                args[lists[a]].push(argv[++i]);
        } else if (a in values) {
            args[values[a]] = argv[++i];
        } else if (a in numbers) {
            args[numbers[a]] = Number(argv[++i]);
        } else {
            throw new Error('unknown argument ' + a);
        }
    }
    if (!args.user)
        throw new Error('--user is required');
    return args;
}

function credentials(args) {
    if (!args.tlsCa)
        return grpc.credentials.createInsecure();
    const read = (p) => (p ? fs.readFileSync(p) : null);
    return grpc.credentials.createSsl(read(args.tlsCa), read(args.tlsKey), read(args.tlsCert));
}

function load(files) {
    const def = protoLoader.loadSync(files, {keepCase: true, longs: String, enums: String,
                                            defaults: true, includeDirs: [PROTO_DIR]});
    return grpc.loadPackageDefinition(def);
}

/* call - a unary call with a deadline, as a promise. grpc-js takes
 * wait-for-ready from the call's metadata, not from the service config. */
function call(client, method, request, deadlineMs) {
    return new Promise((resolve, reject) => {
        client[method](request, new grpc.Metadata({waitForReady: true}),
                       {deadline: Date.now() + deadlineMs},
                       (err, resp) => (err ? reject(err) : resolve(resp)));
    });
}

async function answers(recommender, health, args) {
    const d = args.deadlineMs;
    const h = await call(health, 'Check', {service: 'recsys.v1.Recommender'}, d);
    const rec = await call(recommender, 'Recommend', {user_id: args.user, count: args.count}, d);
    const elig = await call(recommender, 'CheckEligibility',
                            {user_id: args.user, item_ids: args.items}, d);
    const batch = await call(recommender, 'BatchRecommend', {
        requests: args.batch.map((u) => ({user_id: u, count: args.count})),
    }, d);
    return {health: h.status, recommend: rec, eligibility: elig, batch};
}

async function loadTest(recommender, args) {
    const outcomes = {};
    const details = {}; /* the first failure's text, by status */
    const end = Date.now() + args.load * 1000;
    const req = {user_id: args.user, count: args.count};
    async function run() {
        while (Date.now() < end) {
            let code = 'OK';
            try {
                await call(recommender, 'Recommend', req, args.deadlineMs);
            } catch (err) {
                code = grpc.status[err.code];
                details[code] = details[code] || err.details;
            }
            outcomes[code] = (outcomes[code] || 0) + 1;
        }
    }
    await Promise.all(Array.from({length: args.concurrency}, run));
    return {calls: Object.values(outcomes).reduce((a, b) => a + b, 0), outcomes, details};
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const pkg = load([path.join(PROTO_DIR, 'recsys', 'v1', 'recommender.proto'), HEALTH_PROTO]);
    const creds = credentials(args);
    const recommender = new pkg.recsys.v1.Recommender(args.addr, creds, CHANNEL_OPTIONS);
    /* The same channel for both: a client shares one per daemon. */
    const health = new pkg.grpc.health.v1.Health(args.addr, creds,
                                                 {channelOverride: recommender.getChannel()});
    try {
        const out = args.load ? await loadTest(recommender, args) : await answers(recommender, health, args);
        process.stdout.write(JSON.stringify(out) + '\n');
    } finally {
        recommender.close();
    }
}

main().catch((err) => {
    process.stderr.write(String(err.stack || err) + '\n');
    process.exit(1);
});
