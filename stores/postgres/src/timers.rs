//! The timers of process managers, in the store's schema (`process_timers`, migration 4).

use std::time::{Duration, SystemTime};

use foldline::{DriverErrors, Error, StreamId, Timer, TimerStore};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};
use uuid::Uuid;

use crate::error::Postgres;
use crate::sql::quoted;
use crate::store::PgEventStore;

impl PgEventStore {
    /// A connection and `sql` prepared on it, `{t}` replaced by the timers table.
    async fn timers_statement(
        &self,
        sql: &str,
        doing: &impl Fn() -> String,
    ) -> Result<(deadpool_postgres::Object, Statement), Error> {
        let sql = sql.replace("{t}", &format!("{}.process_timers", quoted(self.schema())));
        let client = self.client(&doing()).await?;
        let statement = client
            .prepare_cached(&sql)
            .await
            .map_err(|e| Postgres::error(doing(), e))?;
        Ok((client, statement))
    }

    /// Runs `sql` (see [`timers_statement`](Self::timers_statement)); its rows.
    async fn timers_query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        doing: impl Fn() -> String,
    ) -> Result<Vec<Row>, Error> {
        let (client, statement) = self.timers_statement(sql, &doing).await?;
        client
            .query(&statement, params)
            .await
            .map_err(|e| Postgres::error(doing(), e))
    }

    /// Runs `sql`, which changes rows: how many.
    async fn timers_execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        doing: impl Fn() -> String,
    ) -> Result<u64, Error> {
        let (client, statement) = self.timers_statement(sql, &doing).await?;
        client
            .execute(&statement, params)
            .await
            .map_err(|e| Postgres::error(doing(), e))
    }
}

/// The columns every query returns, in this order.
const COLUMNS: &str = "id, process, instance, timeout, due_at";

fn timer(row: &Row, doing: &impl Fn() -> String) -> Result<Timer, Error> {
    let instance: String = row.get(2);
    let instance = StreamId::new(instance).map_err(|e| {
        Postgres::corrupt(
            format!("{}: a stored instance is not a stream id", doing()),
            Some(Box::new(e)),
        )
    })?;
    Ok(Timer::new(
        row.get(0),
        row.get::<_, String>(1),
        instance,
        row.get(3),
        row.get(4),
    ))
}

fn timers(rows: &[Row], doing: &impl Fn() -> String) -> Result<Vec<Timer>, Error> {
    rows.iter().map(|row| timer(row, doing)).collect()
}

impl TimerStore for PgEventStore {
    async fn schedule(&self, timer: Timer) -> Result<(), Error> {
        let doing = || format!("scheduling timer {} of `{}`", timer.id, timer.instance);
        self.timers_execute(
            "INSERT INTO {t} (id, process, instance, timeout, due_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO NOTHING",
            &[
                &timer.id,
                &timer.process,
                &timer.instance.as_str(),
                &timer.timeout,
                &timer.due_at,
            ],
            doing,
        )
        .await?;
        Ok(())
    }

    async fn cancel(
        &self,
        process: &str,
        instance: &StreamId,
        timeout: &[u8],
    ) -> Result<u64, Error> {
        self.timers_execute(
            "DELETE FROM {t} WHERE process = $1 AND instance = $2 AND timeout = $3",
            &[&process, &instance.as_str(), &timeout],
            || format!("cancelling a timeout of `{instance}`"),
        )
        .await
    }

    async fn cancel_all(&self, process: &str, instance: &StreamId) -> Result<u64, Error> {
        self.timers_execute(
            "DELETE FROM {t} WHERE process = $1 AND instance = $2",
            &[&process, &instance.as_str()],
            || format!("cancelling the timers of `{instance}`"),
        )
        .await
    }

    async fn claim_due(
        &self,
        process: &str,
        now: SystemTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Timer>, Error> {
        let doing = || format!("claiming the due timers of `{process}`");
        let until = now + lease;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // `SKIP LOCKED`: a timer another claimer is taking right now is left to it.
        let rows = self
            .timers_query(
                "UPDATE {t} AS timer SET claimed_until = $3
                 FROM (SELECT id FROM {t}
                       WHERE process = $1 AND due_at <= $2
                         AND (claimed_until IS NULL OR claimed_until <= $2)
                       ORDER BY due_at, id
                       LIMIT $4
                       FOR UPDATE SKIP LOCKED) AS due
                 WHERE timer.id = due.id
                 RETURNING timer.id, timer.process, timer.instance, timer.timeout, timer.due_at",
                &[&process, &now, &until, &limit],
                doing,
            )
            .await?;
        let mut claimed = timers(&rows, &doing)?;
        claimed.sort_by_key(|timer| (timer.due_at, timer.id));
        Ok(claimed)
    }

    async fn remove(&self, id: Uuid) -> Result<(), Error> {
        self.timers_execute("DELETE FROM {t} WHERE id = $1", &[&id], || {
            format!("removing timer {id}")
        })
        .await?;
        Ok(())
    }

    async fn pending(&self, process: &str, instance: &StreamId) -> Result<Vec<Timer>, Error> {
        let doing = || format!("listing the timers of `{instance}`");
        let rows = self
            .timers_query(
                &format!(
                    "SELECT {COLUMNS} FROM {{t}} WHERE process = $1 AND instance = $2
                     ORDER BY due_at, id"
                ),
                &[&process, &instance.as_str()],
                doing,
            )
            .await?;
        timers(&rows, &doing)
    }

    async fn next_due(&self, process: &str) -> Result<Option<SystemTime>, Error> {
        let rows = self
            .timers_query(
                "SELECT min(due_at) FROM {t} WHERE process = $1",
                &[&process],
                || format!("reading when the next timer of `{process}` is due"),
            )
            .await?;
        Ok(rows.first().and_then(|row| row.get(0)))
    }
}
