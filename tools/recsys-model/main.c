/*
 * recsys-model: build, check and look at recsysd model files.
 *
 *     recsys-model <command> [args]
 *
 * The commands are one table; each is a function of its own argv that
 * returns an exit status and leaves its error text in a struct err, which
 * this file prints in one format, "recsys-model: <text>", followed by the
 * command's usage when the command line itself was wrong. Exit status: 0
 * success, 1 failure (bad input, bad model, I/O), 2 usage error.
 */
#include <stdio.h>
#include <string.h>

#include "tools/recsys-model/cmd.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv, struct err *e);
    const char *usage; /* arguments; continuation lines start with blanks */
    const char *summary;
    const char *details; /* printed after the summary by help; NULL for none */
};

static const struct command commands[] = {
    {"import", import_main,
     "--user-factors U.npy --user-ids users.txt\n"
     "        --item-factors V.npy --item-ids items.txt --catalog catalog.csv\n"
     "        [--users users.csv] [--purchases purchases.csv]\n"
     "        --model-version V [--created-at UNIX] [--quantize bf16,int8]\n"
     "        [--regularization L] [--regularization-scaling none|per-interaction]\n"
     "        [--alpha A] [--view-weight W] [--data-end UNIX_MS] -o FILE\n"
     "   or: " CMD_NAME " import --from-spark DIR --catalog catalog.csv [--users users.csv]\n"
     "        [--model-version V] [--created-at UNIX] [--quantize bf16,int8] -o FILE\n"
     "   either with [--catalog-extra skip|error]",
     "build a model file from float32 .npy factor matrices, id files and CSVs, or\n"
     "from an ALS export directory (tools/spark/recsys_als.py, model/EXPORT.md)",
     "\nTraining record (model/FORMAT.md): how the factors were trained, for the\n"
     "daemon's live-events fold-in, which follows the implicit-ALS rule. Given any\n"
     "of these flags, the file records all five, each not given at its default;\n"
     "given none, the file has no record and readers take the defaults.\n"
     "  --regularization L  lambda >= 0 (0.05)\n"
     "  --regularization-scaling none|per-interaction\n"
     "                      lambda as given (recsys-train), or times the user's\n"
     "                      number of items (Spark MLlib's ALS) (none)\n"
     "  --alpha A           confidence 1 + A * weight, A >= 0 (20)\n"
     "  --view-weight W     weight of one view event, W > 0 (0.25)\n"
     "  --data-end UNIX_MS  the latest event the factors were trained on; events at\n"
     "                      or before it are held by the model (0: unknown)\n"
     "\nWith --from-spark, the export's manifest gives the training record, the model\n"
     "version and the creation time (the last two unless given), and its purchases\n"
     "the owned items: the training flags and --purchases are refused.\n"
     "\n--catalog-extra skip leaves out the catalog's rows for items the factors do not\n"
     "cover (Spark gives none to an item nobody rated), counted on stderr; by default\n"
     "(error) such a row is refused.\n"},
    {"inspect", inspect_main, "FILE",
     "print a model's header, training record, categories and most popular items", NULL},
    {"verify", verify_main, "FILE", "validate a model fully; exit 0 only for a good file", NULL},
    {"demo", demo_main,
     "-o FILE [--users N] [--items M] [--dim D] [--seed S]\n"
     "        [--quantize bf16,int8|none]",
     "write a deterministic synthetic demo model (default: with both reduced copies)", NULL},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void usage_command(FILE *out, const struct command *c)
{
    fprintf(out, "usage: " CMD_NAME " %s %s\n", c->name, c->usage);
}

/* A command's usage, summary and details, for help and --help. */
static void help_command(const struct command *c)
{
    usage_command(stdout, c);
    printf("%s\n%s", c->summary, c->details != NULL ? c->details : "");
}

static void usage(FILE *out)
{
    fputs("usage: " CMD_NAME " <command> [args]\n\ncommands:\n", out);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fputs("\nRun '" CMD_NAME " help <command>' for a command's arguments.\n"
          "Exit status: 0 success, 1 failure, 2 usage error.\n",
          out);
}

/* "help" and "help <command>". */
static int help(int argc, char **argv)
{
    if (argc < 3) {
        usage(stdout);
        return CMD_EXIT_OK;
    }
    const struct command *c = find(argv[2]);
    if (c == NULL) {
        fprintf(stderr, CMD_NAME ": unknown command '%s'\n", argv[2]);
        return CMD_EXIT_USAGE;
    }
    help_command(c);
    return CMD_EXIT_OK;
}

/* Whether the command's arguments ask for help (before any "--"). */
static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0)
        return help(argc, argv);
    const struct command *c = find(argv[1]);
    if (c == NULL) {
        fprintf(stderr, CMD_NAME ": unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    if (wants_help(argc - 1, argv + 1)) {
        help_command(c);
        return CMD_EXIT_OK;
    }

    struct err e = {0};
    int status = c->run(argc - 1, argv + 1, &e);
    if (status != CMD_EXIT_OK)
        fprintf(stderr, CMD_NAME ": %s\n", e.msg);
    if (status == CMD_EXIT_USAGE)
        usage_command(stderr, c);
    if (fflush(stdout) != 0 && status == CMD_EXIT_OK) {
        perror(CMD_NAME ": write");
        status = CMD_EXIT_FAILED;
    }
    return status;
}
