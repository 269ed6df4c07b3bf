"""recsys_als.py: train implicit ALS with Spark MLlib and write an export
directory recsysd imports (model/EXPORT.md).

    spark-submit tools/spark/recsys_als.py --interactions PATH --out DIR
        --factors F --iterations N --regularization L --alpha A
        [--view-weight 0.25] [--timestamp-unit s|ms] [--seed 1]
        [--model-version V] [--save-model DIR] [--checkpoint-dir DIR]

    spark-submit tools/spark/recsys_als.py --from-model DIR --out DIR
        --regularization L --alpha A [--interactions PATH]
        [--user-indexer DIR --item-indexer DIR] ...

then, on the machine that serves it (after `hdfs dfs -get` or
`aws s3 cp --recursive` when DIR is remote):

    recsys-model import --from-spark DIR --catalog catalog.csv -o model.lmdb

The interaction log is recsys-train's: CSV with a header, or Parquet, with
the columns user_id, item_id and optionally weight, timestamp and event
(purchase or view); ids are strings. A row without weight weighs 1 as a
purchase and --view-weight as a view; repeated (user, item) pairs add up,
as recsys-train adds them, and each pair is one rating of ALS with
implicitPrefs (confidence 1 + alpha * weight). Purchases are the owned
items the daemon never recommends. The latest timestamp is the model's data
end: the daemon deletes its recorded copies of events up to it.

Spark's ALS multiplies lambda by each user's (and item's) number of
ratings; the manifest says so ("regularization_scaling":
"per-interaction"), and the daemon's live-events fold-in applies the same
rule, so a user folded in at request time gets the vector the trainer
would have given.

--from-model converts an ALSModel saved earlier (ALSModel.save) without
retraining: with the StringIndexerModels that indexed its ids (this job's
--save-model writes all three, which --from-model DIR finds again), or,
without indexers, taking its integer ids as the ids. Give it the
regularization and alpha it was trained with (an ALSModel does not keep
them); --interactions, when given, supplies the purchases and the data end.

Runs unchanged on a cluster and in local mode, on Spark 3.5 and 4.x. Any
path Spark can write is fine for --out (local, hdfs://, s3a://). A bad
input stops the job with a message naming what is wrong and how many rows
have it, before anything is written.
"""

import argparse
import json
import sys
import time

from pyspark.ml.feature import StringIndexer, StringIndexerModel
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

MANIFEST = "recsys-export.json"
ID_MAX = 256  # bytes, the model file's limit (model/FORMAT.md)


class InputError(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(prog="recsys_als.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--interactions", help="CSV with a header, or Parquet")
    p.add_argument("--out", required=True, help="the export directory to write")
    p.add_argument("--factors", type=int, help="rank (required to train)")
    p.add_argument("--iterations", type=int, help="ALS iterations (required to train)")
    p.add_argument("--regularization", type=float, required=True,
                   help="lambda; Spark scales it by each row's ratings")
    p.add_argument("--alpha", type=float, required=True, help="confidence 1 + alpha * weight")
    p.add_argument("--view-weight", type=float, default=0.25,
                   help="weight of a view without a weight column (0.25)")
    p.add_argument("--timestamp-unit", choices=("s", "ms"), default="s",
                   help="unit of an integer timestamp column (s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model-version", help="default: spark-als-<UTC time of the export>")
    p.add_argument("--save-model", help="also save the ALSModel and its indexers here")
    p.add_argument("--checkpoint-dir", help="checkpoint every 10 iterations (long runs)")
    p.add_argument("--from-model", help="convert this saved ALSModel instead of training")
    p.add_argument("--user-indexer", help="with --from-model: its users' StringIndexerModel")
    p.add_argument("--item-indexer", help="with --from-model: its items' StringIndexerModel")
    a = p.parse_args(argv)
    if a.from_model is None:
        if a.interactions is None or a.factors is None or a.iterations is None:
            p.error("training needs --interactions, --factors and --iterations")
    elif (a.user_indexer is None) != (a.item_indexer is None):
        p.error("--user-indexer and --item-indexer go together")
    for name in ("factors", "iterations"):
        v = getattr(a, name)
        if v is not None and v < 1:
            p.error("--%s must be at least 1" % name)
    if a.regularization < 0 or a.alpha < 0 or not a.view_weight > 0:
        p.error("--regularization and --alpha must be >= 0, --view-weight > 0")
    return a


# ---- the log --------------------------------------------------------------------

def read_log(spark, path):
    if path.endswith(".parquet") or not path.endswith(".csv") and is_parquet(spark, path):
        df = spark.read.parquet(path)
    else:
        # RFC 4180, as recsys-train reads it: a quote inside a quoted field
        # is doubled (Spark's default escape is a backslash).
        df = spark.read.option("header", True).option("inferSchema", False).option(
            "mode", "FAILFAST").option("encoding", "UTF-8").option("escape", '"').csv(path)
    missing = [c for c in ("user_id", "item_id") if c not in df.columns]
    if missing:
        raise InputError("%s: no column %s (want user_id,item_id[,weight][,timestamp][,event])"
                         % (path, " or ".join(missing)))
    return df


def hadoop_fs(spark, path):
    """(the Hadoop FileSystem of @path, its Path): local, hdfs:// or s3a://
    alike, as Spark itself reads and writes it."""
    p = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
    return p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), p


