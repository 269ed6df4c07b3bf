package recsysd.example;

import com.google.protobuf.MessageOrBuilder;
import com.google.protobuf.util.JsonFormat;
import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import java.io.File;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import recsys.v1.RecommenderGrpc;
import recsys.v1.RecommenderOuterClass.BatchRecommendRequest;
import recsys.v1.RecommenderOuterClass.EligibilityRequest;
import recsys.v1.RecommenderOuterClass.RecommendRequest;

/**
 * Calls recsysd from Java: one long-lived channel, a deadline on every call, UNAVAILABLE and
 * CANCELLED retried by the channel's service config, keepalive the daemon accepts, TLS or mutual
 * TLS, and the standard health check.
 *
 * <pre>
 * java -jar target/client.jar --addr 127.0.0.1:50051 --user u000001 --items ITEM... \
 *     [--batch USER...] [--tls-ca ca.pem [--tls-cert client.pem --tls-key client.key]]
 * </pre>
 *
 * prints the answers as one JSON object (field names as in the .proto). With --load SECONDS it
 * calls Recommend for --user back to back on --concurrency threads for that long instead, and
 * prints how many calls answered and how many failed, by status.
 */
public final class Client {
  private static final List<String> READS =
      List.of("Recommend", "BatchRecommend", "CheckEligibility", "SimilarItems", "GetModelInfo");

  /**
   * Reads are safe to try again. UNAVAILABLE means the call did not reach a daemon that took it
   * (connection refused, reset, the daemon draining). CANCELLED, from the daemon, means it was
   * shutting down: the gRPC C core server cancels a call that reaches it in the instant between
   * its shutdown and its GOAWAY reaching the client (a call this client cancels itself is over,
   * never retried). Retry both, with backoff, within the call's deadline. Never retry
   * DEADLINE_EXCEEDED: the caller's time is spent, and a retry would only add load to a daemon
   * that is already late. And wait for a daemon that is not there yet (restarting), within the
   * deadline, rather than fail at once.
   */
  static Map<String, ?> serviceConfig() {
    List<Map<String, ?>> names = new ArrayList<>();
    for (String m : READS) {
      names.add(Map.of("service", "recsys.v1.Recommender", "method", m));
    }
    names.add(Map.of("service", "grpc.health.v1.Health"));
    Map<String, ?> retry =
        Map.of(
            "maxAttempts", 5.0,
            "initialBackoff", "0.1s",
            "maxBackoff", "1s",
            "backoffMultiplier", 2.0,
            "retryableStatusCodes", List.of("UNAVAILABLE", "CANCELLED"));
    Map<String, ?> method = Map.of("name", names, "waitForReady", true, "retryPolicy", retry);
    return Map.of("methodConfig", List.of(method));
  }

  static final class Args {
    String addr = "127.0.0.1:50051", user, tlsCa, tlsCert, tlsKey;
    List<String> items = new ArrayList<>(), batch = new ArrayList<>();
    int count = 10, deadlineMs = 2000, concurrency = 4;
    double load;

    static Args parse(String[] argv) {
      Args a = new Args();
      for (int i = 0; i < argv.length; i++) {
        String f = argv[i];
        if (f.equals("--items") || f.equals("--batch")) {
          List<String> to = f.equals("--items") ? a.items : a.batch;
          while (i + 1 < argv.length && !argv[i + 1].startsWith("--")) {
            to.add(argv[++i]);
          }
          continue;
        }
        if (i + 1 >= argv.length) {
          throw new IllegalArgumentException(f + ": missing value");
        }
        String v = argv[++i];
        switch (f) {
          case "--addr" -> a.addr = v;
          case "--user" -> a.user = v;
          case "--tls-ca" -> a.tlsCa = v;
          case "--tls-cert" -> a.tlsCert = v;
          case "--tls-key" -> a.tlsKey = v;
          case "--count" -> a.count = Integer.parseInt(v);
          case "--deadline-ms" -> a.deadlineMs = Integer.parseInt(v);
          case "--concurrency" -> a.concurrency = Integer.parseInt(v);
          case "--load" -> a.load = Double.parseDouble(v);
          default -> throw new IllegalArgumentException("unknown argument " + f);
        }
      }
      if (a.user == null) {
        throw new IllegalArgumentException("--user is required");
      }
      return a;
    }
  }

