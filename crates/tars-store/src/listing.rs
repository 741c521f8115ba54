//! Past work, newest first: evaluation runs filtered by agent type, environment and time, jobs by
//! kind, status, agent type and time, a page at a time. A page that may have more after it ends
//! with a [`Cursor`] (its last row's creation time and id); the next page starts after that
//! row, so rows written meanwhile neither repeat nor shift the pages.
//!
//! The SQL is the same on both backends but for how times, ids and a job request's agent type
//! are written ([`Dialect`]).

use crate::{Backend, JobKind, JobRow, JobStatus, RunRow, Store, StoreError};
use chrono::{DateTime, Utc};
use sqlx::{Encode, Postgres, QueryBuilder, Sqlite, Type};
use uuid::Uuid;

/// The most rows one page holds.
pub const MAX_PAGE: i64 = 200;

/// The results of the runs whose ids a JSON array names, in each run's order.
const RESULTS_OF_PG: &str = "SELECT * FROM eval_results
     WHERE run_id IN (SELECT value::uuid FROM jsonb_array_elements_text($1::jsonb))
     ORDER BY run_id, position";
const RESULTS_OF_SQLITE: &str = "SELECT * FROM eval_results
     WHERE run_id IN (SELECT value FROM json_each($1)) ORDER BY run_id, position";

/// Where a page ended: the next page holds the rows created before this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    /// `<microseconds since the epoch>_<id>`: opaque to clients, exact for the store.
    pub fn encode(&self) -> String {
        format!(
            "{}_{}",
            self.created_at.timestamp_micros(),
            self.id.simple()
        )
    }

    pub fn decode(text: &str) -> Result<Cursor, StoreError> {
        let invalid = || {
            StoreError::invalid(
                "cursor",
                format!("'{text}' is not a cursor; pass the next_cursor of the previous page"),
            )
        };
        let (micros, id) = text.split_once('_').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        Ok(Cursor {
            created_at: DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?,
            id: id.parse().map_err(|_| invalid())?,
        })
    }
}

/// The time range and page of a listing.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
    /// After the row this cursor names (the previous page's last).
    pub after: Option<Cursor>,
    /// 1 to [`MAX_PAGE`].
    pub limit: i64,
}

impl Page {
    /// A page from its text form, as the API's query and the CLI's flags give it: RFC 3339
    /// times and the previous page's cursor.
    pub fn parse(
        since: Option<&str>,
        until: Option<&str>,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<Page, StoreError> {
        let time = |field: &'static str, text: Option<&str>| {
            text.map(|text| {
                DateTime::parse_from_rfc3339(text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        StoreError::invalid(
                            field,
                            format!("'{text}' is not an RFC 3339 time, e.g. 2026-12-08T00:00:00Z"),
                        )
                    })
            })
            .transpose()
        };
        Ok(Page {
            since: time("since", since)?,
            until: time("until", until)?,
            after: cursor.map(Cursor::decode).transpose()?,
            limit,
        })
    }
}

/// Which runs [`Store::list_runs`] returns.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub agent_type: Option<String>,
    /// Runs with a result on this environment.
    pub environment: Option<String>,
    pub page: Page,
}

/// Which jobs [`Store::list_jobs`] returns.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub kind: Option<JobKind>,
    pub status: Option<JobStatus>,
    /// The `agent_type` of the job's request.
    pub agent_type: Option<String>,
    pub page: Page,
}

/// A page of rows and, when there may be more, the cursor of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed<T> {
    pub rows: Vec<T>,
    pub next: Option<Cursor>,
}

/// How one backend writes what differs.
trait Dialect: sqlx::Database {
    /// A job request's agent type, upper-case.
    const REQUEST_AGENT: &'static str;
    fn push_time(query: &mut QueryBuilder<Self>, time: DateTime<Utc>);
    fn push_id(query: &mut QueryBuilder<Self>, id: Uuid);
}

impl Dialect for Postgres {
    const REQUEST_AGENT: &'static str = "UPPER(request->>'agent_type')";
    fn push_time(query: &mut QueryBuilder<Self>, time: DateTime<Utc>) {
        query.push_bind(time);
    }
    fn push_id(query: &mut QueryBuilder<Self>, id: Uuid) {
        query.push_bind(id);
    }
}