def is_parquet(spark, path):
    fs, p = hadoop_fs(spark, path)
    if not fs.exists(p):
        raise InputError("%s: no such file or directory" % path)
    if fs.getFileStatus(p).isFile():
        return False
    return any(s.getPath().getName().endswith(".parquet") for s in fs.listStatus(p))


def bad_id(c):
    return (c.isNull() | (F.length(c) == 0) | (F.octet_length(c) > ID_MAX)
            | c.rlike("[\\t\\r\\n\\x00]"))


def clean_log(df, a):
    """(user_id, item_id, weight, purchase, time_ms) rows, every value
    checked; one pass counts each kind of bad row with an example."""
    cols = set(df.columns)
    uid, iid = F.col("user_id").cast("string"), F.col("item_id").cast("string")
    if "event" in cols:
        event = F.lower(F.col("event").cast("string"))
        purchase, event_bad = event == "purchase", ~event.isin("purchase", "view") | event.isNull()
    else:
        purchase, event_bad = F.lit(True), F.lit(False)
    if "weight" in cols:
        weight = F.col("weight").cast("double")
        weight_bad = weight.isNull() | ~(weight > 0) | F.isnan(weight) | (weight == float("inf"))
    else:
        weight = F.when(purchase, F.lit(1.0)).otherwise(F.lit(a.view_weight))
        weight_bad = F.lit(False)
    if "timestamp" in cols:
        ts_type = dict(df.dtypes)["timestamp"]
        if ts_type.startswith("timestamp"):
            time_ms = (F.col("timestamp").cast("double") * 1000).cast("long")
        else:
            raw = F.col("timestamp").cast("string")
            time_ms = F.when(raw.rlike("^[0-9]{1,18}$"), raw.cast("long")) * (
                1000 if a.timestamp_unit == "s" else 1)
        time_bad = time_ms.isNull() | (time_ms < 0)
    else:
        time_ms, time_bad = F.lit(0).cast("long"), F.lit(False)
    checks = [
        ("user_id", bad_id(uid), "user_id", "must be 1..%d bytes without tab, CR, LF or NUL"
         % ID_MAX),
        ("item_id", bad_id(iid), "item_id", "must be 1..%d bytes without tab, CR, LF or NUL"
         % ID_MAX),
        ("event", event_bad, "event", "must be purchase or view"),
        ("weight", weight_bad, "weight", "must be a number > 0"),
        ("timestamp", time_bad, "timestamp",
         "must be an integer >= 0 (unix %s)" % ("seconds" if a.timestamp_unit == "s" else "ms")),
    ]
    whole_row = F.concat_ws(",", *[F.coalesce(F.col(x).cast("string"), F.lit(""))
                                   for x in df.columns])

    def example(check):
        return F.first(F.when(check[1], whole_row), ignorenulls=True)

    row = df.agg(F.count(F.lit(1)).alias("rows"),
                 *[F.sum(F.when(c[1], 1).otherwise(0)).alias(c[0]) for c in checks],
                 *[example(c).alias(c[0] + "_example") for c in checks]).first()
    if row["rows"] == 0:
        raise InputError("%s: no interactions" % a.interactions)
    for name, _, col, why in checks:
        if row[name]:
            raise InputError("%s: %d rows have a bad %s (%s), for example: %s"
                             % (a.interactions, row[name], col, why, row[name + "_example"]))
    return df.select(uid.alias("user_id"), iid.alias("item_id"), weight.alias("weight"),
                     purchase.alias("purchase"), time_ms.alias("time_ms"))


