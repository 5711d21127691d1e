//! The console's session store: in memory like `tower-sessions`' `MemoryStore`, but
//! bounded. Every visit to the sign-in page makes a session (it holds the form's CSRF
//! token), so without a bound anyone who can reach the server could grow its memory
//! without end. Expired sessions are dropped when a new one is stored; past [`CAP`]
//! sessions, those closest to expiring go first.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

/// The most sessions kept.
pub const CAP: usize = 10_000;

#[derive(Debug, Clone)]
pub struct BoundedStore {
    records: Arc<Mutex<HashMap<Id, Record>>>,
    cap: usize,
}

impl Default for BoundedStore {
    fn default() -> Self {
        Self::with_cap(CAP)
    }
}

impl BoundedStore {
    pub fn with_cap(cap: usize) -> Self {
        Self {
            records: Arc::default(),
            cap: cap.max(1),
        }
    }

    /// Makes room for one more record: expired ones out, then the soonest to expire.
    fn make_room(records: &mut HashMap<Id, Record>, cap: usize) {
        let now = OffsetDateTime::now_utc();
        records.retain(|_, r| r.expiry_date > now);
        while records.len() >= cap {
            let Some(first) = records
                .iter()
                .min_by_key(|(_, r)| r.expiry_date)
                .map(|(id, _)| *id)
            else {
                break;
            };
            records.remove(&first);
        }
    }
}

#[async_trait]
impl SessionStore for BoundedStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let mut records = self.records.lock().await;
        while records.contains_key(&record.id) {
            record.id = Id::default();
        }
        Self::make_room(&mut records, self.cap);
        records.insert(record.id, record.clone());
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let mut records = self.records.lock().await;
        if !records.contains_key(&record.id) {
            Self::make_room(&mut records, self.cap);
        }
        records.insert(record.id, record.clone());
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = OffsetDateTime::now_utc();
        Ok(self
            .records
            .lock()
            .await
            .get(id)
            .filter(|r| r.expiry_date > now)
            .cloned())
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.records.lock().await.remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tower_sessions::cookie::time::Duration;

    fn record(minutes: i64) -> Record {
        Record {
            id: Id::default(),
            data: HashMap::default(),
            expiry_date: OffsetDateTime::now_utc() + Duration::minutes(minutes),
        }
    }

    #[tokio::test]
    async fn it_stays_under_its_cap_and_drops_the_expired_first() {
        let store = BoundedStore::with_cap(3);
        let mut expired = record(-1);
        store.save(&expired).await.unwrap();
        let mut ids = Vec::new();
        for m in [10, 20, 30, 40] {
            let mut r = record(m);
            store.create(&mut r).await.unwrap();
            ids.push(r.id);
        }
        assert_eq!(store.records.lock().await.len(), 3);
        assert!(store.load(&expired.id).await.unwrap().is_none());
        // The soonest to expire went; the newest are there.
        assert!(store.load(&ids[0]).await.unwrap().is_none());
        assert!(store.load(&ids[3]).await.unwrap().is_some());
        expired.expiry_date = OffsetDateTime::now_utc() - Duration::minutes(5);
        store.save(&expired).await.unwrap();
        assert!(store.load(&expired.id).await.unwrap().is_none());
    }
}
