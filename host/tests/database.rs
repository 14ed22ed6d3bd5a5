//! The database layer against a real PostgreSQL server and against SQLite: the same
//! operations, the same logical schema.

mod support;

use qcnn_dataset::scores::{Scores, Tally};
use qcnn_host::db::{Db, DbError, NewResult, Target};
use support::postgres::PgServer;

const SEED: &str = "checkpoints/CNNModel_FashionMNIST_best_metric_model.pth";

/// Scores of a made-up 3-image run over 10 classes.
fn scores(offset: f32) -> Scores {
    let mut tally = Tally::new(10);
    for label in 0..3 {
        let mut logits = [0.0f32; 10];
        logits[label] = 2.0 + offset;
        tally.add(&logits, (label + usize::from(offset > 0.0)) % 10);
    }
    tally.scores()
}

fn result<'a>(path: &'a str, int8: &'a Scores, float: Option<&'a Scores>) -> NewResult<'a> {
    NewResult {
        model_id: None,
        model_path: path,
        model_sha256: "ab12",
        samples: 3,
        threads: 2,
        images_per_s: 1234.5,
        int8,
        float,
        agreement: float.map(|_| 0.75),
    }
}

/// Everything a backend must do, run against one.
fn exercise(db: &mut Db) {
    db.init(SEED).unwrap();
    // A second init neither fails nor seeds again.
    db.init(SEED).unwrap();
    let seeded = db.newest_model().unwrap();
    assert_eq!(seeded.path, SEED);

    let added = db.add_model("models/newer.qcnn", Some("cafe")).unwrap();
    let newest = db.newest_model().unwrap();
    assert_eq!(
        (newest.id, newest.path.as_str()),
        (added, "models/newer.qcnn")
    );
    assert_eq!(newest.sha256.as_deref(), Some("cafe"));
    assert_eq!(db.model(seeded.id).unwrap().path, SEED);
    assert!(matches!(
        db.model(9999),
        Err(DbError::UnknownModelId { id: 9999, .. })
    ));
    // The seed row has no SHA-256, so its path alone links a file to it.
    assert_eq!(db.model_id_for_file(SEED, "any").unwrap(), Some(seeded.id));
    assert_eq!(db.model_id_for_file("nope", "any").unwrap(), None);
    // A file whose SHA-256 differs from its row's is not that row's model.
    assert_eq!(
        db.model_id_for_file("models/newer.qcnn", "cafe").unwrap(),
        Some(added)
    );
    assert_eq!(
        db.model_id_for_file("models/newer.qcnn", "beef").unwrap(),
        None
    );

    let (int8, float) = (scores(0.0), scores(1.0));
    let first = db.record(&result(SEED, &int8, None)).unwrap();
    let second = db
        .record(&result("models/newer.qcnn", &int8, Some(&float)))
        .unwrap();
    assert!(second > first);

    let listed = db.results(10).unwrap();
    assert_eq!(
        listed.iter().map(|r| r.id).collect::<Vec<_>>(),
        [second, first]
    );
    let newest = &listed[0];
    assert_eq!(newest.model_path, "models/newer.qcnn");
    assert_eq!((newest.samples, newest.threads), (3, 2));
    assert_eq!(newest.images_per_s, 1234.5);
    assert_eq!(newest.accuracy, int8.accuracy);
    assert_eq!(newest.loss, int8.loss);
    assert_eq!(newest.float_accuracy, Some(float.accuracy));
    assert_eq!(newest.agreement, Some(0.75));
    assert_eq!(listed[1].float_loss, None);
    assert!(!newest.created_at.is_empty());
    assert_eq!(db.results(1).unwrap().len(), 1);
}

#[test]
fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.sqlite");
    let mut db = Db::open(&Target::Sqlite(path.clone()), SEED).unwrap();
    exercise(&mut db);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    // The int8-only result has 10 class rows and 100 cells; the other twice that.
    assert_eq!(count("SELECT COUNT(*) FROM model_result_classes"), 30);
    assert_eq!(count("SELECT COUNT(*) FROM model_result_confusion"), 300);
}

#[test]
fn postgres_backend() {
    let server = PgServer::start();
    let mut db = Db::open(&Target::Postgres(server.url()), SEED).unwrap();
    exercise(&mut db);

    let mut client = server.client();
    let count = |client: &mut postgres::Client, sql: &str| {
        client.query_one(sql, &[]).unwrap().get::<_, i64>(0)
    };
    assert_eq!(
        count(&mut client, "SELECT COUNT(*) FROM model_result_classes"),
        30
    );
    assert_eq!(
        count(&mut client, "SELECT COUNT(*) FROM model_result_confusion"),
        300
    );
    // Numbers are stored as numbers.
    let row = client
        .query_one(
            "SELECT accuracy, samples, created_at FROM model_results ORDER BY id DESC LIMIT 1",
            &[],
        )
        .unwrap();
    assert_eq!(row.columns()[0].type_(), &postgres::types::Type::FLOAT8);
    assert_eq!(row.columns()[1].type_(), &postgres::types::Type::INT8);
    assert_eq!(
        row.columns()[2].type_(),
        &postgres::types::Type::TIMESTAMPTZ
    );
}

/// Both engines get the same tables with the same columns in the same order, from one init.sql.
#[test]
fn sqlite_and_postgres_schemas_agree() {
    let server = PgServer::start();
    Db::open(&Target::Postgres(server.url()), SEED)
        .unwrap()
        .init(SEED)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.sqlite");
    Db::open(&Target::Sqlite(path.clone()), SEED).unwrap();

    let mut client = server.client();
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY table_name",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tables.len(), 5, "{tables:?}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    for table in &tables {
        let pg_columns: Vec<String> = client
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_name = $1 ORDER BY ordinal_position",
                &[table],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let sqlite_columns: Vec<String> = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
            ))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!pg_columns.is_empty());
        assert_eq!(pg_columns, sqlite_columns, "columns of {table}");
    }
}

/// Quotes, a semicolon, SQL comment syntax and non-ASCII survive the round trip (bound, not spliced).
#[test]
fn awkward_model_paths_round_trip_on_both_backends() {
    let path = "models/it's \"q\"; DROP TABLE model_results; -- ünïcødé 模型 🧪.qcnn";
    let server = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let targets = [
        Target::Postgres(server.url()),
        Target::Sqlite(dir.path().join("awkward.sqlite")),
    ];
    for target in targets {
        let mut db = Db::open(&target, SEED).unwrap();
        db.init(SEED).unwrap();
        let id = db.add_model(path, None).unwrap();
        assert_eq!(db.model(id).unwrap().path, path);
        let int8 = scores(0.0);
        let mut new = result(path, &int8, None);
        new.model_id = Some(id);
        db.record(&new).unwrap();
        let stored = &db.results(1).unwrap()[0];
        assert_eq!(stored.model_path, path);
        assert_eq!(stored.model_id, Some(id));
    }
}