# ---- training ---------------------------------------------------------------------

def train(spark, a, log):
    ratings = log.groupBy("user_id", "item_id").agg(F.sum("weight").alias("rating"))
    users = StringIndexer(inputCol="user_id", outputCol="user", stringOrderType="alphabetAsc")
    items = StringIndexer(inputCol="item_id", outputCol="item", stringOrderType="alphabetAsc")
    user_ix = users.fit(ratings)
    item_ix = items.fit(ratings)
    indexed = item_ix.transform(user_ix.transform(ratings)).select(
        F.col("user").cast("int").alias("user"), F.col("item").cast("int").alias("item"),
        "rating").cache()
    ratings_n = indexed.count()  # cached before fit, so its time is ALS's alone
    als = ALS(rank=a.factors, maxIter=a.iterations, regParam=a.regularization, alpha=a.alpha,
              implicitPrefs=True, userCol="user", itemCol="item", ratingCol="rating",
              seed=a.seed, nonnegative=False, checkpointInterval=10)
    if a.checkpoint_dir:
        spark.sparkContext.setCheckpointDir(a.checkpoint_dir)
    started = time.time()
    model = als.fit(indexed)
    seconds = time.time() - started
    print("recsys_als: trained %d ratings, %d factors, %d iterations in %.1f s "
          "(%.3f s per iteration)" % (ratings_n, a.factors, a.iterations, seconds,
                                      seconds / a.iterations), flush=True)
    indexed.unpersist()
    if a.save_model:
        model.write().overwrite().save(a.save_model + "/als")
        user_ix.write().overwrite().save(a.save_model + "/user_indexer")
        item_ix.write().overwrite().save(a.save_model + "/item_indexer")
    return model, user_ix, item_ix


def load_model(spark, a):
    path, user_ix, item_ix = a.from_model, a.user_indexer, a.item_indexer
    if user_ix is None and exists(spark, path + "/als"):
        path, user_ix, item_ix = path + "/als", path + "/user_indexer", path + "/item_indexer"
    model = ALSModel.load(path)
    if a.factors is not None and a.factors != model.rank:
        raise InputError("%s: rank %d, not --factors %d" % (path, model.rank, a.factors))
    a.factors = model.rank
    if user_ix is None:
        return model, None, None
    return model, StringIndexerModel.load(user_ix), StringIndexerModel.load(item_ix)


def exists(spark, path):
    fs, p = hadoop_fs(spark, path)
    return fs.exists(p)


def factors_with_ids(spark, df, indexer, name):
    """(name, features) with the platform's ids: the indexer's labels, or
    the integer ids as strings. The labels stay in the JVM (a transformer
    built there from the indexer's own array): ten million ids would take
    minutes to cross to Python and back."""
    if indexer is None:
        return df.select(F.col("id").cast("string").alias(name), "features")
    jvm = spark.sparkContext._jvm
    labels = indexer._java_obj.labelsArray()[0]
    to_string = jvm.org.apache.spark.ml.feature.IndexToString().setInputCol("id").setOutputCol(
        name).setLabels(labels)
    jdf = to_string.transform(df.withColumn("id", F.col("id").cast("double"))._jdf)
    return DataFrame(jdf, spark).select(name, "features")


# ---- the export --------------------------------------------------------------------

