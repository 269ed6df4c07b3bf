// Command client calls recsysd from Go: one long-lived connection, a
// deadline on every call, UNAVAILABLE and CANCELLED retried by the
// channel's service config, keepalive the daemon accepts, TLS or mutual
// TLS, and the standard health check.
//
//	client --addr 127.0.0.1:50051 --user u000001 --items ITEM... \
//	    [--batch USER...] [--tls-ca ca.pem [--tls-cert client.pem --tls-key client.key]]
//
// prints the answers as one JSON object (field names as in the .proto).
// With --load SECONDS it calls Recommend for --user back to back on
// --concurrency goroutines for that long instead, and prints how many
// calls answered and how many failed, by status.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "recsysd/examples/clients/go/recsysv1"
)

// serviceConfig: reads are safe to try again. UNAVAILABLE means the call
// did not reach a daemon that took it (connection refused, reset, the
// daemon draining). CANCELLED, from the daemon, means it was shutting
// down: the gRPC C core server cancels a call that reaches it in the
// instant between its shutdown and its GOAWAY reaching the client (a call
// this client cancels itself is over, never retried). Retry both, with
// backoff, within the call's deadline. Never retry DEADLINE_EXCEEDED: the
// caller's time is spent, and a retry would only add load to a daemon that
// is already late. And wait for a daemon that is not there yet
// (restarting), within the deadline, rather than fail at once.
const serviceConfig = `{"methodConfig": [{
  "name": [{"service": "recsys.v1.Recommender", "method": "Recommend"},
           {"service": "recsys.v1.Recommender", "method": "BatchRecommend"},
           {"service": "recsys.v1.Recommender", "method": "CheckEligibility"},
           {"service": "recsys.v1.Recommender", "method": "SimilarItems"},
           {"service": "recsys.v1.Recommender", "method": "GetModelInfo"},
           {"service": "grpc.health.v1.Health"}],
  "waitForReady": true,
  "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.1s", "maxBackoff": "1s",
                  "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"]}
}]}`

type args struct {
	addr, user, tlsCA, tlsCert, tlsKey string
	items, batch                      []string
	count, deadlineMS, concurrency    int
	load                              float64
}

func parseArgs(argv []string) (args, error) {
	a := args{addr: "127.0.0.1:50051", count: 10, deadlineMS: 2000, concurrency: 4}
	strs := map[string]*string{"--addr": &a.addr, "--user": &a.user, "--tls-ca": &a.tlsCA,
		"--tls-cert": &a.tlsCert, "--tls-key": &a.tlsKey}
	lists := map[string]*[]string{"--items": &a.items, "--batch": &a.batch}
	ints := map[string]*int{"--count": &a.count, "--deadline-ms": &a.deadlineMS,
		"--concurrency": &a.concurrency}
	for i := 0; i < len(argv); i++ {
		f := argv[i]
		switch {
		case lists[f] != nil:
			for i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "--") {
				i++
				*lists[f] = append(*lists[f], argv[i])
			}
		case i+1 >= len(argv):
			return a, fmt.Errorf("%s: missing value", f)
		case strs[f] != nil:
			i++
			*strs[f] = argv[i]
		case ints[f] != nil:
			i++
			n, err := strconv.Atoi(argv[i])
			if err != nil {
				return a, fmt.Errorf("%s: %v", f, err)
			}
			*ints[f] = n
		case f == "--load":
			i++
			v, err := strconv.ParseFloat(argv[i], 64)
			if err != nil {
				return a, fmt.Errorf("--load: %v", err)
			}
			a.load = v
		default:
			return a, fmt.Errorf("unknown argument %s", f)
		}
	}
	if a.user == "" {
		return a, fmt.Errorf("--user is required")
	}
	return a, nil
}

func transportCredentials(a args) (credentials.TransportCredentials, error) {
	if a.tlsCA == "" {
		return insecure.NewCredentials(), nil
	}
	ca, err := os.ReadFile(a.tlsCA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s: no certificate", a.tlsCA)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if a.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(a.tlsCert, a.tlsKey)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}

func dial(a args) (*grpc.ClientConn, error) {
	creds, err := transportCredentials(a)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(a.addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(serviceConfig),
		// recsysd accepts a client's pings every 10 s or more, also
		// between calls; it pings an idle connection itself after 60 s.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		// A daemon restarting (a deploy, a node drained) is back within a
		// second or two: try to reconnect that soon.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6,
				Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 5 * time.Second}))
}

func asJSON(m proto.Message) json.RawMessage {
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func answers(conn *grpc.ClientConn, a args) (map[string]any, error) {
	deadline := time.Duration(a.deadlineMS) * time.Millisecond
	call := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), deadline)
	}
	ctx, cancel := call()
	defer cancel()
	h, err := healthpb.NewHealthClient(conn).Check(ctx,
		&healthpb.HealthCheckRequest{Service: "recsys.v1.Recommender"})
	if err != nil {
		return nil, err
	}
	stub := pb.NewRecommenderClient(conn)
	ctx, cancel = call()
	defer cancel()
	rec, err := stub.Recommend(ctx, &pb.RecommendRequest{UserId: a.user, Count: uint32(a.count)})
	if err != nil {
		return nil, err
	}
	ctx, cancel = call()
	defer cancel()
	elig, err := stub.CheckEligibility(ctx, &pb.EligibilityRequest{UserId: a.user,
		ItemIds: a.items})
	if err != nil {
		return nil, err
	}
	reqs := make([]*pb.RecommendRequest, len(a.batch))
	for i, u := range a.batch {
		reqs[i] = &pb.RecommendRequest{UserId: u, Count: uint32(a.count)}
	}
	ctx, cancel = call()
	defer cancel()
	batch, err := stub.BatchRecommend(ctx, &pb.BatchRecommendRequest{Requests: reqs})
	if err != nil {
		return nil, err
	}
	return map[string]any{"health": h.Status.String(), "recommend": asJSON(rec),
		"eligibility": asJSON(elig), "batch": asJSON(batch)}, nil
}

func load(conn *grpc.ClientConn, a args) map[string]any {
	stub := pb.NewRecommenderClient(conn)
	req := &pb.RecommendRequest{UserId: a.user, Count: uint32(a.count)}
	end := time.Now().Add(time.Duration(a.load * float64(time.Second)))
	var mu sync.Mutex
	outcomes, details := map[string]int{}, map[string]string{}
	var wg sync.WaitGroup
	for w := 0; w < a.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				ctx, cancel := context.WithTimeout(context.Background(),
					time.Duration(a.deadlineMS)*time.Millisecond)
				_, err := stub.Recommend(ctx, req)
				cancel()
				s := status.Convert(err)
				mu.Lock()
				outcomes[s.Code().String()]++
				if err != nil && details[s.Code().String()] == "" {
					details[s.Code().String()] = s.Message()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	calls := 0
	for _, n := range outcomes {
		calls += n
	}
	return map[string]any{"calls": calls, "outcomes": outcomes, "details": details}
}

func main() {
	a, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(2)
	}
	conn, err := dial(a)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	defer conn.Close()
	var out map[string]any
	if a.load > 0 {
		out = load(conn, a)
	} else if out, err = answers(conn, a); err != nil {
		fmt.Fprintln(os.Stderr, "client:", status.Code(err), err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}