impl Dialect for Sqlite {
    const REQUEST_AGENT: &'static str = "UPPER(json_extract(request, '$.agent_type'))";
    // As the columns' defaults write them (`strftime('%Y-%m-%dT%H:%M:%fZ')`), so text order
    // is time order.
    fn push_time(query: &mut QueryBuilder<Self>, time: DateTime<Utc>) {
        query.push_bind(time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    }
    fn push_id(query: &mut QueryBuilder<Self>, id: Uuid) {
        query.push_bind(id.hyphenated().to_string());
    }
}

/// `SELECT * FROM table WHERE …` with the page's conditions, the caller's first.
fn select<DB: Dialect>(
    table: &str,
    conditions: impl FnOnce(&mut QueryBuilder<DB>),
    page: &Page,
) -> QueryBuilder<DB>
where
    for<'t> i64: Encode<'t, DB> + Type<DB>,
{
    let mut query = QueryBuilder::new(format!("SELECT * FROM {table} WHERE 1 = 1"));
    conditions(&mut query);
    if let Some(since) = page.since {
        query.push(" AND created_at >= ");
        DB::push_time(&mut query, since);
    }
    if let Some(until) = page.until {
        query.push(" AND created_at < ");
        DB::push_time(&mut query, until);
    }
    if let Some(after) = page.after {
        query.push(" AND (created_at < ");
        DB::push_time(&mut query, after.created_at);
        query.push(" OR (created_at = ");
        DB::push_time(&mut query, after.created_at);
        query.push(" AND id < ");
        DB::push_id(&mut query, after.id);
        query.push("))");
    }
    // One more than the page: whether there is a next one.
    query.push(" ORDER BY created_at DESC, id DESC LIMIT ");
    query.push_bind(page.limit + 1);
    query
}

fn run_conditions<DB: Dialect>(filter: &RunFilter) -> impl FnOnce(&mut QueryBuilder<DB>) + '_
where
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    move |query| {
        if let Some(agent_type) = &filter.agent_type {
            query.push(" AND agent_type = ");
            query.push_bind(crate::model::normalize_agent_type(agent_type));
        }
        if let Some(environment) = &filter.environment {
            query.push(
                " AND EXISTS (SELECT 1 FROM eval_results r WHERE r.run_id = eval_runs.id AND r.environment = ",
            );
            query.push_bind(environment.clone());
            query.push(")");
        }
    }
}

fn job_conditions<DB: Dialect>(filter: &JobFilter) -> impl FnOnce(&mut QueryBuilder<DB>) + '_
where
    for<'t> String: Encode<'t, DB> + Type<DB>,
{
    move |query| {
        if let Some(kind) = filter.kind {
            query.push(" AND kind = ");
            query.push_bind(kind.as_str().to_string());
        }
        if let Some(status) = filter.status {
            query.push(" AND status = ");
            query.push_bind(status.as_str().to_string());
        }
        if let Some(agent_type) = &filter.agent_type {
            query.push(format!(" AND {} = ", DB::REQUEST_AGENT));
            query.push_bind(agent_type.to_uppercase());
        }
    }
}

fn check(page: &Page) -> Result<(), StoreError> {
    if !(1..=MAX_PAGE).contains(&page.limit) {
        return Err(StoreError::invalid(
            "limit",
            format!("{} is out of range; use 1 to {MAX_PAGE}", page.limit),
        ));
    }
    if let (Some(since), Some(until)) = (page.since, page.until)
        && since >= until
    {
        return Err(StoreError::invalid(
            "time range",
            format!("since ({since}) must be before until ({until})"),
        ));
    }
    Ok(())
}

/// The page's rows and the cursor after them, from `limit + 1` fetched.
fn paged<T>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> Cursor) -> Listed<T> {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(key) } else { None };
    Listed { rows, next }
}

/// The tables whose ids [`Store::ids_with_prefix`] completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdOf {
    Run,
    Result,
    Job,
}

impl IdOf {
    /// The lookup on PostgreSQL (UUID ids) and on SQLite (hyphenated text ids).
    fn sql(self) -> [&'static str; 2] {
        match self {
            IdOf::Run => [
                "SELECT id FROM eval_runs WHERE id::text LIKE $1 ORDER BY id LIMIT 10",
                "SELECT id FROM eval_runs WHERE id LIKE $1 ORDER BY id LIMIT 10",
            ],
            IdOf::Result => [
                "SELECT id FROM eval_results WHERE id::text LIKE $1 ORDER BY id LIMIT 10",
                "SELECT id FROM eval_results WHERE id LIKE $1 ORDER BY id LIMIT 10",
            ],
            IdOf::Job => [
                "SELECT id FROM eval_jobs WHERE id::text LIKE $1 ORDER BY id LIMIT 10",
                "SELECT id FROM eval_jobs WHERE id LIKE $1 ORDER BY id LIMIT 10",
            ],
        }
    }
}