class Export:
    """Writes the tables, then the manifest (model/EXPORT.md), through the
    Hadoop file system of --out, so any path Spark writes works."""

    def __init__(self, spark, out):
        self.spark, self.out = spark, out.rstrip("/")
        self.fs, _ = hadoop_fs(spark, self.out)
        self.Path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path
        # An export being rewritten is not an export: the manifest goes first.
        self.fs.delete(self.Path(self.out + "/" + MANIFEST), False)

    def table(self, name, df, text):
        df.select(text.alias("value")).write.mode("overwrite").option(
            "compression", "none").text(self.out + "/" + name)
        parts = sorted((s.getPath().getName(), s.getLen())
                       for s in self.fs.listStatus(self.Path(self.out + "/" + name))
                       if s.getPath().getName().startswith("part-"))
        return [{"file": n, "bytes": int(b)} for n, b in parts]

    def manifest(self, m):
        tmp = self.Path(self.out + "/." + MANIFEST + ".tmp")
        stream = self.fs.create(tmp, True)
        stream.write(bytearray(json.dumps(m, indent=1, ensure_ascii=False).encode("utf-8")))
        stream.close()
        final = self.Path(self.out + "/" + MANIFEST)
        self.fs.delete(final, False)
        if not self.fs.rename(tmp, final):
            raise IOError("%s: could not rename the manifest into place" % self.out)


def factor_text(id_col):
    # Java's Float.toString for each factor: enough digits to read back
    # the same float (EXPORT.md).
    return F.concat_ws("\t", F.col(id_col), F.concat_ws("\t", F.col("features").cast(
        "array<string>")))


# Rows per part file: a million users at 64 factors is a part of about
# 800 MB of text, which the importer streams; fewer, larger parts than
# Spark's 200 shuffle partitions would give a small model.
ROWS_PER_PART = 1_000_000


def sorted_by_id(df, col):
    """@df in id order, in parts of at most ROWS_PER_PART rows, named in
    that order: the row order of the model (EXPORT.md)."""
    df = df.cache()
    rows = df.count()
    parts = max(1, -(-rows // ROWS_PER_PART))
    return df.repartitionByRange(parts, col).sortWithinPartitions(col), rows


def export(spark, a, model, user_ix, item_ix, log):
    users, n_users = sorted_by_id(
        factors_with_ids(spark, model.userFactors, user_ix, "user_id"), "user_id")
    items, n_items = sorted_by_id(
        factors_with_ids(spark, model.itemFactors, item_ix, "item_id"), "item_id")
    if log is not None:
        # Only pairs of ids the model has: a log given to --from-model may
        # name users or items the model never saw.
        bought = log.where("purchase").select("user_id", "item_id").distinct().join(
            users.select("user_id"), "user_id").join(items.select("item_id"), "item_id")
        data_end = log.agg(F.max("time_ms")).first()[0] or 0
    else:
        bought = spark.createDataFrame([], "user_id string, item_id string")
        data_end = 0
        print("recsys_als: no --interactions: no purchases, data end unknown", file=sys.stderr)
    bought, n_bought = sorted_by_id(bought, "user_id")
    x = Export(spark, a.out)
    now = int(time.time())
    tables = {
        "users": {"rows": n_users, "parts": x.table("users", users, factor_text("user_id"))},
        "items": {"rows": n_items, "parts": x.table("items", items, factor_text("item_id"))},
        "purchases": {"rows": n_bought, "parts": x.table(
            "purchases", bought, F.concat_ws("\t", "user_id", "item_id"))},
    }
    x.manifest({
        "format": "recsys-als-export",
        "format_version": 1,
        "factors": a.factors,
        "model_version": a.model_version or time.strftime("spark-als-%Y%m%dT%H%M%SZ",
                                                          time.gmtime(now)),
        "created_at": now,
        "data_end_unix_ms": int(data_end),
        "training": {
            "trainer": "spark-mllib-als",
            "spark_version": spark.version,
            "source": "from-model" if a.from_model else "trained",
            "iterations": a.iterations,
            "regularization": a.regularization,
            "regularization_scaling": "per-interaction",
            "alpha": a.alpha,
            "view_weight": a.view_weight,
            "seed": a.seed,
        },
        "tables": tables,
    })
    print("recsys_als: wrote %s: %d users, %d items, %d factors, %d purchases"
          % (a.out, n_users, n_items, a.factors, n_bought), flush=True)


def main(argv):
    a = parse_args(argv)
    spark = SparkSession.builder.appName("recsys_als").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    try:
        log = clean_log(read_log(spark, a.interactions), a).cache() if a.interactions else None
        if a.from_model:
            model, user_ix, item_ix = load_model(spark, a)
        else:
            model, user_ix, item_ix = train(spark, a, log)
        export(spark, a, model, user_ix, item_ix, log)
    except InputError as e:
        print("recsys_als: %s" % e, file=sys.stderr, flush=True)
        return 1
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
