/*
 * recsys-cli: a command-line client for recsysd.
 *
 *     recsys-cli [--addr HOST:PORT] [--timeout SECONDS] [--json] [--tls...] <command> [args]
 *
 * One invocation makes one unary call. The answer is printed as aligned text
 * for people, or with --json as one JSON object on one line for scripts.
 * The exit status tells a script what happened without parsing anything:
 * see enum cli_exit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>

#include "base/err.h"
#include "tools/lib/rpc.h"
#include "tools/recsys-cli/args.h"
#include "tools/recsys-cli/commands.h"
#include "tools/recsys-cli/json.h"

#define CLI_NAME         "recsys-cli"
#define CLI_DEFAULT_ADDR "127.0.0.1:50051"
#define CLI_ADDR_ENV     "RECSYS_ADDR"
#define CLI_SYNOPSIS                                                                               \
    "usage: " CLI_NAME " [--addr HOST:PORT] [--timeout SECONDS] [--json] <command> [args]"
/* Long enough for a cold model page-in on the server, short enough that a
 * script stuck on a dead address notices. */
#define CLI_DEFAULT_TIMEOUT 5.0
/* Column where a command's usage starts in the full usage text: two
 * spaces, the longest name (batch-recommend) and one space. */
#define CLI_USAGE_INDENT 18

enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1,      /* the call failed, or its answer means "no" */
    CLI_EXIT_USAGE = 2,       /* bad command line: nothing was sent */
    CLI_EXIT_UNREACHABLE = 3, /* no answer in time: unreachable, not ready, too slow */
};

static const struct opt global_opts[] = {
    {"addr", 0, OPT_STRING, offsetof(struct cli_args, addr), false, 0, 0, NULL},
    {"timeout", 0, OPT_SECONDS, offsetof(struct cli_args, timeout), false, 0, 0, NULL},
    {"json", 0, OPT_FLAG, offsetof(struct cli_args, json), false, 0, 0, NULL},
    {"tls", 0, OPT_FLAG, offsetof(struct cli_args, tls), false, 0, 0, NULL},
    {"tls-ca", 0, OPT_STRING, offsetof(struct cli_args, tls_ca), false, 0, 0, NULL},
    {"tls-cert", 0, OPT_STRING, offsetof(struct cli_args, tls_cert), false, 0, 0, NULL},
    {"tls-key", 0, OPT_STRING, offsetof(struct cli_args, tls_key), false, 0, 0, NULL},
    {"help", 'h', OPT_FLAG, offsetof(struct cli_args, help), false, 0, 0, NULL},
    {.name = NULL},
};

/* ---- usage -------------------------------------------------------------- */

/* Write @text, starting each line after the first @indent columns in. */
static void put_indented(FILE *out, const char *text, int indent)
{
    for (const char *nl; (nl = strchr(text, '\n')) != NULL; text = nl + 1)
        fprintf(out, "%.*s\n%*s", (int)(nl - text), text, indent, "");
    fputs(text, out);
}

static void usage_command(FILE *out, const struct command *c)
{
    int indent = fprintf(out, "usage: " CLI_NAME " %s", c->name);
    if (c->usage[0] != '\0') {
        fputc(' ', out);
        put_indented(out, c->usage, indent + 1);
    }
    fprintf(out, "\n%s\n", c->summary);
}

static void usage(FILE *out)
{
    fputs(CLI_SYNOPSIS "\n\ncommands:\n", out);
    for (const struct command *c = commands; c->name != NULL; c++) {
        if (c->usage[0] != '\0') {
            fprintf(out, "  %-*s", CLI_USAGE_INDENT - 2, c->name);
            put_indented(out, c->usage, CLI_USAGE_INDENT);
        } else {
            fprintf(out, "  %s", c->name);
        }
        fprintf(out, "\n%*s%s\n", CLI_USAGE_INDENT, "", c->summary);
    }
    fputs("\nglobal options (before or after the command):\n"
          "  --addr HOST:PORT   server address (default: $" CLI_ADDR_ENV ", else " CLI_DEFAULT_ADDR
          ")\n"
          "  --timeout SECONDS  deadline of the call, connecting included (default: 5)\n"
          "  --json             print the response as one JSON object, for scripts\n"
          "  --tls              connect over TLS, trusting the system's CAs\n"
          "  --tls-ca FILE      connect over TLS, trusting the CAs in this PEM file\n"
          "  --tls-cert FILE    with --tls-key: this client certificate (mutual TLS)\n"
          "  --tls-key FILE     the key of --tls-cert\n"
          "  -h, --help         show this help, or a command's with the command\n"
          "\nexit status: 0 success; 1 the call failed, or health is not SERVING;\n"
          "2 usage error; 3 no answer in time (UNAVAILABLE, DEADLINE_EXCEEDED).\n",
          out);
}

/* A bad command line: say what is wrong, then how it should look. */
static int usage_error(const struct command *c, const char *msg)
{
    if (c != NULL) {
        fprintf(stderr, CLI_NAME ": %s: %s\n", c->name, msg);
        usage_command(stderr, c);
    } else {
        fprintf(stderr, CLI_NAME ": %s\n" CLI_SYNOPSIS "\nTry '" CLI_NAME " --help'.\n", msg);
    }
    return CLI_EXIT_USAGE;
}

/* ---- the call ----------------------------------------------------------- */

/* "Recommend" of "/recsys.v1.Recommender/Recommend": what errors call it. */
static const char *method_name(const struct command *c)
{
    return strrchr(c->method, '/') + 1;
}

/* No answer arrived: retrying later may help, which is what exit status 3
 * tells a script. The server also says UNAVAILABLE while it has no model. */
