//! A fresh database per test: a SQLite file in a temporary directory, or a new PostgreSQL
//! database on the server named by `LATCH_TEST_DATABASE_URL`, dropped afterwards.

use sqlx::Connection as _;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A throwaway database.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// The SQLite file, for scanning its bytes.
    pub sqlite_path: Option<std::path::PathBuf>,
    pg_admin_url: Option<String>,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// Whether PostgreSQL tests can run; when not, fails in CI and records a skip elsewhere (see
/// `harness::skip`).
pub fn postgres_available() -> bool {
    let available = std::env::var("LATCH_TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty());
    if !available {
        super::skip::missing("PostgreSQL", "set LATCH_TEST_DATABASE_URL=postgres://… (tests/run does)");
    }
    available
}

impl TestDb {
    /// Creates an empty database.
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("latch.db");
                Self {
                    backend,
                    url: format!("sqlite://{}", path.display()),
                    sqlite_path: Some(path),
                    pg_admin_url: None,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin = std::env::var("LATCH_TEST_DATABASE_URL").unwrap();
                let name = format!("latch_t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&format!("/{name}"));
                Self {
                    backend,
                    url: url.to_string(),
                    sqlite_path: None,
                    pg_admin_url: Some(admin),
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// Every byte the database keeps for us, as lossy text: the SQLite file with its WAL and
    /// shared-memory files, or every row of every table in PostgreSQL (binary columns hex-encoded).
    pub async fn raw_contents(&self) -> String {
        match self.backend {
            Backend::Sqlite => {
                let path = self.sqlite_path.as_ref().unwrap();
                let mut all = Vec::new();
                for suffix in ["", "-wal", "-shm"] {
                    let p = format!("{}{suffix}", path.display());
                    if let Ok(bytes) = std::fs::read(&p) {
                        all.extend_from_slice(&bytes);
                    }
                }
                String::from_utf8_lossy(&all).into_owned()
            }
            Backend::Postgres => {
                let out = self.postgres_rows().await;
                // bytea renders as hex: decode it so a plaintext inside would still show up.
                let decoded: String = out
                    .split("\\\\x")
                    .flat_map(|chunk| {
                        let hex: String = chunk.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
                        let bytes: Vec<u8> = (0..hex.len() / 2)
                            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                            .collect();
                        [String::from_utf8_lossy(&bytes).into_owned(), chunk.to_owned()]
                    })
                    .collect();
                decoded
            }
        }
    }

    /// Whether the database keeps these bytes anywhere: in the SQLite files (free pages too), or
    /// in any row of any PostgreSQL table.
    pub async fn contains_bytes(&self, needle: &[u8]) -> bool {
        match self.backend {
            Backend::Sqlite => {
                let path = self.sqlite_path.as_ref().unwrap();
                ["", "-wal", "-shm"].iter().any(|suffix| {
                    std::fs::read(format!("{}{suffix}", path.display()))
                        .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                })
            }
            Backend::Postgres => {
                let hex: String = needle.iter().map(|b| format!("{b:02x}")).collect();
                self.postgres_rows().await.contains(&hex)
            }
        }
    }

    /// Every row of every table, as text (bytea hex-encoded), one a line.
    async fn postgres_rows(&self) -> String {
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let mut out = String::new();
        for t in tables {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT t::text FROM {t} t")).fetch_all(&mut conn).await.unwrap();
            for r in rows {
                out.push_str(&r);
                out.push('\n');
            }
        }
        conn.close().await.unwrap();
        out
    }

    /// Runs a raw statement (tests that tamper with rows).
    pub async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}

/// A transaction left open on its own connection: what another process holds while the server
/// works (see [`TestDb::hold`]).
pub enum Held {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Held {
    /// Runs one more statement in the held transaction.
    pub async fn execute(&mut self, sql: &str) {
        match self {
            Held::Sqlite(c) => sqlx::query(sql).execute(c).await.map(drop),
            Held::Postgres(c) => sqlx::query(sql).execute(c).await.map(drop),
        }
        .unwrap();
    }

    /// Commits the held transaction.
    pub async fn commit(self) {
        match self {
            Held::Sqlite(mut c) => sqlx::query("COMMIT").execute(&mut c).await.map(drop),
            Held::Postgres(mut c) => sqlx::query("COMMIT").execute(&mut c).await.map(drop),
        }
        .unwrap();
    }
}

impl TestDb {
    /// Runs `sql` in a transaction that stays open (a write lock on SQLite, row locks on
    /// PostgreSQL) until [`Held::commit`].
    pub async fn hold(&self, sql: &str) -> Held {
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query("BEGIN IMMEDIATE").execute(&mut c).await.unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
                Held::Sqlite(c)
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut c).await.unwrap();
                sqlx::query(sql).execute(&mut c).await.unwrap();
                Held::Postgres(c)
            }
        }
    }

    /// The one integer a query returns.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let (Some(admin), Some(name)) = (self.pg_admin_url.take(), self.pg_name.take()) {
            // Drop runs outside async context: use a private runtime on a plain thread.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                        let _ = conn.close().await;
                    }
                });
            })
            .join();
        }
    }
}