impl Store {
    /// The ids (at most 10) of `what` that start with `prefix`, as git completes a short hash:
    /// 4 to 36 characters of the hyphenated id, any case.
    pub async fn ids_with_prefix(&self, what: IdOf, prefix: &str) -> Result<Vec<Uuid>, StoreError> {
        let prefix = prefix.to_ascii_lowercase();
        if !(4..=36).contains(&prefix.len())
            || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        {
            return Err(StoreError::invalid(
                "id",
                format!("'{prefix}' is not an id or the start of one (4 to 36 hex digits and '-')"),
            ));
        }
        let pattern = format!("{prefix}%");
        let [postgres, sqlite] = what.sql();
        let ids = match &self.backend {
            Backend::Postgres(pool) => {
                let query = sqlx::query_scalar::<_, Uuid>(postgres).bind(pattern);
                query.fetch_all(pool).await?
            }
            Backend::Sqlite(db) => {
                let query = sqlx::query_scalar::<_, String>(sqlite).bind(pattern);
                let ids = query.fetch_all(&db.read).await?;
                ids.iter().filter_map(|id| id.parse().ok()).collect()
            }
        };
        Ok(ids)
    }

    /// Runs with their results, newest first.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Listed<RunRow>, StoreError> {
        check(&filter.page)?;
        let runs = match &self.backend {
            Backend::Postgres(pool) => {
                let mut query =
                    select::<Postgres>("eval_runs", run_conditions(filter), &filter.page);
                let rows = query
                    .build()
                    .try_map(|row| crate::postgres::run_from_row(&row));
                rows.fetch_all(pool).await?
            }
            Backend::Sqlite(db) => {
                let mut query = select::<Sqlite>("eval_runs", run_conditions(filter), &filter.page);
                let rows = query
                    .build()
                    .try_map(|row| crate::sqlite::run_from_row(&row));
                rows.fetch_all(&db.read).await?
            }
        };
        let mut listed = paged(runs, filter.page.limit, |run| Cursor {
            created_at: run.created_at,
            id: run.id,
        });
        // A run's results are written with it, in its transaction: one more query reads them
        // all, the page's ids passed as a JSON array.
        let ids = serde_json::Value::from(
            (listed.rows.iter())
                .map(|run| run.id.hyphenated().to_string())
                .collect::<Vec<_>>(),
        )
        .to_string();
        let results = match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query(RESULTS_OF_PG)
                    .bind(ids)
                    .try_map(|row| crate::postgres::result_from_row(&row))
                    .fetch_all(pool)
                    .await?
            }
            Backend::Sqlite(db) => {
                sqlx::query(RESULTS_OF_SQLITE)
                    .bind(ids)
                    .try_map(|row| crate::sqlite::result_from_row(&row))
                    .fetch_all(&db.read)
                    .await?
            }
        };
        listed.rows = crate::attach_results(listed.rows, results);
        Ok(listed)
    }

    /// Jobs of every kind, newest first.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Listed<JobRow>, StoreError> {
        check(&filter.page)?;
        let jobs = match &self.backend {
            Backend::Postgres(pool) => {
                let mut query =
                    select::<Postgres>("eval_jobs", job_conditions(filter), &filter.page);
                let rows = query.build().try_map(|row| crate::jobs::pg_job(&row));
                rows.fetch_all(pool).await?
            }
            Backend::Sqlite(db) => {
                let mut query = select::<Sqlite>("eval_jobs", job_conditions(filter), &filter.page);
                let rows = query.build().try_map(|row| crate::jobs::sqlite_job(&row));
                rows.fetch_all(&db.write).await?
            }
        };
        Ok(paged(jobs, filter.page.limit, |job| Cursor {
            created_at: job.created_at,
            id: job.id,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_name_what_to_pass() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_765_000_000_123_456).unwrap(),
            id: Uuid::from_u128(7),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for bad in [
            "",
            "12",
            "x_00000000000000000000000000000007",
            "1_not-a-uuid",
        ] {
            let error = Cursor::decode(bad).unwrap_err().to_string();
            assert!(error.contains("pass the next_cursor"), "{error}");
        }
    }

    #[test]
    fn a_page_says_whether_another_follows() {
        let key = |n: &u128| Cursor {
            created_at: DateTime::from_timestamp_micros(0).unwrap(),
            id: Uuid::from_u128(*n),
        };
        let full = paged(vec![5, 4, 3], 2, key);
        assert_eq!(full.rows, vec![5, 4]);
        assert_eq!(full.next.unwrap().id, Uuid::from_u128(4));
        assert_eq!(paged(vec![5, 4], 2, key).next, None);
    }
}