static bool is_unreachable(int status)
{
    return status == GRPC_STATUS_UNAVAILABLE || status == GRPC_STATUS_DEADLINE_EXCEEDED;
}

static int report_status(const struct command *c, const struct rpc_reply *r)
{
    fprintf(stderr, CLI_NAME ": %s failed: %s", method_name(c), err_status_name(r->status));
    if (r->details[0] != '\0')
        fprintf(stderr, ": %s", r->details);
    fputc('\n', stderr);
    return is_unreachable(r->status) ? CLI_EXIT_UNREACHABLE : CLI_EXIT_FAILED;
}

static int fail(const struct command *c, const char *what)
{
    fprintf(stderr, CLI_NAME ": %s failed: %s\n", method_name(c), what);
    return CLI_EXIT_FAILED;
}

/* Print the decoded answer; returns the exit status. */
static int show(const struct command *c, const ProtobufCMessage *resp, const struct cli_args *a)
{
    int rc = 0;
    if (a->json) {
        json_write_message(stdout, resp);
        fputc('\n', stdout);
    } else {
        rc = c->print(stdout, resp, a);
    }
    if (rc == 0 && fflush(stdout) != 0)
        rc = -errno;
    if (rc == 0 && ferror(stdout))
        rc = -EIO;
    if (rc != 0) {
        fprintf(stderr, CLI_NAME ": cannot print the answer (%s)\n", err_strerror(rc));
        return CLI_EXIT_FAILED;
    }
    return c->succeeded != NULL && !c->succeeded(resp) ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}

static int run(const struct command *c, const struct cli_args *a)
{
    uint8_t *req = NULL;
    size_t len;
    struct rpc_client *client = NULL;
    struct rpc_reply reply = {0};
    ProtobufCMessage *resp = NULL;
    int exit_code = CLI_EXIT_FAILED;

    struct rpc_tls tls = {a->tls_ca, a->tls_cert, a->tls_key};
    bool use_tls = a->tls || a->tls_ca != NULL || a->tls_cert != NULL || a->tls_key != NULL;
    struct err e = {0};
    int rc = c->pack(a, &req, &len);
    if (rc == 0)
        rc = rpc_client_open(a->addr, use_tls ? &tls : NULL, &client, &e);
    if (rc == 0)
        rc = rpc_call(client, c->method, req, len, a->timeout, &reply);
    if (rc != 0) {
        exit_code = fail(c, e.msg[0] != '\0' ? e.msg : err_strerror(rc));
        goto out;
    }
    if (reply.status != GRPC_STATUS_OK) {
        exit_code = report_status(c, &reply);
        goto out;
    }
    if (reply.data == NULL) {
        exit_code = fail(c, "the server sent no response message");
        goto out;
    }
    resp = protobuf_c_message_unpack(c->response, NULL, reply.len, reply.data);
    if (resp == NULL) {
        exit_code = fail(c, "cannot decode the response");
        goto out;
    }
    exit_code = show(c, resp, a);
out:
    if (resp != NULL)
        protobuf_c_message_free_unpacked(resp, NULL);
    rpc_reply_free(&reply);
    rpc_client_close(client);
    free(req);
    return exit_code;
}

/* ---- the command line --------------------------------------------------- */

/* Global options, the command, then its own options and words (where global
 * options are accepted too). *cmd is NULL when only help was asked for. */
static int parse(int argc, char **argv, struct cli_args *a, const struct command **cmd)
{
    const struct opt *const global[] = {global_opts, NULL};
    struct err e;
    int next;
    *cmd = NULL;
    if (opts_scan(global, argc - 1, argv + 1, OPTS_STOP_AT_WORD, a, NULL, &next, &e) != 0)
        return usage_error(NULL, e.msg);
    next += 1;
    if (next == argc) {
        if (a->help)
            return CLI_EXIT_OK;
        return usage_error(NULL, "no command given");
    }
    const struct command *c = command_find(argv[next]);
    if (c == NULL) {
        fprintf(stderr, CLI_NAME ": unknown command '%s'\n\n", argv[next]);
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    *cmd = c;
    const struct opt *const both[] = {c->opts, global_opts, NULL};
    if (opts_scan(both, argc - next - 1, argv + next + 1, 0, a, &a->words, NULL, &e) != 0)
        return usage_error(c, e.msg);
    if (a->help)
        return CLI_EXIT_OK;
    if (opts_check_required(c->opts, a, &e) != 0)
        return usage_error(c, e.msg);
    if (a->words.n < c->min_words)
        return usage_error(c, "missing arguments");
    if (a->addr[0] == '\0')
        return usage_error(c, "--addr needs a HOST:PORT");
    if (a->words.n > c->max_words) {
        snprintf(e.msg, sizeof(e.msg), "unexpected argument '%s'", a->words.v[c->max_words]);
        return usage_error(c, e.msg);
    }
    if (c->check != NULL && c->check(a, &e) != 0)
        return usage_error(c, e.msg);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct cli_args a;
    if (args_init(&a, argc, argv) != 0) {
        fputs(CLI_NAME ": out of memory\n", stderr);
        return CLI_EXIT_FAILED;
    }
    char *env_addr = getenv(CLI_ADDR_ENV);
    a.addr = env_addr != NULL && env_addr[0] != '\0' ? env_addr : CLI_DEFAULT_ADDR;
    a.timeout = CLI_DEFAULT_TIMEOUT;

    const struct command *c;
    int exit_code = parse(argc, argv, &a, &c);
    if (exit_code == CLI_EXIT_OK && a.help) {
        if (c != NULL)
            usage_command(stdout, c);
        else
            usage(stdout);
    } else if (exit_code == CLI_EXIT_OK) {
        exit_code = run(c, &a);
    }
    args_free(&a);
    return exit_code;
}