  static ManagedChannel channel(Args a) throws Exception {
    ChannelCredentials creds = InsecureChannelCredentials.create();
    if (a.tlsCa != null) {
      TlsChannelCredentials.Builder tls =
          TlsChannelCredentials.newBuilder().trustManager(new File(a.tlsCa));
      if (a.tlsCert != null) {
        tls.keyManager(new File(a.tlsCert), new File(a.tlsKey));
      }
      creds = tls.build();
    }
    return Grpc.newChannelBuilder(a.addr, creds)
        .defaultServiceConfig(serviceConfig())
        .enableRetry()
        // recsysd accepts a client's pings every 10 s or more, also between calls; it pings an
        // idle connection itself after 60 s.
        .keepAliveTime(30, TimeUnit.SECONDS)
        .keepAliveTimeout(10, TimeUnit.SECONDS)
        .keepAliveWithoutCalls(true)
        .build();
  }

  static String json(MessageOrBuilder m) throws Exception {
    return JsonFormat.printer()
        .preservingProtoFieldNames()
        .alwaysPrintFieldsWithNoPresence()
        .omittingInsignificantWhitespace()
        .print(m);
  }

  static String answers(ManagedChannel ch, Args a) throws Exception {
    long d = a.deadlineMs;
    var health =
        HealthGrpc.newBlockingStub(ch)
            .withDeadlineAfter(d, TimeUnit.MILLISECONDS)
            .check(HealthCheckRequest.newBuilder().setService("recsys.v1.Recommender").build());
    var stub = RecommenderGrpc.newBlockingStub(ch);
    var rec =
        stub.withDeadlineAfter(d, TimeUnit.MILLISECONDS)
            .recommend(RecommendRequest.newBuilder().setUserId(a.user).setCount(a.count).build());
    var elig =
        stub.withDeadlineAfter(d, TimeUnit.MILLISECONDS)
            .checkEligibility(
                EligibilityRequest.newBuilder().setUserId(a.user).addAllItemIds(a.items).build());
    BatchRecommendRequest.Builder batch = BatchRecommendRequest.newBuilder();
    for (String u : a.batch) {
      batch.addRequests(RecommendRequest.newBuilder().setUserId(u).setCount(a.count));
    }
    var responses =
        stub.withDeadlineAfter(d, TimeUnit.MILLISECONDS).batchRecommend(batch.build());
    return "{\"health\":\"" + health.getStatus().name() + "\",\"recommend\":" + json(rec)
        + ",\"eligibility\":" + json(elig) + ",\"batch\":" + json(responses) + "}";
  }

  static String load(ManagedChannel ch, Args a) throws InterruptedException {
    var stub = RecommenderGrpc.newBlockingStub(ch);
    var req = RecommendRequest.newBuilder().setUserId(a.user).setCount(a.count).build();
    long end = System.nanoTime() + (long) (a.load * 1e9);
    Map<String, LongAdder> outcomes = new ConcurrentHashMap<>();
    List<Thread> threads = new ArrayList<>();
    for (int t = 0; t < a.concurrency; t++) {
      Thread th =
          new Thread(
              () -> {
                while (System.nanoTime() < end) {
                  String code = "OK";
                  try {
                    stub.withDeadlineAfter(a.deadlineMs, TimeUnit.MILLISECONDS).recommend(req);
                  } catch (StatusRuntimeException e) {
                    code = e.getStatus().getCode().name();
                  }
                  outcomes.computeIfAbsent(code, k -> new LongAdder()).increment();
                }
              });
      th.start();
      threads.add(th);
    }
    for (Thread th : threads) {
      th.join();
    }
    long calls = 0;
    StringBuilder out = new StringBuilder("{\"outcomes\":{");
    String sep = "";
    for (var e : new TreeMap<>(outcomes).entrySet()) {
      calls += e.getValue().sum();
      out.append(sep).append('"').append(e.getKey()).append("\":").append(e.getValue().sum());
      sep = ",";
    }
    return out.append("},\"calls\":").append(calls).append('}').toString();
  }

  public static void main(String[] argv) throws Exception {
    Args a;
    try {
      a = Args.parse(argv);
    } catch (IllegalArgumentException e) {
      System.err.println("client: " + e.getMessage());
      System.exit(2);
      return;
    }
    ManagedChannel ch = channel(a);
    try {
      System.out.println(a.load > 0 ? load(ch, a) : answers(ch, a));
    } catch (StatusRuntimeException e) {
      System.err.println("client: " + e.getStatus().getCode() + " " + e.getStatus());
      System.exit(1);
    } finally {
      ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }
}
